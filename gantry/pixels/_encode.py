"""Encode decoded frames to a transfer syntax: :func:`encode`, :func:`apply_encoded`.

Frames are what :func:`gantry.pixels.decode` returns for the dataset (stored
values, RGB for colour that pydicom converts).  Compressed frames are
encapsulated with a Basic Offset Table (an Extended Offset Table past 4 GiB),
and every lossless result is decoded again and compared with its input.
"""

from __future__ import annotations

import dataclasses
import io
import math
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sized
from concurrent.futures import Future, ThreadPoolExecutor
from types import MappingProxyType
from typing import Any, TypeVar

import numpy as np
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate, encapsulate_extended
from pydicom.tag import Tag
from pydicom.uid import UID

from gantry.errors import CodecError, ConfigError
from gantry.pixels._codecs import codec, decode_encoded_frame, decoded_photometric
from gantry.pixels._frames import PIXEL_KEYWORDS, PixelLayout
from gantry.pixels._transfer_syntax import SYNTAXES, Compression, resolve_target

__all__ = [
    "EncodedPixels",
    "apply_encoded",
    "can_encode",
    "check_option",
    "encode",
    "encode_pipeline",
    "ordered_map",
]

T = TypeVar("T")
R = TypeVar("R")

_LOSSY_METHOD = {
    Compression.J2K_LOSSY: "ISO_15444_1",
    Compression.JPEGLS_NEAR: "ISO_14495_1",
}
_DEFAULT_LEVEL = {Compression.J2K_LOSSY: 50.0, Compression.JPEGLS_NEAR: 2}


@dataclasses.dataclass(frozen=True, eq=False)
class EncodedPixels:
    """Encoded pixel data and the dataset changes that go with it.

    Attributes
    ----------
    transfer_syntax : pydicom.uid.UID
        The transfer syntax of ``pixel_data``.
    compression : Compression
        The compression that wrote it.
    pixel_data : bytes
        The element value: native bytes (even length) or encapsulated fragments.
    pixel_keyword : str
        ``PixelData`` (or ``FloatPixelData`` / ``DoubleFloatPixelData``).
    pixel_vr : str
        The VR to write the pixel element with.
    attributes : Mapping[str, Any]
        Keyword → new value for the Image Pixel and lossy-compression attributes;
        ``None`` means remove the attribute.
    frames : int
        Number of frames encoded.
    lossy : bool
        Whether decoding may differ from the input frames.
    original_nbytes : int
        Bytes of the decoded frames that went in.
    """

    transfer_syntax: UID
    compression: Compression
    pixel_data: bytes
    pixel_keyword: str
    pixel_vr: str
    attributes: Mapping[str, Any]
    frames: int
    lossy: bool
    original_nbytes: int

    @property
    def encapsulated(self) -> bool:
        return bool(SYNTAXES[self.transfer_syntax].encapsulated)

    @property
    def ratio(self) -> float:
        """Decoded bytes / encoded bytes."""
        return self.original_nbytes / max(len(self.pixel_data), 1)


# ------------------------------------------------------------------- layouts
def _target_layout(ds: Dataset, uid: UID, comp: Compression, frames: int) -> PixelLayout:
    """The layout the encoded data will have, with the output photometric."""
    keyword = next((k for k in PIXEL_KEYWORDS if k in ds and k != "PixelData"), "PixelData")
    meta = getattr(ds, "file_meta", None)
    source = str(meta.get("TransferSyntaxUID", "")) if meta is not None else ""
    family = SYNTAXES[source].family if source in SYNTAXES else "native"

    def need(name: str) -> int:
        value = ds.get(name)
        if value in (None, ""):
            raise CodecError(None, uid, f"cannot be encoded: the dataset lacks {name}")
        return int(value)

    samples = int(ds.get("SamplesPerPixel", 1) or 1)
    bits_allocated = need("BitsAllocated") if keyword == "PixelData" else 0
    photometric = decoded_photometric(
        str(ds.get("PhotometricInterpretation", "MONOCHROME2")).strip(), samples,
        bits_allocated, family,
    )  # fmt: skip
    if samples == 3 and photometric == "RGB":
        if comp in (Compression.J2K, Compression.HTJ2K, Compression.HTJ2K_RPCL):
            photometric = "YBR_RCT"
        elif comp is Compression.J2K_LOSSY:
            photometric = "YBR_ICT"
    bits_stored = int(ds.get("BitsStored", bits_allocated) or bits_allocated)
    if keyword == "FloatPixelData":
        bits_allocated = bits_stored = 32
    elif keyword == "DoubleFloatPixelData":
        bits_allocated = bits_stored = 64
    return PixelLayout(
        path=None, transfer_syntax=UID(uid), spec=SYNTAXES[uid], keyword=keyword,
        rows=need("Rows"), columns=need("Columns"), samples=samples,
        bits_allocated=bits_allocated, bits_stored=bits_stored,
        signed=bool(int(ds.get("PixelRepresentation", 0) or 0)) or keyword != "PixelData",
        photometric=photometric, planar=0, frames=frames,
    )  # fmt: skip


