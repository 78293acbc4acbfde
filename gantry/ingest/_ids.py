"""Stable identifiers for indexed files."""

from __future__ import annotations

import os
from hashlib import blake2b

__all__ = ["file_id"]


def file_id(path: str | os.PathLike[str]) -> int:
    """Return the ``Int64`` join key of the file at `path`.

    The key is the first 8 bytes (little endian, signed) of
    ``blake2b(absolute_path.encode("utf-8"), digest_size=8)``, so the same
    file always gets the same key, on every run and every machine that sees
    it under the same absolute path.

    Parameters
    ----------
    path : str or os.PathLike
        The file's path; it is made absolute (and normalised) with
        :func:`os.path.abspath` first.  An object storage URL is used as it is.  Undecodable bytes in a POSIX file
        name (surrogate escapes) are hashed as the original bytes.

    Returns
    -------
    int
        A signed 64-bit integer.

    Examples
    --------
    >>> from gantry.ingest._ids import file_id
    >>> file_id("/data/ct/0001.dcm") == file_id("/data/ct/../ct/0001.dcm")
    True
    >>> -(2**63) <= file_id("/data/ct/0001.dcm") < 2**63
    True
    >>> file_id("s3://bucket/ct/0001.dcm") != file_id("s3://bucket/ct/0002.dcm")
    True
    """
    text = os.fspath(path)
    # an object storage URL ("s3://bucket/key") is hashed as it is
    absolute = text if "://" in text else os.path.abspath(text)
    digest = blake2b(absolute.encode("utf-8", "surrogateescape"), digest_size=8).digest()
    return int.from_bytes(digest, "little", signed=True)
