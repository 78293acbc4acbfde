"""Decode pixel data frame by frame through imagecodecs: :func:`decode`, :func:`iter_frames`.

The output is what pydicom 3's ``Dataset.pixel_array`` gives with its default
options: stored values (no modality LUT, VOI or palette), signed values
sign-extended and unused high bits cleared as pydicom does, planar data
interleaved, and YBR_FULL / YBR_FULL_422 converted to RGB with pydicom's own
:func:`pydicom.pixels.processing.convert_color_space`.  The one difference is
the byte order: arrays are always in the machine's native byte order (pydicom
keeps big endian data big endian).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
from pydicom.dataset import Dataset
from pydicom.pixels.processing import convert_color_space
from pydicom.uid import JPEGBaseline8Bit

from gantry.errors import CodecError
from gantry.pixels._frames import (
    PixelLayout,
    encoded_frame,
    encoded_frames,
    j2k_info,
    jpeg_info,
    native_frame,
    shape_frame,
)

__all__ = [
    "codec",
    "decode",
    "decode_encoded_frame",
    "decoded_photometric",
    "iter_frames",
    "native_decoded_frame",
    "shape_frame",
]

_YBR_TO_RGB = ("YBR_FULL", "YBR_FULL_422")


def codec(name: str, kind: str, layout: PixelLayout | None = None) -> Callable[..., Any]:
    """Return ``imagecodecs.<name>_<kind>``; raise :class:`CodecError` when unavailable."""
    try:
        module = importlib.import_module("imagecodecs")
        func = getattr(module, f"{name}_{kind}")
        available = bool(getattr(getattr(module, name.upper()), "available", False))
    except (ImportError, AttributeError):
        available = False
    if not available:
        reason = f"needs the imagecodecs `{name}` codec, which is not available here"
        if layout is None:
            raise CodecError(None, None, reason)
        raise layout.error(reason)
    return func  # type: ignore[no-any-return]


# ------------------------------------------------------------------ dtype steps
def _as_layout_dtype(raw: np.ndarray, layout: PixelLayout) -> np.ndarray:
    """Reinterpret the decoder's integers with the dataset's signedness, then widen.

    Same-size containers are reinterpreted bit for bit (as pydicom's
    ``frombuffer`` does); a narrower container is read with the dataset's
    signedness and cast up; a wider one must hold values that fit.
    """
    dtype = layout.dtype
    if raw.dtype == dtype:
        return raw
    if raw.dtype.kind not in "ui":
        raise layout.error(f"decoded to unexpected dtype {raw.dtype}")
    size = raw.dtype.itemsize
    if size == dtype.itemsize:
        return raw.view(dtype)
    if size < dtype.itemsize:
        return raw.view(f"{dtype.kind}{size}").astype(dtype)
    info = np.iinfo(dtype)
    if raw.size and (raw.min() < info.min or raw.max() > info.max):
        raise layout.error(
            f"decoded {raw.dtype} values that do not fit BitsAllocated {layout.bits_allocated}"
        )
    return raw.astype(dtype)


def _shift(arr: np.ndarray, bits: int) -> np.ndarray:
    """Shift left then right: clears (unsigned) or sign-extends (signed) the top ``bits``."""
    if bits > 0:
        np.left_shift(arr, bits, out=arr)
        np.right_shift(arr, bits, out=arr)
    return arr


def _unused_bits(arr: np.ndarray, layout: PixelLayout) -> np.ndarray:
    if (
        layout.keyword == "PixelData"
        and 1 < layout.bits_allocated
        and (layout.bits_stored < layout.bits_allocated)
    ):
        if not arr.flags.writeable:
            arr = arr.copy()
        return _shift(arr, layout.bits_allocated - layout.bits_stored)
    return arr


# ------------------------------------------------------------------ colour steps
def _conform_jpeg_photometric(layout: PixelLayout, info: dict[str, Any]) -> str:
    """The photometric interpretation pydicom assumes after reading a JPEG header."""
    pi = layout.photometric
    if layout.samples != 3:
        return pi
    if info.get("component_ids") in ([82, 71, 66], [114, 103, 98]):
        return "RGB"
    if info.get("jfif") and "YBR" not in pi:
        return "YBR_FULL_422" if layout.transfer_syntax == JPEGBaseline8Bit else "YBR_FULL"
    return pi


def _to_rgb(frame: np.ndarray, photometric: str, layout: PixelLayout) -> np.ndarray:
    if layout.samples == 3 and photometric in _YBR_TO_RGB and frame.dtype == np.uint8:
        return convert_color_space(frame, "YBR_FULL", "RGB")
    return frame


def decoded_photometric(photometric: str, samples: int, bits_allocated: int, family: str) -> str:
    """The photometric interpretation of what :func:`decode` returns.

    Examples
    --------
    >>> decoded_photometric("YBR_FULL_422", 3, 8, "jpeg")
    'RGB'
    >>> decoded_photometric("YBR_RCT", 3, 8, "j2k")
    'RGB'
    >>> decoded_photometric("MONOCHROME1", 1, 16, "native")
    'MONOCHROME1'
    """
    if samples != 3:
        return photometric
    if photometric in _YBR_TO_RGB:
        return "RGB" if bits_allocated == 8 else "YBR_FULL"
    if photometric in ("YBR_RCT", "YBR_ICT") and family in ("j2k", "htj2k"):
        return "RGB"
    return photometric


# ------------------------------------------------------------- frame decoders
def _check_shape(arr: np.ndarray, layout: PixelLayout) -> np.ndarray:
    if arr.ndim == 3 and arr.shape[2] == 1 and layout.samples == 1:
        arr = arr[:, :, 0]
    if arr.shape != layout.frame_shape:
        raise layout.error(
            f"decoded to shape {arr.shape}, Rows/Columns/SamplesPerPixel say {layout.frame_shape}"
        )
    return arr


def _decode_rle(data: bytes, layout: PixelLayout) -> np.ndarray:
    func = codec("dicomrle", "decode", layout)
    dtype = np.dtype(f"u{layout.dtype.itemsize}")
    raw = np.frombuffer(func(data, dtype), dtype=dtype)
    if raw.size != layout.pixels_per_frame:
        raise layout.error(
            f"RLE frame decoded to {raw.size} samples, expected {layout.pixels_per_frame}"
        )
    frame: np.ndarray
    if layout.samples > 1:  # RLE segments are planar by construction
        frame = raw.reshape(layout.samples, layout.rows, layout.columns).transpose(1, 2, 0)
    else:
        frame = raw.reshape(layout.rows, layout.columns)
    frame = _unused_bits(np.array(frame, copy=True).view(layout.dtype), layout)
    return _to_rgb(frame, layout.photometric, layout)


def _decode_jpeg(data: bytes, layout: PixelLayout) -> np.ndarray:
    info = jpeg_info(data)
    kwargs: dict[str, Any] = {}
    if layout.samples == 3 and info.get("adobe_transform") is None:
        # no colour conversion inside libjpeg; pydicom converts YBR itself
        kwargs = {"colorspace": "YCbCr", "outcolorspace": "YCbCr"}
    lossless = layout.spec.family == "jpeg-lossless"
    if lossless and layout.samples == 3:
        kwargs = {"colorspace": "RGB", "outcolorspace": "RGB"}
    errors = []
    decoders = [("jpeg8", kwargs)]
    if lossless:
        decoders += [("ljpeg", {}), ("jpegsof3", {})]
    for name, kw in decoders:
        try:
            raw = codec(name, "decode", layout)(data, **kw)
            break
        except CodecError as exc:
            errors.append(exc.reason)
        except Exception as exc:  # imagecodecs raises its own RuntimeError subclasses
            errors.append(f"{name}: {exc}")
    else:
        raise layout.error("could not be decoded: " + "; ".join(errors))
    frame = _check_shape(np.asarray(raw), layout)
    frame = _unused_bits(np.array(_as_layout_dtype(frame, layout), copy=True), layout)
    return _to_rgb(frame, _conform_jpeg_photometric(layout, info), layout)


def _decode_jpegls(data: bytes, layout: PixelLayout) -> np.ndarray:
    info = jpeg_info(data)
    try:
        raw = codec("jpegls", "decode", layout)(data)
    except CodecError:
        raise
    except Exception as exc:
        raise layout.error(f"could not be decoded by CharLS: {exc}") from None
    frame = _check_shape(np.asarray(raw), layout)
    frame = np.array(_as_layout_dtype(frame, layout), copy=True)
    if layout.signed:  # JPEG-LS has no sign: sign-extend from the codestream precision
        precision = int(info.get("precision", layout.bits_stored))
        _shift(frame, 8 * frame.dtype.itemsize - precision)
    return _to_rgb(frame, _conform_jpeg_photometric(layout, info), layout)


def _decode_j2k(data: bytes, layout: PixelLayout, threads: int = 1) -> np.ndarray:
    info = j2k_info(data)
    attempts: list[tuple[str, dict[str, Any]]] = [("jpeg2k", {"numthreads": threads})]
    if layout.spec.family == "htj2k":
        attempts.append(("htj2k", {}))
    errors = []
    for name, kw in attempts:
        try:
            raw = codec(name, "decode", layout)(data, **kw)
            break
        except CodecError as exc:
            errors.append(exc.reason)
        except Exception as exc:
            errors.append(f"{name}: {exc}")
    else:
        raise layout.error("could not be decoded: " + "; ".join(errors))
    frame = _check_shape(np.asarray(raw), layout)
    frame = np.array(_as_layout_dtype(frame, layout), copy=True)
    if layout.photometric in ("MONOCHROME1", "MONOCHROME2") and info:
        if info["signed"] != layout.signed:
            _shift(frame, 8 * frame.dtype.itemsize - info["precision"])
    photometric = layout.photometric
    if photometric in ("YBR_RCT", "YBR_ICT"):
        photometric = "RGB"  # the decoder applied the inverse component transform
    return _to_rgb(frame, photometric, layout)


_ENCAPSULATED: dict[str, Callable[[bytes, PixelLayout], np.ndarray]] = {
    "rle": _decode_rle,
    "jpeg": _decode_jpeg,
    "jpeg-lossless": _decode_jpeg,
    "jpegls": _decode_jpegls,
    "j2k": _decode_j2k,
    "htj2k": _decode_j2k,
}


def decode_encoded_frame(data: bytes, layout: PixelLayout, *, threads: int = 1) -> np.ndarray:
    """Decode one encoded frame of an encapsulated syntax (used by the encoder's check too).

    ``threads`` is OpenJPEG's ``numthreads`` for JPEG 2000 (the other codecs
    decode a frame on one thread): worth more than 1 only when frames are not
    decoded concurrently already, as for a single-frame image.
    """
    if not data:
        raise layout.error("has an empty frame")
    if layout.spec.family in ("j2k", "htj2k"):
        return _decode_j2k(bytes(data), layout, max(1, threads))
    return _ENCAPSULATED[layout.spec.family](bytes(data), layout)


def _be_swap_ow(ds: Dataset, layout: PixelLayout) -> bool:
    try:
        return layout.bits_allocated == 8 and ds[layout.keyword].VR == "OW"
    except KeyError:
        return False


def native_decoded_frame(ds: Dataset, layout: PixelLayout, index: int) -> np.ndarray:
    """Decode frame ``index`` of native pixel data (what :func:`decode` gives for it)."""
    data = ds[layout.keyword].value
    if data is None:
        raise layout.error("is empty")
    frame = native_frame(layout, data, index, be_swap_ow=_be_swap_ow(ds, layout))
    frame = _unused_bits(frame, layout)
    return _to_rgb(frame, layout.photometric, layout)


# -------------------------------------------------------------------- public
def iter_frames(ds: Dataset, *, path: str | Path | None = None) -> Iterator[np.ndarray]:
    """Yield each frame of ``ds``'s pixel data, decoded one at a time.

    Only one decoded frame (and, for encapsulated data, one encoded frame) is
    held at a time, so a large multi-frame instance never needs all its frames
    decoded at once.  Each frame is shaped ``(rows, columns)`` or ``(rows,
    columns, samples)`` and equals the matching slice of pydicom's
    ``pixel_array``.

    Parameters
    ----------
    ds : pydicom.Dataset
        A dataset with pixel data and file meta (the transfer syntax).
    path : str or Path, optional
        The file's path, named in errors; ``ds.filename`` when omitted.

    Raises
    ------
    gantry.errors.CodecError
        Unknown transfer syntax, missing codec, corrupt or truncated data.

    Examples
    --------
    >>> from pathlib import Path
    >>> import pydicom
    >>> ds = pydicom.dcmread(Path(pydicom.__file__).parent / "data/test_files/rtdose.dcm")
    >>> frames = list(iter_frames(ds))
    >>> len(frames), frames[0].shape, frames[0].dtype.name
    (15, (10, 10), 'uint32')
    """
    layout = PixelLayout.from_dataset(ds, path)
    if layout.spec.encapsulated:
        for data in encoded_frames(ds, layout):
            yield decode_encoded_frame(data, layout)
    else:
        for index in range(layout.frames):
            yield native_decoded_frame(ds, layout, index)


def decode(ds: Dataset, *, frame: int | None = None, path: str | Path | None = None) -> np.ndarray:
    """Decode ``ds``'s pixel data (or one frame of it) through imagecodecs.

    Parameters
    ----------
    ds : pydicom.Dataset
        A dataset with pixel data and file meta (the transfer syntax).
    frame : int, optional
        Decode only this zero-based frame; shaped ``(rows, columns[, samples])``.
    path : str or Path, optional
        The file's path, named in errors; ``ds.filename`` when omitted.

    Returns
    -------
    numpy.ndarray
        Shaped as pydicom's ``pixel_array``: ``(rows, columns)``, plus a leading
        frame axis when NumberOfFrames > 1 and a trailing sample axis when
        SamplesPerPixel > 1.  Stored values, native byte order.

    Raises
    ------
    gantry.errors.CodecError
        Unknown transfer syntax, missing codec, corrupt or truncated data.
    IndexError
        ``frame`` is out of range.

    Examples
    --------
    >>> from pathlib import Path
    >>> import pydicom
    >>> samples = Path(pydicom.__file__).parent / "data/test_files"
    >>> ds = pydicom.dcmread(samples / "SC_rgb_rle_2frame.dcm")
    >>> arr = decode(ds)
    >>> arr.shape, arr.dtype.name
    ((2, 100, 100, 3), 'uint8')
    >>> decode(ds, frame=1)[5, 50].tolist()
    [0, 255, 255]
    """
    layout = PixelLayout.from_dataset(ds, path)
    if frame is not None:
        if not -layout.frames <= frame < layout.frames:
            raise IndexError(f"`frame` must be in 0..{layout.frames - 1}, got {frame!r}")
        frame %= layout.frames
        if layout.spec.encapsulated:
            return decode_encoded_frame(encoded_frame(ds, layout, frame), layout)
        return native_decoded_frame(ds, layout, frame)
    if layout.frames == 1:
        return next(iter_frames(ds, path=path))
    out: np.ndarray | None = None
    for index, arr in enumerate(iter_frames(ds, path=path)):
        if out is None:
            out = np.empty((layout.frames, *arr.shape), dtype=arr.dtype)
        out[index] = arr
    assert out is not None
    return out