def _iter_input(frames: Iterable[np.ndarray] | np.ndarray, layout: PixelLayout
                ) -> tuple[Iterator[np.ndarray], int | None]:  # fmt: skip
    frame_ndim = 2 if layout.samples == 1 else 3
    if isinstance(frames, np.ndarray):
        if frames.ndim == frame_ndim:
            return iter((frames,)), 1
        if frames.ndim == frame_ndim + 1:
            return iter(frames), len(frames)
        raise CodecError(
            None, layout.transfer_syntax,
            f"cannot be encoded from an array shaped {frames.shape} "
            f"(SamplesPerPixel {layout.samples} needs {frame_ndim} or {frame_ndim + 1} axes)",
        )  # fmt: skip
    count = len(frames) if isinstance(frames, Sized) else None
    return iter(frames), count


def _check_frame(frame: np.ndarray, layout: PixelLayout, index: int) -> np.ndarray:
    frame = np.asarray(frame)
    if frame.shape != layout.frame_shape:
        raise layout.error(
            f"cannot be encoded: frame {index} is shaped {frame.shape}, "
            f"the dataset says {layout.frame_shape}"
        )
    dtype = layout.dtype
    if frame.dtype != dtype:
        if frame.dtype.kind not in "uif" or (dtype.kind in "ui" and frame.dtype.kind == "f"):
            raise layout.error(f"cannot be encoded: frame {index} has dtype {frame.dtype}, "
                               f"the dataset needs {dtype}")  # fmt: skip
        if dtype.kind in "ui" and frame.size:
            info = np.iinfo(dtype)
            if frame.min() < info.min or frame.max() > info.max:
                raise layout.error(f"cannot be encoded: frame {index} has values outside {dtype}")
        frame = frame.astype(dtype)
    if dtype.kind in "ui" and layout.bits_stored < layout.bits_allocated and frame.size:
        bits = layout.bits_stored
        lo, hi = (
            (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if layout.signed else (0, (1 << bits) - 1)
        )
        if frame.min() < lo or frame.max() > hi:
            raise layout.error(
                f"cannot be encoded: frame {index} has values outside BitsStored {bits} "
                f"({lo}..{hi})"
            )
    return frame


# ------------------------------------------------------------ frame encoders
def _unsigned(frame: np.ndarray) -> np.ndarray:
    return frame.view(f"u{frame.dtype.itemsize}") if frame.dtype.kind == "i" else frame


def _resolutions(layout: PixelLayout) -> int:
    return max(1, min(6, int(math.log2(max(1, min(layout.rows, layout.columns)))) + 1))


def _encode_rle(frame: np.ndarray, layout: PixelLayout) -> bytes:
    packbits = codec("packbits", "encode", layout)
    size = frame.dtype.itemsize
    if layout.samples * size > 15:
        raise layout.error("cannot be RLE encoded: more than 15 segments")
    planes = np.ascontiguousarray(frame, dtype=frame.dtype.newbyteorder("<")).view(np.uint8)
    planes = planes.reshape(layout.rows, layout.columns, layout.samples, size)
    segments = []
    for sample in range(layout.samples):
        for byte in range(size - 1, -1, -1):  # most significant byte first
            seg = bytes(packbits(np.ascontiguousarray(planes[:, :, sample, byte])))
            segments.append(seg + b"\0" if len(seg) % 2 else seg)
    offsets = [64]
    for seg in segments[:-1]:
        offsets.append(offsets[-1] + len(seg))
    header = np.zeros(16, dtype="<u4")
    header[0] = len(segments)
    header[1 : 1 + len(offsets)] = offsets
    return header.tobytes() + b"".join(segments)


def _encode_jpeg_lossless(frame: np.ndarray, layout: PixelLayout) -> bytes:
    if layout.bits_allocated > 16 or layout.bits_stored < 2:
        raise layout.error("cannot be JPEG Lossless encoded: BitsStored must be 2..16")
    data = _unsigned(frame)
    if layout.bits_stored < 8 * data.dtype.itemsize:
        data = data & data.dtype.type((1 << layout.bits_stored) - 1)
    kwargs: dict[str, Any] = {"lossless": True, "predictor": 1, "bitspersample": layout.bits_stored}
    if layout.samples == 3:
        kwargs.update(colorspace="RGB", outcolorspace="RGB")
    return bytes(codec("jpeg8", "encode", layout)(data, **kwargs))


def _encode_jpegls(frame: np.ndarray, layout: PixelLayout, near: int) -> bytes:
    if layout.bits_allocated > 16:
        raise layout.error("cannot be JPEG-LS encoded: BitsAllocated must be 8 or 16")
    data = np.ascontiguousarray(_unsigned(frame))
    out = data.nbytes * 2 + 65536
    return bytes(codec("jpegls", "encode", layout)(data, level=near, out=out))


def _encode_j2k(frame: np.ndarray, layout: PixelLayout, psnr: float | None, threads: int) -> bytes:
    if layout.bits_stored > 16:
        raise layout.error("cannot be JPEG 2000 encoded here: BitsStored must be at most 16")
    lossless = psnr is None
    return bytes(
        codec("jpeg2k", "encode", layout)(
            np.ascontiguousarray(frame), level=0 if lossless else psnr, codecformat="J2K",
            reversible=lossless, bitspersample=layout.bits_stored,
            mct=layout.photometric in ("YBR_RCT", "YBR_ICT"),
            resolutions=_resolutions(layout), numthreads=threads,
        )
    )  # fmt: skip


def _tilepart_resolutions() -> int:
    import imagecodecs

    return int(imagecodecs.HTJ2K.TILEPART.RESOLUTIONS)


def _encode_htj2k(frame: np.ndarray, layout: PixelLayout, rpcl: bool) -> bytes:
    if layout.bits_stored > 16:
        raise layout.error("cannot be HTJ2K encoded here: BitsStored must be at most 16")
    kwargs: dict[str, Any] = {}
    if rpcl:  # RPCL progression is OpenJPH's default; add TLM and tile-parts by resolution
        kwargs = {"tlm": True, "tilepart": _tilepart_resolutions()}
    return bytes(
        codec("htj2k", "encode", layout)(
            np.ascontiguousarray(frame), reversible=True,
            rgb=layout.photometric == "YBR_RCT", resolutions=_resolutions(layout), **kwargs,
        )
    )  # fmt: skip


def can_encode(layout: PixelLayout, comp: Compression) -> bool:
    """Whether ``comp`` can write pixel data shaped like ``layout`` (before trying)."""
    if comp is Compression.NONE:
        return True
    if layout.keyword != "PixelData" or layout.bits_allocated == 1:
        return False
    if comp is Compression.RLE:
        return layout.samples * layout.dtype.itemsize <= 15
    if comp in (Compression.JPEG_LOSSLESS, Compression.JPEGLS, Compression.JPEGLS_NEAR):
        return layout.bits_allocated <= 16 and layout.bits_stored >= 2
    return layout.bits_allocated <= 16  # JPEG 2000 and HTJ2K


def encode_frame(frame: np.ndarray, layout: PixelLayout, comp: Compression,
                 level: float | None, *, threads: int = 1) -> bytes:  # fmt: skip
    """Encode one checked frame for an encapsulated syntax (``threads``: OpenJPEG's)."""
    try:
        if comp is Compression.RLE:
            return _encode_rle(frame, layout)
        if comp is Compression.JPEG_LOSSLESS:
            return _encode_jpeg_lossless(frame, layout)
        if comp in (Compression.JPEGLS, Compression.JPEGLS_NEAR):
            return _encode_jpegls(frame, layout, int(level or 0))
        if comp in (Compression.J2K, Compression.J2K_LOSSY):
            return _encode_j2k(frame, layout, level if comp.lossy else None, max(1, threads))
        if comp in (Compression.HTJ2K, Compression.HTJ2K_RPCL):
            return _encode_htj2k(frame, layout, comp is Compression.HTJ2K_RPCL)
    except CodecError:
        raise
    except Exception as exc:  # imagecodecs raises its own RuntimeError subclasses
        raise layout.error(f"could not be encoded ({comp.value}): {exc}") from None
    raise layout.error(f"has no encoder for {comp.value}")


def _verify(encoded: bytes, frame: np.ndarray, layout: PixelLayout, comp: Compression,
            level: float | None, index: int, threads: int = 1) -> None:  # fmt: skip
    back = decode_encoded_frame(encoded, layout, threads=threads)
    if comp is Compression.JPEGLS_NEAR:
        err = np.abs(back.astype(np.int64) - frame.astype(np.int64)).max() if frame.size else 0
        if err > int(level or 0):
            raise layout.error(
                f"near-lossless frame {index} decodes with error {err} > NEAR {int(level or 0)}"
            )
    elif comp.lossy:
        return
    elif not np.array_equal(back, frame):
        raise layout.error(f"lossless frame {index} did not decode to its input ({comp.value})")


# ------------------------------------------------------------------ pipeline
def check_option(check: str) -> str:
    """Validate ``check``: which re-encoded frames are decoded back, ``"all"`` or ``"first"``."""
    if check not in ("all", "first"):
        raise ConfigError("check", expected="'all' or 'first'", got=check)
    return check


def ordered_map(func: Callable[[T], R], items: Iterable[T], workers: int) -> Iterator[R]:
    """``map(func, items)`` in order, on up to ``workers`` threads.

    At most ``2 * workers`` items are in flight, so memory stays a small
    multiple of one frame; the codecs release the GIL, so threads overlap.
    """
    if workers <= 1:
        yield from map(func, items)
        return
    pending: deque[Future[R]] = deque()
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="gantry-pixels") as pool:
        try:
            for item in items:
                pending.append(pool.submit(func, item))
                if len(pending) >= 2 * workers:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()
        finally:
            for future in pending:
                future.cancel()


