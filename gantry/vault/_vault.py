"""The identity vault of a session: enable, load a key, lock, recover, rotate.

The vault is the Parquet-backed table ``identities`` (schema
:data:`~gantry.vault._seal.IDENTITY_SCHEMA`), one row per locked patient. The
catalog's ``meta`` records the fingerprint of the vault key
(``vault_key_fingerprint``), never the key.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import polars as pl
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from gantry.errors import StoreError, TamperedVaultError, VaultError, VaultKeyError
from gantry.store import Store
from gantry.vault._documents import Documents, identity_documents, patient_selection
from gantry.vault._keys import VaultKey, create_key_file, read_key_file
from gantry.vault._seal import (
    IDENTITY_SCHEMA,
    UID_KEYWORDS,
    check_fingerprints,
    open_document,
    present,
    seal,
    uid_pairs,
)
from gantry.vault._tags import uid_tag

IDENTITIES_TABLE = "identities"
META_FINGERPRINT = "vault_key_fingerprint"
META_NEXT_FINGERPRINT = "vault_key_fingerprint_next"
META_PENDING_LOCKS = "vault_pending_locks"
SEAL_CHUNK = 20_000
"""Patients sealed and written per part of a first lock (bounds its memory)."""

PathLike = str | os.PathLike[str]


def _vault_rows(store: Store) -> pl.DataFrame:
    if IDENTITIES_TABLE not in store.table_names():
        return pl.DataFrame(schema=IDENTITY_SCHEMA)
    return store.scan(IDENTITIES_TABLE).collect()


def enable(
    store: Store, key_path: PathLike, *, passphrase: str | bytes | None = None
) -> tuple[Path, VaultKey]:
    """Create the vault key file, or load the one already at ``key_path``.

    Re-running a script is safe: an existing key file is read (never
    overwritten) and becomes this session's key, unless the session's vault
    already holds identities under another key (``VaultKeyError``). A new key
    is refused when the vault holds identities (use :func:`rotate`).
    """
    if store.read_only:
        raise StoreError(f"session `{store.layout.catalog}` is open read-only")
    current = store.get_meta(META_FINGERPRINT)
    target = Path(key_path).expanduser()
    if target.exists():
        key = read_key_file(target, passphrase)
        if current is not None and key.fingerprint != current and _vault_rows(store).height:
            raise VaultKeyError(
                f"key file `{target}` holds another key than this session's vault "
                f"(key fingerprint {key.fingerprint}, the session expects {current}); "
                "pass the path of the session's key, or a new path to `rotate_key`"
            )
        if key.fingerprint != current:
            store.set_meta(META_FINGERPRINT, key.fingerprint)
        return target, key
    if current is not None and _vault_rows(store).height:
        raise VaultError(
            "reversible anonymization is already enabled and the vault holds identities "
            f"(key fingerprint {current}); load its key with `load_key` or use `rotate_key`"
        )
    key = VaultKey.generate()
    path = create_key_file(target, key, passphrase=passphrase)
    store.set_meta(META_FINGERPRINT, key.fingerprint)
    return path, key


def load_key(
    store: Store, key_path: PathLike, *, passphrase: str | bytes | None = None
) -> VaultKey:
    """Read the key at ``key_path`` and check it is this session's vault key."""
    key = read_key_file(key_path, passphrase)
    expected = store.get_meta(META_FINGERPRINT)
    if expected is None:
        raise VaultError(
            "reversible anonymization is not enabled in this session: "
            "call `enable_reversible_anonymization` first"
        )
    if key.fingerprint == expected:
        return key
    pending = store.get_meta(META_NEXT_FINGERPRINT)
    if pending == key.fingerprint and not store.read_only:
        rows = _vault_rows(store)
        if rows.height and set(rows["key_fingerprint"].to_list()) == {pending}:
            # a rotation wrote the new rows but stopped before switching the fingerprint
            store.set_meta(META_FINGERPRINT, pending)
            store.con.execute("DELETE FROM meta WHERE key = ?", [META_NEXT_FINGERPRINT]).fetchall()
            return key
    raise VaultKeyError(
        f"key file `{Path(key_path)}` holds the wrong key for this session "
        f"(key fingerprint {key.fingerprint}, the session expects {expected})"
    )


def require_key(store: Store, key: VaultKey | None) -> VaultKey:
    """``key``, checked against the session; a clear error when no key is loaded."""
    if key is None:
        raise VaultKeyError(
            "no vault key is loaded: call `load_key(path)` "
            "(or `enable_reversible_anonymization` to create one)"
        )
    if store.get_meta(META_FINGERPRINT) != key.fingerprint:
        raise VaultKeyError(
            f"the loaded key (fingerprint {key.fingerprint}) is not this session's vault key"
        )
    return key


