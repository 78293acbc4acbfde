"""The pixel-edit sidecar: an append-only file of self-describing, checksummed blobs.

One blob per saved pixel edit::

    header   80 bytes  magic "GNTYPIX1", file_id <q, version <q, nbytes <Q,
                       dtype (numpy ``dtype.str``, 8 bytes, NUL padded), ndim <B, 7 pad,
                       shape: 4 × <Q (unused dimensions are 0)
    payload  nbytes    the array's bytes, C order
    trailer  32 bytes  blake2b-256 of the payload

The catalog table ``pixel_edits`` points at the *payload* (``offset``), so a
reader may also ``seek(offset); read(nbytes)`` without knowing the format; the
header and trailer make every blob verifiable and the file recoverable on its
own. Blobs are appended and fsynced before the catalog rows that reference them
are committed: a crash in between leaves unreferenced bytes, never a row
pointing at missing or partial bytes.
"""

from __future__ import annotations

import hashlib
import os
import struct
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np

from gantry.errors import StoreError

__all__ = ["HEADER_SIZE", "TRAILER_SIZE", "BlobRef", "append_blobs", "copy_blobs", "read_blob"]

MAGIC = b"GNTYPIX1"
_HEADER = struct.Struct("<8sqqQ8sB7x4Q")
HEADER_SIZE = _HEADER.size
TRAILER_SIZE = 32
_MAX_NDIM = 4
_COPY_CHUNK = 8 << 20


@dataclass(frozen=True, slots=True)
class BlobRef:
    """Where one blob's payload is, and what it holds."""

    file_id: int
    version: int
    offset: int
    nbytes: int
    dtype: str
    shape: tuple[int, ...]
    checksum: str

    @property
    def span(self) -> int:
        """Bytes the whole blob takes in the file."""
        return HEADER_SIZE + self.nbytes + TRAILER_SIZE


def _digest(data: bytes | memoryview) -> hashlib.blake2b:
    h = hashlib.blake2b(digest_size=32)
    h.update(data)
    return h


def _header(file_id: int, version: int, nbytes: int, dtype: str, shape: tuple[int, ...]) -> bytes:
    if len(shape) > _MAX_NDIM:
        raise StoreError(f"pixel edit of file_id {file_id}: at most {_MAX_NDIM} dimensions")
    dims = tuple(shape) + (0,) * (_MAX_NDIM - len(shape))
    return _HEADER.pack(MAGIC, file_id, version, nbytes, dtype.encode("ascii"), len(shape), *dims)


def fsync_dir(folder: Path) -> None:
    """Make a rename or a new file in ``folder`` durable."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def append_blobs(path: Path, items: Iterable[tuple[int, int, np.ndarray]]) -> list[BlobRef]:
    """Append ``(file_id, version, array)`` blobs to ``path``, fsync, return their places.

    Examples
    --------
    >>> import tempfile, pathlib, numpy as np
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "pixels.bin"
    >>> [ref] = append_blobs(p, [(7, 1, np.arange(6, dtype="<u2").reshape(2, 3))])
    >>> (ref.offset, ref.nbytes, ref.dtype, ref.shape)
    (80, 12, '<u2', (2, 3))
    >>> read_blob(p, ref).tolist()
    [[0, 1, 2], [3, 4, 5]]
    """
    created = not path.exists()
    refs: list[BlobRef] = []
    with open(path, "ab") as fh:
        pos = fh.seek(0, os.SEEK_END)
        for file_id, version, array in items:
            arr = np.ascontiguousarray(array)
            payload = arr.data.cast("B")
            dtype = arr.dtype.str
            shape = tuple(int(d) for d in arr.shape)
            digest = _digest(payload)
            fh.write(_header(file_id, version, arr.nbytes, dtype, shape))
            fh.write(payload)
            fh.write(digest.digest())
            refs.append(
                BlobRef(
                    file_id,
                    version,
                    pos + HEADER_SIZE,
                    arr.nbytes,
                    dtype,
                    shape,
                    digest.hexdigest(),
                )
            )
            pos += HEADER_SIZE + arr.nbytes + TRAILER_SIZE
        fh.flush()
        os.fsync(fh.fileno())
    if created:
        fsync_dir(path.parent)
    return refs


def _read_header(fh: BinaryIO, path: Path, ref: BlobRef) -> None:
    fh.seek(ref.offset - HEADER_SIZE)
    raw = fh.read(HEADER_SIZE)
    if len(raw) != HEADER_SIZE:
        raise _corrupt(path, ref, "truncated header")
    magic, file_id, version, nbytes, dtype, ndim, *dims = _HEADER.unpack(raw)
    if magic != MAGIC or file_id != ref.file_id or nbytes != ref.nbytes:
        raise _corrupt(path, ref, "header does not match the catalog")
    if dtype.rstrip(b"\0").decode("ascii") != ref.dtype or tuple(dims[:ndim]) != ref.shape:
        raise _corrupt(path, ref, "dtype or shape does not match the catalog")


def _corrupt(path: Path, ref: BlobRef, why: str) -> StoreError:
    return StoreError(
        f"pixel sidecar `{path}` is damaged at offset {ref.offset} (file_id {ref.file_id}): {why}"
    )


def read_blob(path: Path, ref: BlobRef) -> np.ndarray:
    """Read and verify one blob; return a read-only array."""
    try:
        fh = open(path, "rb")  # noqa: SIM115 - closed below
    except FileNotFoundError:
        raise StoreError(f"pixel sidecar `{path}` is missing") from None
    with fh:
        _read_header(fh, path, ref)
        payload = fh.read(ref.nbytes)
        trailer = fh.read(TRAILER_SIZE)
    if len(payload) != ref.nbytes or len(trailer) != TRAILER_SIZE:
        raise _corrupt(path, ref, "truncated payload")
    digest = _digest(payload)
    if digest.digest() != trailer or digest.hexdigest() != ref.checksum:
        raise _corrupt(path, ref, "checksum mismatch")
    arr = np.frombuffer(payload, dtype=np.dtype(ref.dtype)).reshape(ref.shape)
    return arr


def copy_blobs(src: Path, dst: Path, refs: list[BlobRef]) -> list[BlobRef]:
    """Copy the blobs ``refs`` of ``src`` into the new file ``dst`` (verified, fsynced).

    Returns the refs with their offsets in ``dst``. Memory use is bounded by one
    copy chunk, whatever the blob sizes.
    """
    out: list[BlobRef] = []
    with open(src, "rb") as fin, open(dst, "wb") as fout:
        for ref in sorted(refs, key=lambda r: r.offset):
            _read_header(fin, src, ref)
            start = fout.tell()
            fin.seek(ref.offset - HEADER_SIZE)
            fout.write(fin.read(HEADER_SIZE))
            h = hashlib.blake2b(digest_size=32)
            left = ref.nbytes
            while left:
                chunk = fin.read(min(left, _COPY_CHUNK))
                if not chunk:
                    raise _corrupt(src, ref, "truncated payload")
                h.update(chunk)
                fout.write(chunk)
                left -= len(chunk)
            trailer = fin.read(TRAILER_SIZE)
            if trailer != h.digest() or h.hexdigest() != ref.checksum:
                raise _corrupt(src, ref, "checksum mismatch")
            fout.write(trailer)
            out.append(
                BlobRef(
                    ref.file_id,
                    ref.version,
                    start + HEADER_SIZE,
                    ref.nbytes,
                    ref.dtype,
                    ref.shape,
                    ref.checksum,
                )
            )
        fout.flush()
        os.fsync(fout.fileno())
    return out