def _native_chunk(frame: np.ndarray, layout: PixelLayout, index: int) -> tuple[bytes, int]:
    checked = _check_frame(frame, layout, index)
    chunk = np.ascontiguousarray(checked, dtype=checked.dtype.newbyteorder("<")).tobytes()
    back = np.frombuffer(chunk, dtype=layout.dtype.newbyteorder("<")).reshape(checked.shape)
    if not np.array_equal(back, checked):
        raise layout.error(f"native frame {index} did not read back identically")
    return chunk, checked.nbytes


def _packed_bits(frames: Iterator[np.ndarray], layout: PixelLayout) -> tuple[bytes, int, int]:
    """BitsAllocated 1: frames are packed back to back, not byte aligned."""
    bits = [_check_frame(f, layout, i).astype(np.uint8).ravel() for i, f in enumerate(frames)]
    flat = np.concatenate(bits) if bits else np.zeros(0, np.uint8)
    if flat.size and flat.max() > 1:
        raise layout.error("cannot be encoded: BitsAllocated 1 needs values 0 or 1")
    packed = np.packbits(flat, bitorder="little")
    if not np.array_equal(np.unpackbits(packed, bitorder="little", count=flat.size), flat):
        raise layout.error("bit-packed frames did not read back identically")
    data = packed.tobytes()
    return data + b"\0" * (len(data) % 2), len(bits), flat.size


