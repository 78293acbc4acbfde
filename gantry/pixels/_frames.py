"""The Image Pixel module of a dataset, and access to its frames one at a time.

:class:`PixelLayout` reads and checks the attributes that describe the pixel
data; :func:`native_frame` slices one frame out of native (uncompressed) bytes
and :func:`encoded_frames` / :func:`encoded_frame` pull encoded frames out of
encapsulated pixel data through :mod:`pydicom.encaps`.  The small codestream
parsers (:func:`jpeg_info`, :func:`j2k_info`) read what the decoders need from
JPEG, JPEG-LS and JPEG 2000 headers.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
from pydicom.dataset import Dataset
from pydicom.encaps import generate_frames, get_frame
from pydicom.uid import UID, ExplicitVRBigEndian, ExplicitVRLittleEndian, ImplicitVRLittleEndian

from gantry.errors import CodecError
from gantry.pixels._transfer_syntax import SYNTAXES, SyntaxSpec

__all__ = ["PixelLayout", "encoded_frame", "encoded_frames", "j2k_info", "jpeg_info"]

PIXEL_KEYWORDS = ("PixelData", "FloatPixelData", "DoubleFloatPixelData")


def _int(ds: Dataset, keyword: str, default: int | None = None) -> int | None:
    value = ds.get(keyword, default)
    if value is None or value == "":
        return default
    return int(value)


@dataclasses.dataclass(frozen=True)
class PixelLayout:
    """The pixel-describing attributes of one dataset, checked once.

    ``dtype`` is the dtype of a decoded frame (native byte order), as pydicom's
    ``pixel_array`` would give it; ``frame_shape`` is ``(rows, columns)`` or
    ``(rows, columns, samples)``.
    """

    path: str | None
    transfer_syntax: UID
    spec: SyntaxSpec
    keyword: str
    rows: int
    columns: int
    samples: int
    bits_allocated: int
    bits_stored: int
    signed: bool
    photometric: str
    planar: int
    frames: int

    @classmethod
    def from_dataset(cls, ds: Dataset, path: str | Path | None = None) -> PixelLayout:
        """Read the layout of ``ds``; raise :class:`CodecError` when it cannot be decoded."""
        if path is None:
            path = getattr(ds, "filename", None) or None
            if path is not None and not isinstance(path, str | Path):
                path = None
        where = str(path) if path is not None else None
        meta = getattr(ds, "file_meta", None)
        ts_value = meta.get("TransferSyntaxUID") if meta is not None else None
        ts = UID(str(ts_value)) if ts_value else _syntax_from_encoding(ds, where)
        spec = SYNTAXES.get(ts)
        if spec is None:
            name = ts.name if ts.is_valid and ts.name != ts else "unknown"
            raise CodecError(where, ts, f"uses a transfer syntax Gantry cannot decode ({name})")
        keyword = next((k for k in PIXEL_KEYWORDS if k in ds), None)
        if keyword is None:
            raise CodecError(where, ts, "is missing: the dataset has no (7FE0,0010) Pixel Data")
        if keyword != "PixelData" and spec.encapsulated:
            raise CodecError(where, ts, f"{keyword} cannot be encapsulated")
        try:
            rows = _int(ds, "Rows")
            columns = _int(ds, "Columns")
            samples = _int(ds, "SamplesPerPixel", 1)
            bits_allocated = _int(ds, "BitsAllocated")
            bits_stored = _int(ds, "BitsStored", bits_allocated)
            signed = bool(_int(ds, "PixelRepresentation", 0))
            planar = _int(ds, "PlanarConfiguration", 0) or 0
            frames = _int(ds, "NumberOfFrames", 1) or 1
        except (TypeError, ValueError) as exc:
            raise CodecError(where, ts, f"has an unreadable Image Pixel attribute: {exc}") from None
        photometric = str(ds.get("PhotometricInterpretation", "") or "").strip()
        if keyword == "FloatPixelData":
            bits_allocated, bits_stored, signed = 32, 32, True
        elif keyword == "DoubleFloatPixelData":
            bits_allocated, bits_stored, signed = 64, 64, True
        missing = [
            k for k, v in (("Rows", rows), ("Columns", columns), ("BitsAllocated", bits_allocated))
            if not v
        ]  # fmt: skip
        if missing:
            raise CodecError(where, ts, f"lacks required attribute(s) {', '.join(missing)}")
        assert rows and columns and bits_allocated and samples and bits_stored is not None
        if bits_allocated != 1 and bits_allocated % 8:
            raise CodecError(where, ts, f"has BitsAllocated {bits_allocated}, not 1 or 8·n")
        if not 0 < bits_stored <= bits_allocated:
            raise CodecError(where, ts, f"has BitsStored {bits_stored} outside 1..{bits_allocated}")
        if samples not in (1, 3, 4):
            raise CodecError(where, ts, f"has SamplesPerPixel {samples}, not 1, 3 or 4")
        return cls(
            path=where, transfer_syntax=ts, spec=spec, keyword=keyword,
            rows=rows, columns=columns, samples=samples,
            bits_allocated=bits_allocated, bits_stored=bits_stored, signed=signed,
            photometric=photometric, planar=planar, frames=frames,
        )  # fmt: skip

    # ------------------------------------------------------------------ shapes
    @property
    def dtype(self) -> np.dtype[Any]:
        if self.keyword == "FloatPixelData":
            return np.dtype(np.float32)
        if self.keyword == "DoubleFloatPixelData":
            return np.dtype(np.float64)
        if self.bits_allocated == 1:
            return np.dtype(np.uint8)
        size = self.bits_allocated // 8
        if size not in (1, 2, 4, 8):
            raise self.error(f"has BitsAllocated {self.bits_allocated}, no numpy dtype holds it")
        return np.dtype(f"{'i' if self.signed else 'u'}{size}")

    @property
    def frame_shape(self) -> tuple[int, ...]:
        if self.samples == 1:
            return (self.rows, self.columns)
        return (self.rows, self.columns, self.samples)

    @property
    def array_shape(self) -> tuple[int, ...]:
        """The shape of the whole decoded array, as pydicom gives it."""
        return ((self.frames,) if self.frames > 1 else ()) + self.frame_shape

    @property
    def pixels_per_frame(self) -> int:
        return self.rows * self.columns * self.samples

    @property
    def frame_bits(self) -> int:
        """Bits one native frame occupies (YBR_FULL_422 is subsampled)."""
        bits = self.pixels_per_frame * self.bits_allocated
        if self.photometric == "YBR_FULL_422" and self.samples == 3:
            bits = bits // 3 * 2
        return bits

    @property
    def frame_nbytes(self) -> int:
        """Bytes of one decoded frame."""
        return self.pixels_per_frame * self.dtype.itemsize

    def error(self, reason: str) -> CodecError:
        return CodecError(self.path, self.transfer_syntax, reason)


def _syntax_from_encoding(ds: Dataset, where: str | None) -> UID:
    """The native syntax of a dataset read without file meta, from how it was encoded.

    pydicom refuses to decode such datasets; the encoding it parsed them with
    says where the native pixel bytes' endianness comes from.  Encapsulated
    data, or a dataset built in memory, has no such evidence: refuse.
    """
    encoding = getattr(ds, "original_encoding", (None, None))
    pixel = next((ds[k] for k in PIXEL_KEYWORDS if k in ds), None)
    encapsulated = pixel is not None and bool(getattr(pixel, "is_undefined_length", False))
    if encapsulated or encoding is None or None in encoding:
        raise CodecError(
            where, None, "has no transfer syntax: the file meta lacks (0002,0010) and the "
            "encoding cannot be told from the dataset",
        )  # fmt: skip
    implicit, little = encoding
    if not little:  # only the pixel bytes' byte order matters for native data
        return ExplicitVRBigEndian
    return ImplicitVRLittleEndian if implicit else ExplicitVRLittleEndian


# ---------------------------------------------------------------- native data
def native_frame(layout: PixelLayout, data: bytes | bytearray | memoryview, index: int,
                 *, be_swap_ow: bool = False) -> np.ndarray:  # fmt: skip
    """Return frame ``index`` of native pixel bytes as stored (before any colour step).

    The result is a fresh, writeable array shaped ``(rows, cols[, samples])`` in
    native byte order; planar configuration 1 is interleaved; YBR_FULL_422 is
    expanded to one Cb/Cr pair per pixel; BitsAllocated 1 is unpacked to 0/1.
    """
    bits = layout.frame_bits
    start_bit = bits * index
    end_bit = start_bit + bits
    if math.ceil(end_bit / 8) > len(data):
        raise layout.error(
            f"is truncated: {len(data)} bytes hold fewer than {layout.frames} frame(s) "
            f"of {math.ceil(bits / 8)} bytes"
        )
    if layout.bits_allocated == 1:
        first, last = start_bit // 8, math.ceil(end_bit / 8)
        raw = np.frombuffer(data, dtype=np.uint8, count=last - first, offset=first)
        bitsarr = np.unpackbits(raw, bitorder="little")
        offset = start_bit - first * 8
        return bitsarr[offset : offset + bits].reshape(layout.frame_shape)
    nbytes = bits // 8
    offset = start_bit // 8
    big = layout.transfer_syntax == ExplicitVRBigEndian
    if be_swap_ow and big and layout.bits_allocated == 8:
        # 8-bit data written as OW big endian: bytes are swapped in pairs
        lo = offset - (offset % 2)
        hi = min(offset + nbytes + ((offset + nbytes) % 2), len(data) - len(data) % 2)
        pairs = np.frombuffer(data, dtype=">u2", count=(hi - lo) // 2, offset=lo)
        flat = pairs.astype("<u2").view(np.uint8)[offset - lo : offset - lo + nbytes].copy()
    else:
        stored = layout.dtype.newbyteorder(">" if big else "<")
        count = nbytes // stored.itemsize
        flat = np.frombuffer(data, dtype=stored, count=count, offset=offset)
        flat = flat.astype(layout.dtype, copy=True)  # native order, writeable
    if layout.samples > 1 and layout.photometric == "YBR_FULL_422":
        flat = _expand_ybr422(flat)
    return shape_frame(layout, flat)


def _expand_ybr422(flat: np.ndarray) -> np.ndarray:
    """Y1 Y2 Cb Cr → Y1 Cb Cr Y2 Cb Cr (PS3.3 C.7.6.3.1.2)."""
    out = np.empty(flat.size // 2 * 3, dtype=flat.dtype)
    out[0::6] = flat[0::4]
    out[3::6] = flat[1::4]
    out[1::6] = out[4::6] = flat[2::4]
    out[2::6] = out[5::6] = flat[3::4]
    return out


def shape_frame(layout: PixelLayout, flat: np.ndarray) -> np.ndarray:
    """Shape a flat frame as ``(rows, cols[, samples])`` honouring PlanarConfiguration."""
    if layout.samples == 1:
        return flat.reshape(layout.rows, layout.columns)
    if layout.planar == 1 and layout.photometric != "YBR_FULL_422":
        planes = flat.reshape(layout.samples, layout.rows, layout.columns)
        return np.ascontiguousarray(planes.transpose(1, 2, 0))
    return flat.reshape(layout.rows, layout.columns, layout.samples)


# ----------------------------------------------------------- encapsulated data
def _extended_offsets(ds: Dataset) -> tuple[bytes, bytes] | None:
    if "ExtendedOffsetTable" in ds and "ExtendedOffsetTableLengths" in ds:
        return (ds.ExtendedOffsetTable, ds.ExtendedOffsetTableLengths)
    return None


def encoded_frames(ds: Dataset, layout: PixelLayout) -> Iterator[bytes]:
    """Yield each encoded frame of encapsulated pixel data, one at a time."""
    try:
        count = 0
        for frame in generate_frames(
            ds.PixelData, number_of_frames=layout.frames, extended_offsets=_extended_offsets(ds)
        ):
            yield frame
            count += 1
            if count == layout.frames:
                return
    except (ValueError, KeyError, EOFError) as exc:
        raise layout.error(f"is not valid encapsulated data: {exc}") from None
    if count < layout.frames:
        raise layout.error(f"holds {count} frame(s), NumberOfFrames says {layout.frames}")


def encoded_frame(ds: Dataset, layout: PixelLayout, index: int) -> bytes:
    """Return encoded frame ``index`` of encapsulated pixel data."""
    try:
        return get_frame(
            ds.PixelData, index, number_of_frames=layout.frames,
            extended_offsets=_extended_offsets(ds),
        )  # fmt: skip
    except (ValueError, KeyError, EOFError) as exc:
        raise layout.error(f"is not valid encapsulated data: {exc}") from None


# ------------------------------------------------------------ codestream info
_SOF_MARKERS = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC} | {0xF7}


def jpeg_info(data: bytes) -> dict[str, Any]:
    """Read precision, component ids and APP markers from a JPEG / JPEG-LS header.

    Returns a dict with ``precision``, ``component_ids``, ``jfif`` (an APP0 JFIF
    marker is present) and ``adobe_transform`` (the APP14 Adobe transform flag,
    or None).  Parsing stops at the first scan; a damaged header gives ``{}``.

    Examples
    --------
    >>> import imagecodecs, numpy as np
    >>> info = jpeg_info(imagecodecs.jpeg8_encode(np.zeros((8, 8), np.uint8)))
    >>> info["precision"], info["component_ids"], info["jfif"]
    (8, [1], True)
    """
    info: dict[str, Any] = {"jfif": False, "adobe_transform": None}
    if data[:2] != b"\xff\xd8":
        return {}
    pos, n = 2, len(data)
    while pos + 4 <= n:
        if data[pos] != 0xFF:
            return info
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker in (0x01, *range(0xD0, 0xD8)):
            pos += 2
            continue
        length = int.from_bytes(data[pos + 2 : pos + 4], "big")
        body = data[pos + 4 : pos + 2 + length]
        if marker == 0xE0 and body.startswith(b"JFIF\x00"):
            info["jfif"] = True
        elif marker == 0xEE and body.startswith(b"Adobe") and len(body) >= 12:
            info["adobe_transform"] = body[11]
        elif marker in _SOF_MARKERS and len(body) >= 6:
            info["precision"] = body[0]
            count = body[5]
            info["component_ids"] = [body[6 + 3 * i] for i in range(count) if 6 + 3 * i < len(body)]
        elif marker == 0xDA:  # start of scan: the header is over
            return info
        pos += 2 + length
    return info


def j2k_info(data: bytes) -> dict[str, Any]:
    """Read precision and signedness of the first component from a J2K/JP2 header.

    Examples
    --------
    >>> import imagecodecs, numpy as np
    >>> j2k_info(imagecodecs.jpeg2k_encode(np.zeros((8, 8), np.int16), codecformat="J2K"))
    {'precision': 16, 'signed': True, 'components': 1}
    """
    start = data.find(b"\xff\x4f\xff\x51", 0, 4096)
    if start < 0 or len(data) < start + 43:
        return {}
    siz = start + 4
    components = int.from_bytes(data[siz + 36 : siz + 38], "big")
    ssiz = data[siz + 38]
    return {"precision": (ssiz & 0x7F) + 1, "signed": bool(ssiz & 0x80), "components": components}
