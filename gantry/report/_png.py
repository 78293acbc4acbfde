"""A tiny PNG writer (zlib only) and the thumbnail helpers the HTML reports use."""

from __future__ import annotations

import base64
import struct
import zlib
from collections.abc import Iterable

import numpy as np

__all__ = ["data_uri", "display_frame", "outline", "pixelate", "png_bytes", "thumbnail"]

_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _chunk(kind: bytes, data: bytes) -> bytes:
    crc = zlib.crc32(kind + data) & 0xFFFFFFFF
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)


def png_bytes(image: np.ndarray) -> bytes:
    """Encode an 8-bit grey ``(h, w)`` or RGB ``(h, w, 3)`` array as PNG.

    Examples
    --------
    >>> data = png_bytes(np.zeros((2, 3), np.uint8))
    >>> data[:8] == _SIGNATURE, data[12:16], struct.unpack(">II", data[16:24])
    (True, b'IHDR', (3, 2))
    """
    arr = np.ascontiguousarray(image)
    if arr.dtype != np.uint8:
        raise ValueError(f"`image` must be uint8, got {arr.dtype}")
    if arr.ndim == 2:
        color_type = 0
    elif arr.ndim == 3 and arr.shape[2] == 3:
        color_type = 2
    else:
        raise ValueError(f"`image` must be (h, w) or (h, w, 3), got shape {arr.shape}")
    h, w = arr.shape[:2]
    rows = arr.reshape(h, -1)
    raw = np.hstack([np.zeros((h, 1), np.uint8), rows]).tobytes()  # filter type 0 per row
    header = struct.pack(">IIBBBBB", w, h, 8, color_type, 0, 0, 0)
    return (
        _SIGNATURE
        + _chunk(b"IHDR", header)
        + _chunk(b"IDAT", zlib.compress(raw, 6))
        + _chunk(b"IEND", b"")
    )


def data_uri(png: bytes) -> str:
    """``data:image/png;base64,…`` for an ``<img src>``.

    Examples
    --------
    >>> data_uri(b"abc")
    'data:image/png;base64,YWJj'
    """
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def display_frame(array: np.ndarray, *, samples: int = 1, photometric: str = "") -> np.ndarray:
    """The first frame of a decoded pixel array as 8-bit grey or RGB for display.

    Grey images are windowed between their 1st and 99th percentiles;
    ``MONOCHROME1`` is inverted.  Colour images are scaled to 8 bits.

    Examples
    --------
    >>> display_frame(np.arange(12, dtype=np.uint16).reshape(3, 4)).dtype.name
    'uint8'
    >>> display_frame(np.zeros((2, 4, 5, 3), np.uint8), samples=3).shape
    (4, 5, 3)
    """
    frame_ndim = 3 if samples > 1 else 2
    arr = array
    while arr.ndim > frame_ndim:
        arr = arr[0]
    data = arr.astype(np.float64)
    if samples > 1:
        top = float(data.max()) or 1.0
        scale = 255.0 / top if top > 255 else 1.0
        return np.clip(data * scale, 0, 255).astype(np.uint8)
    lo, hi = (float(x) for x in np.percentile(data, [1, 99])) if data.size else (0.0, 1.0)
    if hi <= lo:
        lo, hi = float(data.min(initial=0)), float(data.max(initial=1))
        hi = hi if hi > lo else lo + 1.0
    out = np.clip((data - lo) / (hi - lo) * 255.0, 0, 255).astype(np.uint8)
    return 255 - out if photometric == "MONOCHROME1" else out


def thumbnail(image: np.ndarray, max_size: int = 160) -> tuple[np.ndarray, int]:
    """Shrink by an integer factor (block mean) so no side exceeds ``max_size``.

    Returns the thumbnail and the factor.

    Examples
    --------
    >>> small, k = thumbnail(np.ones((400, 100), np.uint8), 160)
    >>> small.shape, k
    ((134, 34), 3)
    """
    h, w = image.shape[:2]
    k = max(1, -(-max(h, w) // max_size))
    if k == 1:
        return image, 1
    ph, pw = (-h) % k, (-w) % k
    pad = [(0, ph), (0, pw)] + [(0, 0)] * (image.ndim - 2)
    padded = np.pad(image.astype(np.float64), pad, mode="edge")
    hh, ww = padded.shape[0] // k, padded.shape[1] // k
    blocks = padded.reshape(hh, k, ww, k, *padded.shape[2:]).mean(axis=(1, 3))
    return np.clip(np.rint(blocks), 0, 255).astype(np.uint8), k


def pixelate(image: np.ndarray, zones: Iterable[tuple[int, int, int, int]], block: int = 8) -> None:
    """Replace each zone (``row0, row1, col0, col1``) by coarse block means, in place.

    Used on "before" images so a zone's position shows but burned-in text
    cannot be read from the report.

    Examples
    --------
    >>> img = np.arange(16, dtype=np.uint8).reshape(4, 4)
    >>> pixelate(img, [(0, 2, 0, 2)], block=2)
    >>> img[:2, :2].tolist()
    [[2, 2], [2, 2]]
    """
    h, w = image.shape[:2]
    for r0, r1, c0, c1 in zones:
        r0, r1, c0, c1 = max(0, r0), min(h, r1), max(0, c0), min(w, c1)
        for r in range(r0, r1, block):
            for c in range(c0, c1, block):
                cell = image[r : min(r + block, r1), c : min(c + block, c1)]
                cell[...] = np.rint(cell.reshape(-1, *cell.shape[2:]).mean(axis=0)).astype(
                    image.dtype
                )


def outline(
    image: np.ndarray, zones: Iterable[tuple[int, int, int, int]], factor: int = 1
) -> np.ndarray:
    """An RGB copy of ``image`` with each zone (in original pixels) outlined in red.

    Examples
    --------
    >>> out = outline(np.zeros((6, 6), np.uint8), [(0, 4, 0, 4)], factor=2)
    >>> out.shape, out[0, 0].tolist(), out[1, 1].tolist()
    ((6, 6, 3), [220, 30, 30], [220, 30, 30])
    """
    rgb = np.repeat(image[..., None], 3, axis=2) if image.ndim == 2 else image.copy()
    h, w = rgb.shape[:2]
    red = np.array([220, 30, 30], np.uint8)
    for r0, r1, c0, c1 in zones:
        a, b = max(0, r0 // factor), min(h - 1, max(0, (r1 - 1) // factor))
        c, d = max(0, c0 // factor), min(w - 1, max(0, (c1 - 1) // factor))
        if a > h - 1 or c > w - 1:
            continue
        rgb[a, c : d + 1] = red
        rgb[b, c : d + 1] = red
        rgb[a : b + 1, c] = red
        rgb[a : b + 1, d] = red
    return rgb