def encode_pipeline(
    items: Iterable[T],
    prepare: Callable[[T], np.ndarray],
    ds: Dataset,
    transfer_syntax: str | Compression,
    *,
    count: int | None = None,
    level: float | None = None,
    workers: int = 1,
    check: str = "all",
) -> EncodedPixels:
    """Encode ``prepare(item)`` for each item: the engine behind :func:`encode`.

    ``prepare`` runs in the worker threads with the encoding, so decoding and
    redacting a frame (see :func:`gantry.pixels.redact_dataset`) overlaps too.
    ``check`` says which lossless frames are decoded back and compared:
    ``"all"`` or ``"first"`` (near-lossless frames are always checked against NEAR).
    A single frame with ``workers > 1`` is coded with that many OpenJPEG threads.
    """
    check_option(check)
    threads = max(1, workers) if count == 1 else 1
    uid, comp = resolve_target(transfer_syntax)
    if level is None:
        level = _DEFAULT_LEVEL.get(comp)
    elif not comp.lossy:
        raise CodecError(None, uid, f"takes no `level`: {comp.value} is lossless, got {level!r}")
    layout = _target_layout(ds, uid, comp, count or 1)
    if layout.keyword != "PixelData" and comp is not Compression.NONE:
        raise layout.error(f"cannot be encoded: {layout.keyword} is native only")
    if comp is Compression.RLE and layout.bits_allocated == 1:
        # PS3.5 Annex G segments are bytes: readers (pydicom among them) refuse 1-bit RLE
        raise layout.error(
            "cannot be encoded as RLE: 1-bit pixel data (BitsAllocated 1) has no RLE form "
            "that readers decode; choose another compression or none"
        )
    extended: tuple[bytes, bytes] | None = None
    if comp is Compression.NONE and layout.bits_allocated == 1:
        data, n, original = _packed_bits((prepare(item) for item in items), layout)
    else:

        def work(pair: tuple[int, T]) -> tuple[bytes, int]:
            index, item = pair
            frame = prepare(item)
            if comp is Compression.NONE:
                return _native_chunk(frame, layout, index)
            checked = _check_frame(frame, layout, index)
            encoded = encode_frame(checked, layout, comp, level, threads=threads)
            if check == "all" or index == 0 or comp is Compression.JPEGLS_NEAR:
                _verify(encoded, checked, layout, comp, level, index, threads)
            return encoded, checked.nbytes

        original = 0
        if comp is Compression.NONE:  # stream into one buffer: peak = output + a few frames
            out = io.BytesIO()
            if count:
                out.seek(count * layout.frame_nbytes - 1)
                out.write(b"\0")
                out.seek(0)
            n = 0
            for chunk, nbytes in ordered_map(work, enumerate(items), workers):
                out.write(chunk)
                original += nbytes
                n += 1
            out.truncate(original)
            if original % 2:
                out.seek(original)
                out.write(b"\0")
            data = out.getvalue()
            del out
        else:
            chunks: list[bytes] = []
            for chunk, nbytes in ordered_map(work, enumerate(items), workers):
                chunks.append(chunk)
                original += nbytes
            n = len(chunks)
            if n and sum(len(f) + 8 for f in chunks) >= 2**32 - 8:
                data, eot, eotl = encapsulate_extended(chunks)
                extended = (eot, eotl)
            elif n:
                data = encapsulate(chunks, has_bot=True)
            del chunks
        if n == 0:
            raise layout.error("cannot be encoded: no frames")
    attributes: dict[str, Any] = {"PhotometricInterpretation": layout.photometric}
    if layout.samples > 1:
        attributes["PlanarConfiguration"] = 0
    if n > 1 or "NumberOfFrames" in ds:
        attributes["NumberOfFrames"] = n
    if extended is not None:
        attributes["ExtendedOffsetTable"], attributes["ExtendedOffsetTableLengths"] = extended
    else:
        attributes["ExtendedOffsetTable"] = attributes["ExtendedOffsetTableLengths"] = None
    if comp.lossy:
        ratio = original / max(len(data), 1)
        ratios: list[str] = []
        methods: list[str] = []
        if str(ds.get("LossyImageCompression", "")) == "01":
            ratios = [str(r) for r in _as_list(ds.get("LossyImageCompressionRatio"))]
            methods = [str(m) for m in _as_list(ds.get("LossyImageCompressionMethod"))]
        attributes["LossyImageCompression"] = "01"
        attributes["LossyImageCompressionRatio"] = [*ratios, f"{ratio:.2f}"]
        attributes["LossyImageCompressionMethod"] = [*methods, _LOSSY_METHOD[comp]]
    if comp is Compression.NONE:
        vr = {"FloatPixelData": "OF", "DoubleFloatPixelData": "OD"}.get(
            layout.keyword, "OW" if layout.bits_allocated > 8 else "OB"
        )
    else:
        vr = "OB"
    return EncodedPixels(
        transfer_syntax=UID(uid), compression=comp, pixel_data=data,
        pixel_keyword=layout.keyword, pixel_vr=vr, attributes=MappingProxyType(attributes),
        frames=n, lossy=comp.lossy, original_nbytes=original,
    )  # fmt: skip


