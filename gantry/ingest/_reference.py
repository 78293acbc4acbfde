"""The reference reader of ingest: pydicom, element by element.

:func:`read_reference` produces the same records as the fast walker
(:func:`gantry.ingest._walker.read_fast`) by letting pydicom parse the file
and rendering each element with :func:`gantry.ingest._values.render_pydicom`.
It is the correctness reference for the fast path and its fallback for every
file the fast path declines.

Like the fast path it never reads pixel bytes: pydicom stops at the first
top-level pixel element ((7FE0,0008), (7FE0,0009) or (7FE0,0010)); this module
parses that element's header, seeks over its value (walking the item headers
of encapsulated pixel data, as pydicom does) and lets pydicom read whatever
follows.  Deflated files are the exception: pydicom inflates them whole.

Where pydicom silently accepts a damaged file, this reader is stricter and
skips it as ``truncated``: a value shorter than its length, a partial element
header at the end of the file, pixel data running past the end.  An element
pydicom cannot convert (a binary value of the wrong length, an unknown VR) is
kept as ``UN`` bytes, which is what pydicom does with
``config.convert_wrong_length_to_UN = True``.

Examples
--------
>>> from pathlib import Path
>>> import pydicom
>>> from gantry.ingest._reference import read_reference
>>> from gantry.ingest._walker import Rows
>>> mr = Path(pydicom.__file__).parent / "data" / "test_files" / "MR_small_implicit.dcm"
>>> rows = Rows()
>>> info = read_reference(str(mr), mr.stat().st_size, rows)
>>> info.transfer_syntax, info.columns["Modality"], rows.tuples()[-1][:8]
('1.2.840.10008.1.2', 'MR', ('7FE00010', '7FE00010', 0, 'PixelData', 'OW', None, None, 8192))
"""

from __future__ import annotations

import struct
import warnings
import zlib
from contextlib import nullcontext
from typing import Any, BinaryIO, Final

from pydicom.datadict import dictionary_VR
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.filereader import _read_file_meta_info, read_dataset, read_partial, read_preamble
from pydicom.tag import BaseTag
from pydicom.uid import DeflatedExplicitVRLittleEndian
from pydicom.valuerep import EXPLICIT_VR_LENGTH_32

from gantry.ingest._limits import OVER_LIMIT, IngestLimits
from gantry.ingest._values import (
    DICOMDIR_UID,
    IMPLICIT_VR_LE,
    PIXEL_DATA,
    PIXEL_TAGS,
    SkipFile,
    column_keyword,
    render_pydicom,
    value_hash,
)
from gantry.ingest._walker import HeaderInfo, Rows, inflate_bounded, sniff

__all__ = ["read_reference"]

_UNDEFINED: Final = 0xFFFFFFFF
_LONG_VRS: Final = frozenset(vr.value for vr in EXPLICIT_VR_LENGTH_32)
_SCAN_CHUNK: Final = 1 << 16


def read_reference(
    path: str,
    size: int,
    rows: Rows,
    limits: IngestLimits | None = None,
    *,
    stream: BinaryIO | None = None,
) -> HeaderInfo:
    """Read one file with pydicom, appending its ``elements`` rows to `rows`.

    Parameters and results are those of :func:`gantry.ingest._walker.read_fast`.
    A deflated dataset is inflated once with a bound first, so pydicom never
    inflates a decompression bomb.

    Raises
    ------
    SkipFile
        The file is not indexed (any reason but ``empty`` and ``io_error``).
    OSError
        Reading the file failed.
    """
    with open(path, "rb") if stream is None else nullcontext(stream) as raw:
        stream = _Tracked(raw, path)
        if sniff(raw.read(132)) is None:
            raise SkipFile("not_dicom", "no DICM prefix and no group 0002/0008 tag at the start")
        limits = limits or IngestLimits()
        _check_inflated(raw, limits)
        raw.seek(0)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                return _Reader(stream, size, rows, limits).run()
            except SkipFile:
                raise
            except RecursionError as exc:
                raise SkipFile(OVER_LIMIT, limits.detail("max_depth")) from exc
            except OSError as exc:
                if stream.io_failed:
                    raise
                reason = "truncated" if stream.short or stream.eof else "unreadable"
                raise SkipFile(reason, f"pydicom: {type(exc).__name__}") from exc
            except InvalidDicomError as exc:
                raise SkipFile("not_dicom", "pydicom: InvalidDicomError") from exc
            except EOFError as exc:
                raise SkipFile("truncated", "pydicom: EOFError") from exc
            except Exception as exc:
                reason = "truncated" if stream.short else "unreadable"
                raise SkipFile(reason, f"pydicom: {type(exc).__name__}") from exc


