"""Frames turned into the 8-bit image a viewer shows: what OCR must read.

Text a reader sees on screen is what matters, so each frame goes through the
display pipeline of PS3.14/PS3.3 C.11: Modality LUT or rescale, then the VOI
LUT or window (the first one given; min–max when none is), MONOCHROME1
inverted, palette colour expanded through its LUTs, YBR converted to RGB, and
the overlay planes (60xx,3000) burned in at full brightness.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from pydicom.dataset import Dataset

__all__ = ["display_frame", "frame_count", "sample_frames"]


def frame_count(ds: Dataset) -> int:
    """``NumberOfFrames`` (1 when absent or empty)."""
    value = ds.get("NumberOfFrames", 1)
    try:
        return max(1, int(value or 1))
    except (TypeError, ValueError):
        return 1


def sample_frames(n: int, frames: str | int | Sequence[int] = "sample") -> list[int]:
    """Which frames of an ``n``-frame image to read.

    ``"sample"``: first, middle and last; ``"all"``: every frame; an int ``k``:
    ``k`` frames evenly spread (first and last included); a sequence: those
    frames (zero-based, out-of-range ones dropped).

    Examples
    --------
    >>> sample_frames(1), sample_frames(10), sample_frames(4, "all")
    ([0], [0, 5, 9], [0, 1, 2, 3])
    >>> sample_frames(100, 5)
    [0, 25, 50, 74, 99]
    """
    if n <= 0:
        return []
    if frames == "all":
        return list(range(n))
    if frames == "sample":
        return sorted({0, n // 2, n - 1})
    if isinstance(frames, int):
        if frames <= 0:
            raise ValueError(f"`frames` must be positive, got {frames!r}")
        return sorted({int(round(x)) for x in np.linspace(0, n - 1, min(frames, n))})
    if isinstance(frames, str):
        raise ValueError(f"`frames` must be 'sample', 'all', an int or frame numbers, got {frames!r}")
    return sorted({int(f) for f in frames if 0 <= int(f) < n})


def _to_uint8(arr: np.ndarray) -> np.ndarray:
    a = np.asarray(arr, dtype=np.float64)
    lo, hi = float(np.nanmin(a)), float(np.nanmax(a))
    if hi <= lo:
        return np.zeros(a.shape, np.uint8)
    return np.clip((a - lo) * (255.0 / (hi - lo)) + 0.5, 0, 255).astype(np.uint8)


def _grey(ds: Dataset, frame: np.ndarray) -> np.ndarray:
    from pydicom.pixels import apply_modality_lut, apply_voi_lut

    values = apply_modality_lut(frame, ds)
    has_voi = "VOILUTSequence" in ds or (
        "WindowCenter" in ds and "WindowWidth" in ds and ds.WindowWidth not in (None, "")
    )
    if has_voi:
        try:
            values = apply_voi_lut(values, ds, index=0, prefer_lut=True)
        except (ValueError, TypeError, IndexError, AttributeError):
            pass  # a broken window falls back to the full range
    if not has_voi and int(ds.get("BitsStored", 8) or 8) <= 8 and frame.dtype == np.uint8 and (
        values is frame or np.array_equal(values, frame)
    ):
        out = frame  # 8-bit with no window: shown as stored, like a viewer does
    else:
        out = _to_uint8(values)
    if str(ds.get("PhotometricInterpretation", "")).strip() == "MONOCHROME1":
        out = 255 - out
    return out


def _colour(ds: Dataset, frame: np.ndarray, photometric: str) -> np.ndarray:
    from pydicom.pixels import apply_color_lut, convert_color_space

    if photometric == "PALETTE COLOR":
        rgb = apply_color_lut(frame, ds)
        return rgb if rgb.dtype == np.uint8 else (rgb >> 8).astype(np.uint8)
    if photometric.startswith("YBR"):  # what decode leaves in YBR (16-bit YBR_FULL)
        frame = convert_color_space(frame, "YBR_FULL", "RGB")
    if frame.dtype != np.uint8:
        return _to_uint8(frame)
    return frame


def _overlays(ds: Dataset, index: int, rows: int, cols: int) -> list[np.ndarray]:
    planes = []
    for group in range(0x6000, 0x6020, 2):
        if (group, 0x3000) not in ds:
            continue
        try:
            arr = ds.overlay_array(group)
        except (ValueError, TypeError, AttributeError, KeyError):
            continue
        if arr.ndim == 3:  # multi-frame overlay: its own frame numbering
            origin = int(ds.get((group, 0x0051), 1) or 1) - 1
            k = index - origin
            if not 0 <= k < arr.shape[0]:
                continue
            arr = arr[k]
        top, left = (int(v) - 1 for v in ds.get((group, 0x0050), [1, 1]).value)
        plane = np.zeros((rows, cols), bool)
        r0, c0 = max(top, 0), max(left, 0)
        r1, c1 = min(rows, top + arr.shape[0]), min(cols, left + arr.shape[1])
        if r1 > r0 and c1 > c0:
            plane[r0:r1, c0:c1] = arr[r0 - top : r1 - top, c0 - left : c1 - left] != 0
            planes.append(plane)
    return planes


def display_frame(
    ds: Dataset, index: int = 0, *, path: str | Path | None = None, raw: np.ndarray | None = None
) -> np.ndarray:
    """Frame ``index`` of ``ds`` as a viewer shows it: ``uint8`` grey or RGB.

    Parameters
    ----------
    ds : pydicom.Dataset
        With pixel data and file meta.
    index : int
        Zero-based frame number.
    path : str or Path, optional
        Named in decoding errors.
    raw : numpy.ndarray, optional
        The decoded frame, when the caller has it already.

    Examples
    --------
    >>> from gantry.testing import make_instance
    >>> ds = make_instance(modality="CR", photometric="MONOCHROME1", rows=8, columns=8)
    >>> img = display_frame(ds)
    >>> img.dtype.name, img.shape
    ('uint8', (8, 8))
    >>> bool(img[ds.pixel_array == ds.pixel_array.max()].max() == 0)  # brightest stored → black
    True
    """
    from gantry.pixels import decode
    from gantry.pixels._codecs import decoded_photometric
    from gantry.pixels._frames import PixelLayout

    layout = PixelLayout.from_dataset(ds, path)
    frame = raw if raw is not None else decode(ds, frame=index, path=path)
    photometric = decoded_photometric(
        layout.photometric, layout.samples, layout.bits_allocated, layout.spec.family
    )
    if layout.samples == 1 and photometric != "PALETTE COLOR":
        out: Any = _grey(ds, frame)
    else:
        out = _colour(ds, frame, photometric)
    planes = _overlays(ds, index, layout.rows, layout.columns)
    if planes:
        out = out.copy()
        for plane in planes:
            out[plane] = 255
    return np.ascontiguousarray(out)