def encode(
    frames: Iterable[np.ndarray] | np.ndarray,
    ds: Dataset,
    transfer_syntax: str | Compression,
    *,
    level: float | None = None,
    workers: int = 1,
) -> EncodedPixels:
    """Encode decoded frames for ``ds`` to ``transfer_syntax``.

    Parameters
    ----------
    frames : numpy.ndarray or iterable of numpy.ndarray
        The frames as :func:`gantry.pixels.decode` returns them for ``ds``: one
        array shaped like ``decode(ds)`` or an iterable of single frames
        (consumed one at a time).
    ds : pydicom.Dataset
        Supplies Rows, Columns, SamplesPerPixel, BitsAllocated, BitsStored,
        PixelRepresentation and PhotometricInterpretation (and the transfer
        syntax the frames were decoded from).  Not modified: see
        :func:`apply_encoded`.
    transfer_syntax : str or Compression
        A :class:`Compression` (``"none"``, ``"rle"``, ``"j2k"``, ...) or a
        transfer syntax UID Gantry can write.  Lossy output only for
        ``"j2k-lossy"`` / ``"jpegls-near"`` or their UIDs.
    level : float, optional
        Lossy only: the target PSNR in dB for ``j2k-lossy`` (default 50), the
        maximum absolute error NEAR for ``jpegls-near`` (default 2).
    workers : int
        Threads that encode (and verify) frames concurrently; 1 (the default)
        works in the calling thread.  The output is identical either way.

    Returns
    -------
    EncodedPixels

    Raises
    ------
    gantry.errors.CodecError
        A frame does not match the dataset, the codec refuses it, or a lossless
        result does not decode back to its input.
    gantry.errors.ConfigError
        ``transfer_syntax`` is not something Gantry can write.

    Examples
    --------
    >>> from pathlib import Path
    >>> import pydicom
    >>> ds = pydicom.dcmread(Path(pydicom.__file__).parent / "data/test_files/MR_small.dcm")
    >>> from gantry.pixels import decode
    >>> enc = encode(decode(ds), ds, "jpegls")
    >>> enc.transfer_syntax.name, enc.lossy, enc.ratio > 1
    ('JPEG-LS Lossless Image Compression', False, True)
    """
    probe = _target_layout(ds, resolve_target(transfer_syntax)[0], Compression.NONE, 1)
    iterator, count = _iter_input(frames, probe)
    return encode_pipeline(
        iterator, _same, ds, transfer_syntax, count=count, level=level, workers=workers
    )