def lock(
    store: Store,
    key: VaultKey | None,
    patients: Iterable[str] | None = None,
    *,
    query: str | None = None,
) -> int:
    """Encrypt the identities of the selected patients into ``identities``; return how many.

    Rows of patients locked earlier and not selected now are kept; selected ones are
    replaced (sealed again with fresh nonces).
    """
    key = require_key(store, key)
    if isinstance(patients, str):  # one ID, not an iterable of its characters
        patients = [patients]
    chosen = None if patients is None else [str(p) for p in patients]
    if "plan" not in store.table_names():
        return _defer(store, chosen, query)
    selection = "query" if query is not None else ("patients" if chosen is not None else "all")
    with store.run("lock", {"selection": selection, "key_fingerprint": key.fingerprint}) as counts:
        docs = identity_documents(store, patients=chosen, query=query)
        old = _vault_rows(store)
        if old.height:
            check_fingerprints(key, old)
            rows = seal(key, docs.frame, docs.uids)
            kept = old.join(rows.select("pseudonym"), on="pseudonym", how="anti")
            rows = pl.concat([kept, rows]).sort("pseudonym")
            store.write_table(IDENTITIES_TABLE, rows)
            total = rows.height
        else:  # a first lock: sealed and written part by part (bounded memory)
            total = docs.frame.height
            if total:
                store.write_table_parts(IDENTITIES_TABLE, _sealed_parts(key, docs))
        counts.update(
            {
                "patients": docs.frame.height,
                "instances": docs.instances,
                "instances_without_patient_id": docs.skipped,
                "vault_rows": total,
            }
        )
    return docs.frame.height


def _sealed_parts(key: VaultKey, docs: Documents) -> Iterator[pl.DataFrame]:
    """Vault rows of ``docs``, :data:`SEAL_CHUNK` patients at a time (their order kept)."""
    chunk = SEAL_CHUNK
    uids = docs.uids.sort("row")
    starts = list(range(0, docs.frame.height, chunk))
    bounds = uids["row"].search_sorted(pl.Series(starts + [docs.frame.height], dtype=pl.UInt32))
    for i, start in enumerate(starts):
        part = uids.slice(bounds[i], bounds[i + 1] - bounds[i])
        yield seal(key, docs.frame.slice(start, chunk), part.with_columns(pl.col("row") - start))


def _defer(store: Store, patients: list[str] | None, query: str | None) -> int:
    """Record a lock asked for before any plan exists; the next ``anonymize`` seals it.

    Pseudonyms come from the plan, so the identities cannot be sealed yet. The
    selection is kept in the catalog as the ``file_id`` of the selected instances
    (never a patient's ID or a query's text); :func:`seal_pending` locks their
    patients whole once the plan is written.
    """
    if store.read_only:
        raise StoreError(f"session `{store.layout.catalog}` is open read-only")
    chosen = (
        store.scan("instances")
        .select("file_id", pl.col("PatientID").cast(pl.String).fill_null(""))
        .filter(patient_selection(store, patients, query))
        .collect()
    )
    found = chosen["PatientID"].n_unique()
    if patients is not None:
        missing = len(set(patients)) - found
        if missing:
            raise VaultError(f"{missing} of the given `patients` are not in the index")
    pending = json.loads(store.get_meta(META_PENDING_LOCKS) or "[]")
    if patients is None and query is None:
        pending.append({"all": True})
    else:
        pending.append({"file_ids": chosen["file_id"].to_list()})
    store.set_meta(META_PENDING_LOCKS, json.dumps(pending))
    return found


def seal_pending(store: Store, key: VaultKey | None) -> int:
    """Seal the locks asked for before the plan existed (see :func:`lock`).

    Returns the patients locked; with no key loaded nothing is sealed and the
    requests stay recorded (a later ``anonymize`` with the key loaded seals them).
    """
    raw = store.get_meta(META_PENDING_LOCKS)
    if not raw or key is None or "plan" not in store.table_names():
        return 0
    done = 0
    for request in json.loads(raw):
        if request.get("all"):
            done += lock(store, key, None)
            continue
        ids = pl.Series("file_id", request["file_ids"], dtype=pl.Int64)
        chosen = (
            store.scan("instances")
            .filter(pl.col("file_id").is_in(ids.implode()))
            .select(pl.col("PatientID").cast(pl.String).fill_null(""))
            .unique()
            .collect()["PatientID"]
            .to_list()
        )
        if chosen:
            done += lock(store, key, chosen)
    store.con.execute("DELETE FROM meta WHERE key = ?", [META_PENDING_LOCKS]).fetchall()
    return done


