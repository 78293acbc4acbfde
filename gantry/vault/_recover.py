"""Re-identify exported files with nothing but the files, the vault file and the key."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import polars as pl
import pydicom
from pydicom.errors import InvalidDicomError

from gantry.errors import VaultError
from gantry.vault._keys import read_key_file
from gantry.vault._seal import IDENTITY_SCHEMA
from gantry.vault._vault import recover_identity, recover_uid_row

_UID_RE = re.compile(r"^[0-9]+(\.[0-9]+)+$")


def read_vault(path: str | os.PathLike[str]) -> pl.DataFrame:
    """The vault rows from a Parquet file, or from a folder of them (``tables/identities``).

    Examples
    --------
    >>> read_vault("/nonexistent/identities.parquet")
    Traceback (most recent call last):
    ...
    gantry.errors.VaultError: vault `/nonexistent/identities.parquet` does not exist
    """
    source = Path(path).expanduser()
    if source.is_dir():
        files = sorted(source.glob("*.parquet"))
        if not files:
            raise VaultError(f"vault folder `{source}` holds no Parquet file")
    elif source.is_file():
        files = [source]
    else:
        raise VaultError(f"vault `{source}` does not exist")
    try:
        frame = pl.concat([pl.read_parquet(f) for f in files], how="vertical_relaxed")
    except (pl.exceptions.PolarsError, OSError) as exc:
        raise VaultError(f"`{source}` is not a readable identity vault") from exc
    missing = set(IDENTITY_SCHEMA) - set(frame.columns)
    if missing:
        raise VaultError(f"`{source}` is not an identity vault (missing {sorted(missing)})")
    return frame.select(list(IDENTITY_SCHEMA)).cast(IDENTITY_SCHEMA)


def _pseudonyms_of(source: Path) -> list[str]:
    files = [source] if source.is_file() else sorted(p for p in source.rglob("*") if p.is_file())
    found: set[str] = set()
    for f in files:
        try:
            ds = pydicom.dcmread(f, stop_before_pixels=True, specific_tags=["PatientID"])
        except (InvalidDicomError, OSError, ValueError, EOFError):
            continue  # manifests, maps, reports
        pid = ds.get("PatientID")
        if pid:
            found.add(str(pid))
    return sorted(found)


def recover_from_export(
    source: str | os.PathLike[str],
    vault: str | os.PathLike[str],
    key_path: str | os.PathLike[str],
    passphrase: str | bytes | None = None,
) -> dict[str, dict[str, Any]]:
    """Recover the identities behind exported DICOM, from the files, the vault and the key.

    Parameters
    ----------
    source : path or str
        An exported DICOM file, a folder of them (searched recursively; other files
        are ignored), or a new UID as found in an exported file.
    vault : path
        The vault: ``<session>.gantry/tables/identities/`` or one of its Parquet files.
    key_path : path
        The vault key file.
    passphrase : str, optional
        The key file's passphrase.

    Returns
    -------
    dict
        ``{pseudonym: identity}`` for every patient found (PatientID of the files is
        the pseudonym); for a UID, the one patient holding it, with the original UID
        under ``"original_uid"``.

    Raises
    ------
    VaultKeyError
        Wrong or unreadable key.
    TamperedVaultError
        A vault row failed authentication.
    VaultError
        Nothing to recover (no pseudonymised file, unknown pseudonym or UID).
    """
    key = read_key_file(key_path, passphrase)
    rows = read_vault(vault)
    text = os.fspath(source)
    path = Path(text).expanduser()
    if not path.exists() and isinstance(source, str) and _UID_RE.match(source):
        original, identity = recover_uid_row(rows, key, source)
        return {identity["pseudonym"]: {**identity, "original_uid": original}}
    if not path.exists():
        raise VaultError("`source` must be an existing exported file or folder, or a new UID")
    pseudonyms = _pseudonyms_of(path)
    if not pseudonyms:
        raise VaultError(f"no DICOM file with a PatientID under `{path}`")
    return {p: recover_identity(rows, key, p) for p in pseudonyms}