def _same(frame: np.ndarray) -> np.ndarray:
    return frame


def _as_list(value: Any) -> list[Any]:
    if value in (None, ""):
        return []
    if isinstance(value, str | bytes) or not isinstance(value, Iterable):
        return [value]
    return list(value)


def apply_encoded(ds: Dataset, encoded: EncodedPixels) -> None:
    """Write ``encoded`` into ``ds``: pixel element, transfer syntax, Image Pixel attributes.

    The dataset is changed in place; nothing else in it is touched.

    Examples
    --------
    >>> from pathlib import Path
    >>> import pydicom
    >>> from gantry.pixels import decode, encode
    >>> ds = pydicom.dcmread(Path(pydicom.__file__).parent / "data/test_files/SC_rgb_small_odd.dcm")
    >>> apply_encoded(ds, encode(decode(ds), ds, "j2k"))
    >>> ds.file_meta.TransferSyntaxUID.name, ds.PhotometricInterpretation
    ('JPEG 2000 Image Compression (Lossless Only)', 'YBR_RCT')
    >>> decode(ds)[0, 0].tolist()
    [166, 141, 52]
    """
    if not hasattr(ds, "file_meta") or ds.file_meta is None:
        ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = encoded.transfer_syntax
    for keyword in PIXEL_KEYWORDS:
        if keyword in ds and keyword != encoded.pixel_keyword:
            del ds[keyword]
    elem = DataElement(Tag(encoded.pixel_keyword), encoded.pixel_vr, encoded.pixel_data)
    elem.is_undefined_length = encoded.encapsulated
    ds[elem.tag] = elem
    for keyword, value in encoded.attributes.items():
        if value is None:
            if keyword in ds:
                del ds[keyword]
        else:
            setattr(ds, keyword, value)
    ds._pixel_array = None
    ds._pixel_id = {}
