"""Keyed, deterministic derivations: UIDs, pseudonym keys, date offsets.

Every function is an HMAC-SHA256 of the value under the session secret with a
domain prefix, so the same input and secret always give the same output — across
files, series, studies, runs and machines — and nobody without the secret can
recompute or invert it.
"""

from __future__ import annotations

import hmac
from collections.abc import Iterable

import polars as pl

MAX_UID_LENGTH = 64


def keyed_int(secret: bytes, domain: str, value: str) -> int:
    """A 256-bit integer, HMAC-SHA256 of ``domain|value`` under ``secret``.

    Examples
    --------
    >>> keyed_int(b"k", "uid", "1.2.3") == keyed_int(b"k", "uid", "1.2.3")
    True
    >>> keyed_int(b"k", "uid", "1.2.3") == keyed_int(b"other", "uid", "1.2.3")
    False
    """
    digest = hmac.digest(secret, f"{domain}|{value}".encode(), "sha256")
    return int.from_bytes(digest, "big")


def keyed_hex(secret: bytes, domain: str, value: str, length: int = 16) -> str:
    """Hex text of the keyed hash, ``length`` characters.

    Examples
    --------
    >>> len(keyed_hex(b"k", "patient", "PID1"))
    16
    """
    return hmac.digest(secret, f"{domain}|{value}".encode(), "sha256").hex()[:length]


def remap_uid(secret: bytes, uid: str, root: str = "2.25") -> str:
    """The replacement of ``uid``: ``root`` + ``.`` + a keyed decimal, at most 64 characters.

    With the default root this is a ``2.25.<int>`` UID (PS3.5 B.2) built from 128 bits
    of the keyed hash.

    Examples
    --------
    >>> new = remap_uid(b"secret", "1.2.840.113619.2.55.3")
    >>> new.startswith("2.25.") and len(new) <= 64
    True
    >>> new == remap_uid(b"secret", "1.2.840.113619.2.55.3")
    True
    """
    value = keyed_int(secret, "uid", uid) >> 128  # 128 bits
    room = MAX_UID_LENGTH - len(root) - 1
    digits = str(value)[:room].lstrip("0") or "1"
    return f"{root}.{digits}"


def uid_map(secret: bytes, uids: Iterable[str], root: str = "2.25") -> pl.DataFrame:
    """Frame ``id_old, id_new`` for the distinct UIDs given.

    Examples
    --------
    >>> uid_map(b"s", ["1.2.3", "1.2.3", "1.2.4"]).height
    2
    """
    distinct = sorted({u for u in uids if u})
    return pl.DataFrame(
        {"id_old": distinct, "id_new": [remap_uid(secret, u, root) for u in distinct]},
        schema={"id_old": pl.String, "id_new": pl.String},
    )


def date_offset(secret: bytes, patient_key: str, min_days: int, max_days: int) -> int:
    """The patient's date shift in days, inside ``[min_days, max_days]``.

    Examples
    --------
    >>> -365 <= date_offset(b"s", "PID1", -365, -1) <= -1
    True
    """
    span = max_days - min_days + 1
    return min_days + keyed_int(secret, "date", patient_key) % span
