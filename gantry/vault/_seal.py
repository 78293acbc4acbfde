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

import polars as pl
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

    ``new_uids`` (``pseudonym, new_uid``) gives each row its ``uid_keys``: the keyed
    lookup tags of the patient's new UIDs.
    """
    n = documents.height
    aead = AESGCM(key.subkey("identity-aead"))
    pool = secrets.token_bytes(NONCE_BYTES * n)
    nonces = [pool[i : i + NONCE_BYTES] for i in range(0, NONCE_BYTES * n, NONCE_BYTES)]
    pseudonyms = documents["pseudonym"].to_list()
    texts = documents["document"].to_list()
    ciphertexts = [
        aead.encrypt(nonce, text.encode("utf-8"), associated_data(p))
        for nonce, text, p in zip(nonces, texts, pseudonyms, strict=True)
    ]
    tags = pl.Series(
        "uid_key", uid_tags(key.subkey("uid-lookup"), new_uids["new_uid"]), dtype=pl.Binary
    )
    keys = (
        new_uids.select("pseudonym")
        .with_columns(tags)
        .group_by("pseudonym")
        .agg(pl.col("uid_key").sort().alias("uid_keys"))
    )
    when = (locked_at or datetime.now(UTC)).astimezone(UTC)
    rows = pl.DataFrame(
        {
            "pseudonym": pseudonyms,
            "key_fingerprint": [key.fingerprint] * n,
            "nonce": nonces,
            "ciphertext": ciphertexts,
        },
        schema={
            k: IDENTITY_SCHEMA[k] for k in ("pseudonym", "key_fingerprint", "nonce", "ciphertext")
        },
    ).with_columns(pl.lit(when).cast(IDENTITY_SCHEMA["locked_at"]).alias("locked_at"))
    rows = rows.join(keys, on="pseudonym", how="left").with_columns(
        pl.col("uid_keys").fill_null(pl.lit([], IDENTITY_SCHEMA["uid_keys"]))
    )
    return rows.select(list(IDENTITY_SCHEMA)).cast(IDENTITY_SCHEMA)


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
