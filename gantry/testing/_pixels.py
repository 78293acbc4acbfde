"""Deterministic pixel patterns and their lossless encodings.

The pattern is smooth anatomy-like structure (a body ellipse with rings) plus
a little seeded noise, so it compresses like real images do, and optionally a
bright block of "burned-in text" in the top-left corner (US / SC).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray
from pydicom.dataset import Dataset
from pydicom.encaps import encapsulate, generate_frames
from pydicom.pixels.encoders.base import RLELosslessEncoder
from pydicom.uid import (
    UID,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    HTJ2KLossless,
    ImplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGLSLossless,
    RLELossless,
)

from gantry.errors import CodecError, ConfigError

NATIVE_SYNTAXES: frozenset[str] = frozenset(
    {
        ExplicitVRLittleEndian,
        ImplicitVRLittleEndian,
        ExplicitVRBigEndian,
        DeflatedExplicitVRLittleEndian,
    }
)
ENCAPSULATED_SYNTAXES: frozenset[str] = frozenset(
    {RLELossless, JPEG2000Lossless, JPEGLSLossless, HTJ2KLossless}
)
SUPPORTED_SYNTAXES: frozenset[str] = NATIVE_SYNTAXES | ENCAPSULATED_SYNTAXES


def make_pixels(
    *,
    rows: int,
    columns: int,
    frames: int,
    samples: int,
    bits_allocated: int,
    bits_stored: int,
    signed: bool,
    seed: int,
    annotation: bool = False,
) -> NDArray[np.integer]:
    """Return a deterministic pixel array shaped as pydicom's ``pixel_array`` is.

    Shape is ``(rows, columns)``, with a leading frame axis when ``frames > 1``
    and a trailing sample axis when ``samples == 3``.

    Examples
    --------
    >>> a = make_pixels(rows=4, columns=5, frames=1, samples=1, bits_allocated=16,
    ...                 bits_stored=12, signed=False, seed=0)
    >>> a.shape, a.dtype.name, int(a.max()) < 4096
    ((4, 5), 'uint16', True)
    """
    dtype = np.dtype(f"{'i' if signed else 'u'}{bits_allocated // 8}")
    lo = -(1 << (bits_stored - 1)) if signed else 0
    hi = (1 << (bits_stored - 1)) - 1 if signed else (1 << bits_stored) - 1
    if signed:  # a CT-like range: air at -1000, bone towards the top
        lo, hi = max(lo, -1024), min(hi, 3071)
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:rows, 0:columns].astype(np.float64)
    cy, cx = (rows - 1) / 2, (columns - 1) / 2
    out = np.empty((frames, rows, columns, samples), dtype=dtype)
    for f in range(frames):
        for s in range(samples):
            shift = 0.15 * f + 0.9 * s + rng.uniform(0, 0.2)
            r = np.hypot((y - cy) / max(rows / 2.2, 1), (x - cx) / max(columns / 2.6, 1))
            body = np.clip(1.2 - r, 0, 1)
            rings = 0.5 + 0.5 * np.cos(9 * r + 4 * shift) * (r < 0.9)
            grad = (x + y * (1 + s)) / max(rows + columns, 1)
            level = 0.55 * body + 0.3 * rings * body + 0.15 * grad
            noise = rng.normal(0, 0.004, size=(rows, columns))
            img = lo + np.clip(level + noise, 0, 1) * (hi - lo)
            out[f, :, :, s] = np.rint(img).astype(dtype)
    if annotation:
        h, w = max(rows // 10, 1), max(columns // 3, 1)
        block = out[:, 1 : 1 + h, 1 : 1 + w, :]
        block[...] = lo
        block[:, :, ::2, :] = hi  # vertical strokes, like a line of text
    if samples == 1:
        out = out[..., 0]
    return out[0] if frames == 1 else out


def native_bytes(arr: NDArray[np.integer], transfer_syntax: str) -> bytes:
    """Return the native (uncompressed) pixel bytes of ``arr`` for ``transfer_syntax``."""
    if transfer_syntax == ExplicitVRBigEndian and arr.dtype.itemsize > 1:
        arr = arr.astype(arr.dtype.newbyteorder(">"))
    data = np.ascontiguousarray(arr).tobytes()
    return data + b"\0" if len(data) % 2 else data


def _encode_frame(
    frame: NDArray[np.integer],
    transfer_syntax: str,
    *,
    bits_stored: int,
    photometric: str,
) -> bytes:
    samples = 3 if frame.ndim == 3 else 1
    if transfer_syntax == RLELossless:
        return RLELosslessEncoder.encode(
            frame,
            encoding_plugin="pydicom",
            rows=frame.shape[0],
            columns=frame.shape[1],
            samples_per_pixel=samples,
            bits_allocated=frame.dtype.itemsize * 8,
            bits_stored=bits_stored,
            pixel_representation=int(frame.dtype.kind == "i"),
            photometric_interpretation=photometric,
            number_of_frames=1,
            planar_configuration=0,
        )
    import imagecodecs

    if transfer_syntax == JPEG2000Lossless:
        return bytes(
            imagecodecs.jpeg2k_encode(
                frame, level=0, codecformat="J2K", reversible=True, mct=False,
                bitspersample=bits_stored,
            )
        )  # fmt: skip
    if transfer_syntax == HTJ2KLossless:
        return bytes(imagecodecs.htj2k_encode(frame, reversible=True, rgb=False))
    if transfer_syntax == JPEGLSLossless:
        data = frame.view(np.uint16) if frame.dtype == np.int16 else frame
        if data.dtype == np.uint16 and bits_stored < 16:
            data = data & np.uint16((1 << bits_stored) - 1)
        out = bytearray(frame.nbytes * 2 + 4096)
        return bytes(imagecodecs.jpegls_encode(data, level=0, out=out))
    raise ConfigError(
        "transfer_syntax", expected="one of the supported transfer syntaxes", got=transfer_syntax
    )


def encapsulated_bytes(
    arr: NDArray[np.integer],
    transfer_syntax: str,
    *,
    frames: int,
    bits_stored: int,
    photometric: str,
) -> bytes:
    """Encode every frame of ``arr`` and encapsulate them with a basic offset table."""
    stack = arr if frames > 1 else arr[np.newaxis]
    try:
        encoded = [
            _encode_frame(
                np.ascontiguousarray(f),
                transfer_syntax,
                bits_stored=bits_stored,
                photometric=photometric,
            )
            for f in stack
        ]
    except ConfigError:
        raise
    except Exception as exc:  # codec failure: report it as ours
        raise CodecError(None, str(transfer_syntax), f"could not be encoded: {exc}") from exc
    return encapsulate([e + b"\0" if len(e) % 2 else e for e in encoded], has_bot=True)


def check_syntax(transfer_syntax: str) -> UID:
    """Return ``transfer_syntax`` as a UID, or raise :class:`ConfigError` if unsupported."""
    if transfer_syntax not in SUPPORTED_SYNTAXES:
        raise ConfigError(
            "transfer_syntax",
            expected="a little/big endian, deflated, RLE, JPEG 2000, JPEG-LS or HTJ2K "
            "lossless transfer syntax UID",
            got=str(transfer_syntax),
        )
    return UID(transfer_syntax)


def decode_pixels(ds: Dataset) -> NDArray[np.integer]:
    """Return the pixel array of ``ds``, decoding JPEG 2000 / JPEG-LS / HTJ2K with imagecodecs.

    pydicom decodes native and RLE data by itself; the JPEG family needs
    plugins that Gantry does not require, so those frames are decoded here
    (an oracle independent of ``gantry.pixels``).  The shape follows
    pydicom's ``pixel_array``.

    Examples
    --------
    >>> from gantry.testing import make_instance
    >>> plain = make_instance(modality="CT")
    >>> jls = make_instance(modality="CT", transfer_syntax="1.2.840.10008.1.2.4.80")
    >>> bool((decode_pixels(jls) == plain.pixel_array).all())
    True
    """
    ts = ds.file_meta.TransferSyntaxUID
    if ts not in (JPEG2000Lossless, JPEGLSLossless, HTJ2KLossless):
        return ds.pixel_array
    import imagecodecs

    frames = int(ds.get("NumberOfFrames", 1) or 1)
    signed = int(ds.PixelRepresentation) == 1
    bits = int(ds.BitsAllocated)
    stored = int(ds.BitsStored)
    dtype = np.dtype(f"{'i' if signed else 'u'}{bits // 8}")
    decoded = []
    for frame in generate_frames(ds.PixelData, number_of_frames=frames):
        if ts == JPEGLSLossless:
            arr = imagecodecs.jpegls_decode(frame)
        else:
            arr = imagecodecs.jpeg2k_decode(frame)
        arr = np.asarray(arr)
        if signed and arr.dtype.kind == "u":  # JPEG-LS holds the two's complement bit pattern
            arr = arr.astype(dtype.newbyteorder("=").str.replace("i", "u")).view(dtype)
            if stored < bits:
                shift = bits - stored
                arr = (arr << shift) >> shift
        decoded.append(arr.astype(dtype, copy=False))
    return np.stack(decoded) if frames > 1 else decoded[0]