def recover_identity(rows: pl.DataFrame, key: VaultKey, pseudonym: str) -> dict[str, Any]:
    """The identity document locked under ``pseudonym`` in ``rows``."""
    mine = rows.filter(pl.col("pseudonym") == pseudonym)
    if mine.height == 0:
        check_fingerprints(key, rows)
        raise VaultError(
            "no identity is locked under the given `pseudonym` (lock it with `lock_identities`)"
        )
    if mine.height > 1:
        raise TamperedVaultError("the identity vault holds several rows for one pseudonym")
    return present(open_document(key, mine.row(0, named=True)))


def recover_uid_row(rows: pl.DataFrame, key: VaultKey, new_uid: str) -> tuple[str, dict[str, Any]]:
    """``(original UID, identity)`` of the vault row whose lookup tags hold ``new_uid``."""
    check_fingerprints(key, rows)
    tag = uid_tag(key.subkey("uid-lookup"), new_uid)
    hits = rows.filter(pl.col("uid_keys").list.contains(pl.lit(tag, pl.Binary)))
    if hits.height == 0:
        raise VaultError("the given `new_uid` is not in the identity vault")
    aead = AESGCM(key.subkey("identity-aead"))
    for row in hits.iter_rows(named=True):
        doc = open_document(key, row, aead=aead)
        for kw in UID_KEYWORDS:
            for old, new in uid_pairs(doc, kw):
                if new == new_uid:
                    return old, present(doc)
    raise TamperedVaultError("the identity vault's lookup tags do not match its documents")


def identities(store: Store) -> pl.DataFrame:
    """The vault rows; a clear error when nothing was locked yet."""
    if IDENTITIES_TABLE not in store.table_names():
        raise VaultError("no identity vault in this session: run `lock_identities` first")
    return _vault_rows(store)


def rotate(
    store: Store,
    key: VaultKey | None,
    new_key_path: PathLike,
    *,
    passphrase: str | bytes | None = None,
) -> tuple[Path, VaultKey]:
    """Re-encrypt every vault row under a new key written to ``new_key_path``.

    The new key file is created first (``O_EXCL``); every row is opened with the old
    key (a tampered row aborts the rotation and nothing changes); the re-sealed table
    replaces the old one in one atomic rename; then the session's fingerprint
    switches. An interruption between the last two steps is finished by the next
    :func:`load_key` with the new key.
    """
    key = require_key(store, key)
    new_key = VaultKey.generate()
    path = create_key_file(new_key_path, new_key, passphrase=passphrase)
    try:
        rows = _vault_rows(store)
        with store.run(
            "rotate_key", {"from": key.fingerprint, "to": new_key.fingerprint}
        ) as counts:
            if rows.height:
                resealed = reseal(rows, key, new_key)
                store.set_meta(META_NEXT_FINGERPRINT, new_key.fingerprint)
                store.write_table(IDENTITIES_TABLE, resealed)
            store.set_meta(META_FINGERPRINT, new_key.fingerprint)
            store.con.execute("DELETE FROM meta WHERE key = ?", [META_NEXT_FINGERPRINT]).fetchall()
            counts["vault_rows"] = rows.height
    except BaseException:
        if not _in_use(store, new_key):
            # the vault is still wholly under the old key: the new key file is useless
            path.unlink(missing_ok=True)
            store.con.execute(
                "DELETE FROM meta WHERE key = ? AND value = ?",
                [META_NEXT_FINGERPRINT, new_key.fingerprint],
            ).fetchall()
        raise
    return path, new_key


def _in_use(store: Store, key: VaultKey) -> bool:
    """Whether the session or any vault row on disk already depends on ``key``."""
    if store.get_meta(META_FINGERPRINT) == key.fingerprint:
        return True
    try:
        rows = _vault_rows(store)
    except Exception:  # noqa: BLE001 - unreadable: keep the key, never risk losing it
        return True
    return key.fingerprint in set(rows["key_fingerprint"].to_list())


def reseal(rows: pl.DataFrame, old: VaultKey, new: VaultKey) -> pl.DataFrame:
    """Open every row with ``old`` and seal it again under ``new`` (fresh nonces)."""
    check_fingerprints(old, rows)
    aead = AESGCM(old.subkey("identity-aead"))
    docs = [open_document(old, r, aead=aead) for r in rows.iter_rows(named=True)]
    frame = pl.DataFrame(
        {
            "pseudonym": rows["pseudonym"],
            "document": [json.dumps(d, separators=(",", ":")) for d in docs],
        }
    )
    uids = pl.DataFrame(
        [
            (i, new)
            for i, d in enumerate(docs)
            for kw in UID_KEYWORDS
            for _, new in uid_pairs(d, kw)
        ],
        schema={"row": pl.UInt32, "new_uid": pl.String},
        orient="row",
    )
    locked = rows.select("pseudonym", "locked_at")
    out = seal(new, frame, uids)
    return out.drop("locked_at").join(locked, on="pseudonym").select(list(IDENTITY_SCHEMA))