def _check_inflated(raw: BinaryIO, limits: IngestLimits) -> None:
    """Skip a deflated file whose dataset inflates past ``limits.max_inflated_bytes``."""
    raw.seek(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pydicom's value warnings quote the values
        try:
            read_preamble(raw, True)  # type: ignore[arg-type]
            meta = _read_file_meta_info(raw)  # type: ignore[arg-type]
            deflated = str(meta.get("TransferSyntaxUID", "")) == DeflatedExplicitVRLittleEndian
        except Exception:
            return  # not a readable file meta: pydicom decides what the file is
    if not deflated:
        return
    try:
        inflate_bounded(raw, limits)
    except zlib.error:
        return  # pydicom reports the broken stream


class _Tracked:
    """A file wrapper noting short reads (a file ending inside something)."""

    def __init__(self, raw: BinaryIO, name: str) -> None:
        self._raw = raw
        self.name = name
        self.short = False
        self.eof = False
        self.io_failed = False

    def read(self, size: int | None = -1) -> bytes:
        try:
            data = self._raw.read(-1 if size is None else size)
        except OSError:
            self.io_failed = True
            raise
        if size is not None and size > 0 and len(data) < size:
            self.eof = True
            if data:
                self.short = True
        return data

    def seek(self, offset: int, whence: int = 0) -> int:
        return self._raw.seek(offset, whence)

    def tell(self) -> int:
        return self._raw.tell()


def _stop_at_pixels(tag: BaseTag, vr: str | None, length: int) -> bool:
    return tag in PIXEL_TAGS


class _Reader:
    def __init__(self, stream: _Tracked, size: int, rows: Rows, limits: IngestLimits) -> None:
        self.limits = limits
        self.stream = stream
        self.size = size
        self.rows = rows
        self.columns: dict[str, str] = {}
        self.pixel: tuple[int | None, int] | None = None

    def run(self) -> HeaderInfo:
        ds = read_partial(self.stream, stop_when=_stop_at_pixels, force=True)  # type: ignore[arg-type]
        meta = ds.file_meta
        if str(meta.get("MediaStorageSOPClassUID", "")) == DICOMDIR_UID:
            raise SkipFile("dicomdir", "a DICOMDIR (media storage directory), not an instance")
        syntax = meta.get("TransferSyntaxUID")
        transfer_syntax = IMPLICIT_VR_LE if syntax is None else render_pydicom("UI", syntax) or ""

        implicit, little = self.encoding(ds)
        stream: Any = ds.buffer
        deflated = stream is not self.stream
        here = stream.tell()
        self.emit(meta, 0, "", (self.stream, False, True))
        self.emit(ds, 0, "", (stream, implicit, little))
        end = self.size
        if deflated:
            stream.seek(0, 2)
            end = stream.tell()
        stream.seek(here)
        charset = ds.original_character_set
        while stream.tell() < end:
            self.skip_pixels(ds, stream, end, implicit, little, deflated)
            if stream.tell() >= end:
                break
            tail = read_dataset(
                stream,
                implicit,
                little,
                stop_when=_stop_at_pixels,
                parent_encoding=charset,
            )
            here = stream.tell()
            self.emit(tail, 0, "", (stream, implicit, little))
            stream.seek(here)
        if self.stream.short:
            raise SkipFile("truncated", "the file ends inside an element")
        offset, length = self.pixel or (None, None)
        return HeaderInfo(transfer_syntax, offset, length, self.columns)

    @staticmethod
    def encoding(ds: Dataset) -> tuple[bool, bool]:
        """The encoding pydicom actually read the dataset with."""
        for raw in ds._dict.values():
            if isinstance(raw, RawDataElement):
                return bool(raw.is_implicit_VR), bool(raw.is_little_endian)
        implicit, little = ds.original_encoding
        return bool(implicit), bool(little)

    def emit(
        self, ds: Dataset, depth: int, prefix: str, source: tuple[Any, bool, bool] | None
    ) -> None:
        """Append the rows of every element of `ds`, recursing into sequences.

        `source` is (stream, implicit VR, little endian) for a dataset whose
        elements pydicom may already have converted while reading it (the
        value length is then read back from the element header).
        """
        rows = self.rows
        if depth > self.limits.max_depth:
            raise SkipFile(OVER_LIMIT, self.limits.detail("max_depth"))
        # converting one element can convert others (private creators, Pixel
        # Representation): take the raw lengths first
        for tag, raw in sorted(ds._dict.items()):
            raw_length: int | None = None
            raw_value: bytes | None = None
            if isinstance(raw, RawDataElement):
                raw_length = raw.length
                raw_value = raw.value
                if (
                    raw_value is not None
                    and raw_length != _UNDEFINED
                    and len(raw_value) < raw_length
                ):
                    raise SkipFile(
                        "truncated", f"element ({tag >> 16:04X},{tag & 0xFFFF:04X}) is cut short"
                    )
            elif source is not None and raw.VR != "SQ" and raw.file_tell is not None:
                raw_length = _header_length(*source, raw.file_tell)
            if (
                raw_length is not None
                and raw_length != _UNDEFINED
                and raw_length > self.limits.max_element_bytes
                and tag not in PIXEL_TAGS
                and raw.VR != "SQ"
            ):
                raise SkipFile(OVER_LIMIT, self.limits.detail("max_element_bytes", raw_length))
            try:
                elem = ds[tag]
                vr = str(getattr(elem.VR, "value", elem.VR))
                value = elem.value
            except Exception:
                # what pydicom does with convert_wrong_length_to_UN = True
                vr, value = "UN", raw_value
            taghex = f"{tag:08X}"
            path = prefix + taghex
            creator = self.creator(ds, tag)
            if vr == "SQ":
                rows.add(path, vr, creator, None, len(value), None)
                for index, item in enumerate(value):
                    self.emit(item, depth + 1, f"{path}[{index}].", None)
                continue
            if raw_length is None or raw_length == _UNDEFINED:
                length = len(value) if isinstance(value, bytes | bytearray) else 0
            else:
                length = raw_length
            if tag in PIXEL_TAGS:
                rows.add(path, vr, creator, None, length, None)
                continue
            text = render_pydicom(vr, value)
            digest = (
                value_hash(value if isinstance(value, bytes | bytearray) else raw_value)
                if text is None
                else None
            )
            rows.add(path, vr, creator, text, length, digest)
            if depth == 0 and text is not None:
                column = column_keyword(tag)
                if column is not None:
                    self.columns[column] = text

    @staticmethod
    def creator(ds: Dataset, tag: int) -> str | None:
        """The private creator of `tag` (block (gggg,0010)-(gggg,00FF) only)."""
        group, elem = tag >> 16, tag & 0xFFFF
        if not group & 1 or elem < 0x1000:
            return None
        creator_tag = group << 16 | elem >> 8
        if creator_tag not in ds._dict:
            return None
        try:
            creator = ds[creator_tag]
        except Exception:
            return None
        return render_pydicom(str(creator.VR), creator.value)

    def skip_pixels(
        self, ds: Dataset, stream: Any, end: int, implicit: bool, little: bool, deflated: bool
    ) -> None:
        """Record the pixel element at the stream position and seek past it."""
        endian = "<" if little else ">"
        start = stream.tell()
        header = stream.read(8)
        if len(header) < 8:
            raise SkipFile("truncated", "the file ends inside an element header")
        group, elem = struct.unpack(endian + "HH", header[:4])
        tag = group << 16 | elem
        if tag not in PIXEL_TAGS:
            raise SkipFile("unreadable", "pydicom stopped before a non-pixel element")
        if implicit:
            (length,) = struct.unpack(endian + "L", header[4:])
            vr = str(dictionary_VR(tag))
        else:
            vr = header[4:6].decode("latin_1")
            if vr in _LONG_VRS:
                extra = stream.read(4)
                if len(extra) < 4:
                    raise SkipFile("truncated", "the file ends inside an element header")
                (length,) = struct.unpack(endian + "L", extra)
            else:
                (length,) = struct.unpack(endian + "H", header[6:])
        value_start = stream.tell()
        if length == _UNDEFINED:
            value_length = _encapsulated_length(stream, endian, end)
            element_end = value_start + value_length + 8
        else:
            value_length = length
            element_end = value_start + length
            if element_end > end:
                raise SkipFile("truncated", "pixel data runs past the end of the file")
        if vr == "OB or OW":
            # pydicom's correction for (7FE0,0010) on a top-level dataset
            if length == _UNDEFINED:
                vr = "OB"
            elif ds.original_encoding[0]:
                vr = "OW"
            else:
                vr = "OW" if int(ds.get("BitsAllocated", 0) or 0) > 8 else "OB"
        taghex = f"{tag:08X}"
        self.rows.add(taghex, vr, None, None, value_length, None)
        if tag == PIXEL_DATA:
            self.pixel = (None if deflated else start, element_end - start)
        stream.seek(element_end)


def _header_length(stream: Any, implicit: bool, little: bool, value_tell: int) -> int:
    """Read back the value length field of the element whose value starts at `value_tell`."""
    endian = "<" if little else ">"
    stream.seek(max(value_tell - 8, 0))
    header = stream.read(8)
    if len(header) != 8:
        raise SkipFile("unreadable", "cannot read back an element header")
    if implicit or header[:2].decode("latin_1") in _LONG_VRS and header[2:4] == b"\0\0":
        length = int(struct.unpack(endian + "L", header[4:])[0])
    else:
        length = int(struct.unpack(endian + "H", header[6:])[0])
    stream.seek(0, 2)
    if length != _UNDEFINED and value_tell + length > stream.tell():
        raise SkipFile("truncated", "an element runs past the end of the file")
    return length


def _encapsulated_length(stream: Any, endian: str, end: int) -> int:
    """Return the value length of undefined-length pixel data at the stream position.

    Walks the item headers, seeking over fragments; if they do not parse,
    scans for the sequence delimiter as pydicom does.  Leaves the stream
    after the delimiter.
    """
    start = stream.tell()
    item = struct.pack(endian + "HH", 0xFFFE, 0xE000)
    delimiter = struct.pack(endian + "HH", 0xFFFE, 0xE0DD)
    position = start
    while position + 8 <= end:
        stream.seek(position)
        header = stream.read(8)
        if header[:4] == delimiter:
            return int(position - start)
        if header[:4] != item:
            break
        (length,) = struct.unpack(endian + "L", header[4:])
        position += 8 + length
    # not a clean item structure: scan for the delimiter bytes
    stream.seek(start)
    carry = b""
    carry_start = start  # stream position of carry[0]
    while True:
        chunk = stream.read(_SCAN_CHUNK)
        if not chunk:
            raise SkipFile("truncated", "no sequence delimiter after encapsulated pixel data")
        data = carry + chunk
        found = data.find(delimiter)
        if found >= 0:
            position = carry_start + found
            stream.seek(position + 8)
            return int(position - start)
        carry = data[-3:]
        carry_start += len(data) - len(carry)
