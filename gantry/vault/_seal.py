"""Sealing identity documents into vault rows, and opening them again.

One AES-256-GCM encryption per patient, under the ``identity-aead`` subkey, with a
fresh random 96-bit nonce per row and the pseudonym as associated data: a row's
ciphertext only opens under its own pseudonym, so a row moved to (or copied over)
another pseudonym fails authentication.
"""

from __future__ import annotations

import json
import secrets
from datetime import UTC, datetime
from typing import Any

import numpy as np
import polars as pl
import pyarrow as pa
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from gantry.errors import TamperedVaultError, VaultKeyError
from gantry.vault._keys import VaultKey
from gantry.vault._tags import uid_tags

NONCE_BYTES = 12
IDENTITY_SCHEMA = pl.Schema(
    {
        "pseudonym": pl.String(),
        "key_fingerprint": pl.String(),
        "nonce": pl.Binary(),
        "ciphertext": pl.Binary(),
        "locked_at": pl.Datetime("us", "UTC"),
        "uid_keys": pl.List(pl.Binary()),
    }
)
"""Columns of the ``identities`` table (nothing in it identifies a patient)."""
_AD_PREFIX = b"gantry-identity/v1\x00"
UID_KEYWORDS = ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID")


def associated_data(pseudonym: str) -> bytes:
    """What each row's ciphertext is bound to: a version label and the pseudonym.

    Examples
    --------
    >>> associated_data("ANON_0001")
    b'gantry-identity/v1\\x00ANON_0001'
    """
    return _AD_PREFIX + pseudonym.encode("utf-8")


def seal(
    key: VaultKey,
    documents: pl.DataFrame,
    new_uids: pl.DataFrame,
    *,
    locked_at: datetime | None = None,
) -> pl.DataFrame:
    """Encrypt ``documents`` (``pseudonym, document``) into rows of :data:`IDENTITY_SCHEMA`.

    ``new_uids`` (``row, new_uid``: ``row`` is the index of the patient's row in
    ``documents``) gives each row its ``uid_keys``: the keyed lookup tags of the
    patient's new UIDs, distinct and sorted.
    """
    n = documents.height
    aead = AESGCM(key.subkey("identity-aead"))
    pool = secrets.token_bytes(NONCE_BYTES * n)
    nonces = [pool[i : i + NONCE_BYTES] for i in range(0, NONCE_BYTES * n, NONCE_BYTES)]
    texts = documents["document"].cast(pl.Binary).to_list()
    ads = (
        documents.select(pl.concat_str(pl.lit(_AD_PREFIX.decode()), "pseudonym").cast(pl.Binary))
        .to_series()
        .to_list()
    )  # associated_data(pseudonym) of each row
    ciphertexts = list(map(aead.encrypt, nonces, texts, ads))
    when = (locked_at or datetime.now(UTC)).astimezone(UTC)
    rows = pl.DataFrame(
        {
            "pseudonym": documents["pseudonym"],
            "key_fingerprint": pl.repeat(key.fingerprint, n, eager=True, dtype=pl.String),
            "nonce": nonces,
            "ciphertext": ciphertexts,
        },
        schema={
            k: IDENTITY_SCHEMA[k] for k in ("pseudonym", "key_fingerprint", "nonce", "ciphertext")
        },
    ).with_columns(
        pl.lit(when).cast(IDENTITY_SCHEMA["locked_at"]).alias("locked_at"),
        _uid_keys(key, new_uids, n),
    )
    return rows.select(list(IDENTITY_SCHEMA)).cast(IDENTITY_SCHEMA)


def _uid_keys(key: VaultKey, new_uids: pl.DataFrame, n: int) -> pl.Series:
    """Per row, the sorted distinct lookup tags of its new UIDs (integer sorts only)."""
    if new_uids.height == 0:
        return pl.Series("uid_keys", [[]] * n, dtype=IDENTITY_SCHEMA["uid_keys"])
    tags = uid_tags(key.subkey("uid-lookup"), new_uids["new_uid"])
    # a tag as two big-endian 64-bit halves: their numeric order is the bytes' order
    halves = np.frombuffer(tags.buffers()[1], dtype=">u8")[
        2 * tags.offset : 2 * (tags.offset + len(tags))
    ].reshape(-1, 2)
    order = (
        pl.DataFrame(
            {
                "row": new_uids["row"].cast(pl.UInt32),
                "hi": halves[:, 0].astype(np.uint64),
                "lo": halves[:, 1].astype(np.uint64),
            }
        )
        .with_row_index("i")
        .sort("row", "hi", "lo")
    )
    repeated = (
        (pl.col("row") == pl.col("row").shift())
        & (pl.col("hi") == pl.col("hi").shift())
        & (pl.col("lo") == pl.col("lo").shift())
    )
    order = order.filter(~repeated.fill_null(False))
    values = tags.take(order["i"].to_arrow()).cast(pa.large_binary())
    counts = np.bincount(order["row"].to_numpy(), minlength=n).astype(np.int64)
    offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    lists = pa.LargeListArray.from_arrays(pa.array(offsets), values)
    return pl.Series("uid_keys", lists).cast(IDENTITY_SCHEMA["uid_keys"])


def check_fingerprints(key: VaultKey, rows: pl.DataFrame) -> None:
    """Raise :class:`VaultKeyError` unless every row was sealed under ``key``."""
    found = set(rows["key_fingerprint"].unique().to_list())
    if found - {key.fingerprint}:
        raise VaultKeyError(
            f"the vault key does not match the identity vault (key fingerprint "
            f"{key.fingerprint}); load the key the vault was locked with"
        )


def open_document(
    key: VaultKey, row: dict[str, Any], *, aead: AESGCM | None = None
) -> dict[str, Any]:
    """Decrypt one vault row (a dict of :data:`IDENTITY_SCHEMA` values) into its document.

    Raises
    ------
    VaultKeyError
        The row was sealed under another key.
    TamperedVaultError
        Authentication failed: the row was altered or moved to another pseudonym.
    """
    if row.get("key_fingerprint") != key.fingerprint:
        raise VaultKeyError(
            f"the vault key does not match the identity vault (key fingerprint "
            f"{key.fingerprint}); load the key the vault was locked with"
        )
    aead = aead or AESGCM(key.subkey("identity-aead"))
    pseudonym = str(row.get("pseudonym"))
    try:
        plain = aead.decrypt(
            bytes(row["nonce"]), bytes(row["ciphertext"]), associated_data(pseudonym)
        )
        doc = json.loads(plain)
    except (InvalidTag, ValueError, TypeError, KeyError) as exc:
        raise TamperedVaultError(
            "an identity vault row failed authentication: the vault was altered or rows were moved"
        ) from exc
    if not isinstance(doc, dict) or doc.get("pseudonym") != pseudonym:
        raise TamperedVaultError("an identity vault row holds a document of another pseudonym")
    return doc


def uid_pairs(doc: dict[str, Any], keyword: str) -> list[tuple[str, str]]:
    """``(original, new)`` pairs of one UID level of a document."""
    level = doc.get(keyword) or {}
    return list(zip(level.get("old", ()), level.get("new", ()), strict=True))


def present(doc: dict[str, Any]) -> dict[str, Any]:
    """The user-facing identity: the document with UID levels as ``{original: new}`` maps."""
    out = {k: v for k, v in doc.items() if k != "format"}
    for kw in UID_KEYWORDS:
        if kw in out:
            out[kw] = dict(uid_pairs(doc, kw))
    return out
