"""A quick reader of the few top-level elements a volume needs (explicit VR little endian).

``pydicom.dcmread(..., specific_tags=...)`` still parses every element of the
file.  The staged copies a conversion reads are written by Gantry's export, most
of them in Explicit VR Little Endian; for those, :func:`read_needed` walks the
top-level element headers with :mod:`struct`, skips what it does not need
(sequences of defined length whole) and hands pydicom only the wanted elements
as raw elements, so values are converted exactly as pydicom converts them.
Anything else (another transfer syntax, a sequence of undefined length, a
truncated file) returns None and the caller reads the file with pydicom.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable
from pathlib import Path
from typing import Final

from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.tag import Tag
from pydicom.uid import ExplicitVRLittleEndian

__all__ = ["read_needed"]

_EXPLICIT_LE: Final = ExplicitVRLittleEndian.encode()
_LONG: Final = frozenset(
    {b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"SV", b"UC", b"UN", b"UR", b"UT", b"UV"}
)
_HDR: Final = struct.Struct("<HH2sH")
_U32: Final = struct.Struct("<L")
_UNDEFINED: Final = 0xFFFFFFFF


def read_needed(path: Path, tags: Iterable[int]) -> Dataset | None:
    """The top-level elements ``tags`` of ``path`` as a dataset, or None (use pydicom).

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> from gantry.testing import make_instance
    >>> path = Path(tempfile.mkdtemp()) / "ct.dcm"
    >>> _ = make_instance(path, rows=8, columns=8)
    >>> ds = read_needed(path, [0x00280010, 0x00200032])
    >>> ds.Rows, len(ds.ImagePositionPatient)
    (8, 3)
    """
    data = path.read_bytes()
    if len(data) < 144 or data[128:132] != b"DICM":
        return None
    pos = 132
    ts = None
    # file meta: group 2, always explicit VR little endian
    while pos + 8 <= len(data):
        group, elem, vr, length = _HDR.unpack_from(data, pos)
        if group != 2:
            break
        head = 8
        if vr in _LONG:
            length = _U32.unpack_from(data, pos + 8)[0]
            head = 12
        if elem == 0x0010:
            ts = data[pos + head : pos + head + length].rstrip(b"\0 ")
        pos += head + length
    if ts != _EXPLICIT_LE:
        return None
    wanted = set(tags)
    last = max(wanted)
    ds = Dataset()
    end = len(data)
    while pos + 8 <= end:
        group, elem, vr, length = _HDR.unpack_from(data, pos)
        tag = group << 16 | elem
        if tag > last:
            break
        head = 8
        if vr in _LONG:
            length = _U32.unpack_from(data, pos + 8)[0]
            head = 12
        elif not (vr[:1].isalpha() and vr[1:].isalpha()):
            return None  # not an explicit VR after all
        if length == _UNDEFINED or pos + head + length > end:
            return None  # a sequence of undefined length, encapsulated pixels, truncation
        if tag in wanted:
            value = data[pos + head : pos + head + length]
            ds[tag] = RawDataElement(Tag(tag), vr.decode(), length, value, pos, False, True)
        pos += head + length
    meta = FileMetaDataset()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta = meta
    ds.set_original_encoding(False, True)
    return ds
