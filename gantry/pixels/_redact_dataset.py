"""Redact a whole dataset frame by frame: :func:`redact_dataset`.

Native little-endian input is redacted without decoding: the output bytes are
the original bytes with only the rows that hold a zone copied and rewritten,
so the extra memory is the output itself plus those rows.  Everything else is
decoded one frame at a time, redacted, verified and re-encoded: the same
transfer syntax when Gantry has a lossless encoder for it, otherwise Explicit
VR Little Endian (never a lossy re-encode).
"""

from __future__ import annotations

import dataclasses
import io
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from pydicom.dataset import Dataset
from pydicom.uid import UID, ExplicitVRLittleEndian

from gantry.errors import RedactionError
from gantry.pixels._codecs import decode_encoded_frame, decoded_photometric, native_decoded_frame
from gantry.pixels._encode import (
    EncodedPixels,
    apply_encoded,
    can_encode,
    check_option,
    encode_pipeline,
)
from gantry.pixels._frames import PixelLayout, encoded_frames
from gantry.pixels._redact import (
    Zone,
    check_fill,
    clip_zones,
    redact,
    union_area,
    verify_redaction,
)
from gantry.pixels._transfer_syntax import LITTLE_ENDIAN_NATIVE, SYNTAXES, redaction_target

__all__ = ["RedactionReport", "redact_dataset"]


@dataclasses.dataclass(frozen=True)
class RedactionReport:
    """What :func:`redact_dataset` did to one dataset.

    Attributes
    ----------
    path : str or None
        The file named in messages.
    transfer_syntax_in, transfer_syntax_out : str
        The pixel data's transfer syntax before and after.
    frames : int
        Frames redacted.
    zones : tuple of Zone
        Zones applied (clipped to the image).
    warnings : tuple of str
        Zones clipped or lying outside the image.
    pixels : int
        Pixels blanked per frame.
    changed : bool
        False when no zone touched the image (the dataset is left as it was).
    verified : bool
        Every frame was checked: zone pixels equal ``fill`` and all others
        unchanged in the pixels handed to the encoder; the re-encoded data
        decodes to them (the first frame, or every frame with ``check="all"``).
    method : str
        ``"in-place"`` (native bytes rewritten), ``"transcode"`` (decoded and
        re-encoded) or ``"unchanged"``.
    """

    path: str | None
    transfer_syntax_in: str
    transfer_syntax_out: str
    frames: int
    zones: tuple[Zone, ...]
    warnings: tuple[str, ...]
    pixels: int
    changed: bool
    verified: bool
    method: str


def _check_stored_fill(fill: float, layout: PixelLayout) -> None:
    value = check_fill(fill, layout.dtype)
    if layout.dtype.kind in "ui" and layout.bits_stored < 8 * layout.dtype.itemsize:
        bits = layout.bits_stored
        lo, hi = (
            (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if layout.signed else (0, (1 << bits) - 1)
        )
        if not lo <= int(value) <= hi:
            raise RedactionError(
                f"`fill` must be within {lo}..{hi} for BitsStored {bits}, got {fill!r}"
            )


def _merged_row_spans(zones: Sequence[Zone]) -> list[tuple[int, int]]:
    spans: list[tuple[int, int]] = []
    for zone in sorted(zones, key=lambda z: z.row_start):
        if spans and zone.row_start <= spans[-1][1]:
            spans[-1] = (spans[-1][0], max(spans[-1][1], zone.row_end))
        else:
            spans.append((zone.row_start, zone.row_end))
    return spans


def _in_place_native(ds: Dataset, layout: PixelLayout, zones: Sequence[Zone], fill: float) -> bytes:
    """New native bytes: the original with only the rows holding a zone rewritten.

    Works on the stored layout (planar or interleaved samples; unused high bits
    kept outside the zones), a batch of frames at a time: the zone rows of the
    batch are copied in one numpy operation (about one frame's worth of bytes),
    redacted and verified, then streamed with the untouched bytes into an
    output buffer sized once.  Peak memory: the output plus about one frame.
    """
    original = ds[layout.keyword].value
    stored = layout.dtype.newbyteorder("<")
    frame_bytes = layout.frame_bits // 8
    if frame_bytes * layout.frames > len(original):
        raise layout.error(
            f"is truncated: {len(original)} bytes hold fewer than {layout.frames} frame(s)"
        )
    planar = layout.samples > 1 and layout.planar == 1
    planes = layout.samples if planar else 1
    per_row = layout.columns * stored.itemsize * (1 if planar else layout.samples)
    shape = (layout.frames, planes, layout.rows, layout.columns, 1 if planar else layout.samples)
    pixels = np.frombuffer(original, dtype=stored, count=layout.pixels_per_frame * layout.frames)
    pixels = pixels.reshape(shape)
    spans = _merged_row_spans(zones)
    local = {
        (top, bottom): [
            Zone(z.row_start - top, z.row_end - top, z.col_start, z.col_end)
            for z in zones if z.row_start < bottom and z.row_end > top
        ]
        for top, bottom in spans
    }  # fmt: skip
    band_rows = sum(bottom - top for top, bottom in spans)
    batch = max(1, layout.rows // max(band_rows, 1))  # about one frame of band bytes
    source = memoryview(original)
    out = io.BytesIO()
    size = len(original) + len(original) % 2
    out.seek(size - 1)
    out.write(b"\0")  # one allocation of the final size
    out.seek(0)
    pos = 0
    plane_bytes = frame_bytes // planes
    for first in range(0, layout.frames, batch):
        last = min(first + batch, layout.frames)
        bands = []
        for top, bottom in spans:
            before = pixels[first:last, :, top:bottom]  # (frames, planes, rows, cols, samples)
            band = before.copy()
            # as (frames·planes, rows, cols, samples): every frame and plane at once
            flat_before = before.reshape(-1, bottom - top, layout.columns, shape[-1])
            flat_band = band.reshape(flat_before.shape)
            redact(flat_band, local[top, bottom], fill=fill, frame_axis=True, copy=False)
            verify_redaction(flat_before, flat_band, local[top, bottom], fill, frame_axis=True)
            bands.append((top, bottom, band.data.cast("B")))
        for index in range(first * planes, last * planes):
            base = index * plane_bytes
            for top, bottom, band_bytes in bands:
                start = base + top * per_row
                length = (bottom - top) * per_row
                offset = (index - first * planes) * length
                out.write(source[pos:start])
                out.write(band_bytes[offset : offset + length])
                pos = start + length
        del bands
    out.write(source[pos:])
    return out.getvalue()  # the buffer itself, not a copy


def redacted_frame_source(
    ds: Dataset, layout: PixelLayout, zones: Sequence[Zone], fill: float, threads: int = 1
) -> tuple[Iterable[Any], Callable[[Any], np.ndarray]]:
    """``(items, prepare)``: ``prepare(item)`` decodes, redacts and verifies one frame.

    Encapsulated items are the encoded frames (read in order, one at a time),
    decoded with ``threads`` OpenJPEG threads; native items are frame indexes.
    """

    def finish(frame: np.ndarray) -> np.ndarray:
        before = frame.copy()
        redact(frame, zones, fill=fill, samples_per_pixel=layout.samples, frames=1, copy=False)
        verify_redaction(before, frame, zones, fill, samples_per_pixel=layout.samples, frames=1)
        return frame

    if layout.spec.encapsulated:
        return encoded_frames(ds, layout), lambda data: finish(
            decode_encoded_frame(data, layout, threads=threads)
        )
    _ = ds[layout.keyword].value  # read (and convert) the element here, not in the workers
    return range(layout.frames), lambda index: finish(native_decoded_frame(ds, layout, index))


def redact_dataset(
    ds: Dataset,
    zones: Iterable[Zone | Sequence[int]],
    *,
    fill: float = 0,
    path: str | Path | None = None,
    workers: int = 1,
    check: str = "first",
) -> RedactionReport:
    """Blank ``zones`` in every frame of ``ds``'s pixel data, in place, and verify it.

    Frames are decoded, redacted and re-encoded one at a time.  The output
    transfer syntax is the input's when Gantry has a lossless encoder for it,
    otherwise Explicit VR Little Endian; lossy input is never re-compressed
    (and gets LossyImageCompression "01" if it lacked it).  Colour that
    :func:`gantry.pixels.decode` converts to RGB (YBR_FULL, YBR_FULL_422) is
    written back as RGB.  Other attributes (BurnedInAnnotation included) are
    left to the caller.

    Parameters
    ----------
    ds : pydicom.Dataset
        Changed in place when a zone touches the image.
    zones : iterable of Zone or (row_start, row_end, col_start, col_end)
        Ends exclusive; clipped to the image and reported when they stray.
    fill : int or float
        The value written, as a stored pixel value (within BitsStored).
    path : str or Path, optional
        Named in errors; ``ds.filename`` when omitted.
    workers : int
        Threads that decode, redact, verify and re-encode frames concurrently
        (at most ``2 * workers`` frames in flight; a single frame is coded with
        ``workers`` OpenJPEG threads); 1, the default, suits a caller that
        already runs one process per core.
    check : {"first", "all"}
        Which re-encoded frames are decoded once more and compared with the
        redacted pixels.  ``"first"`` (the default) checks the first frame:
        the encoder's systematic mistakes (precision, sign, colour transform,
        layout) show on every frame, and a lossless encoder never sees the
        original zone pixels.  ``"all"`` checks every frame, at the cost of a
        second decode per frame.  Every frame's redaction is verified either way.

    Returns
    -------
    RedactionReport

    Raises
    ------
    gantry.errors.CodecError
        The pixel data cannot be decoded or re-encoded.
    gantry.errors.RedactionError
        ``fill`` does not fit, or verification failed (the dataset is then
        left unchanged).

    Examples
    --------
    >>> from pathlib import Path
    >>> import pydicom
    >>> ds = pydicom.dcmread(Path(pydicom.__file__).parent / "data/test_files/MR_small_RLE.dcm")
    >>> report = redact_dataset(ds, [Zone(0, 8, 0, 64)], fill=0)
    >>> report.transfer_syntax_out == ds.file_meta.TransferSyntaxUID, report.method
    (True, 'transcode')
    >>> from gantry.pixels import decode
    >>> int(decode(ds)[:8].max())
    0
    """
    check_option(check)
    layout = PixelLayout.from_dataset(ds, path)
    applied, messages = clip_zones(zones, layout.rows, layout.columns)
    ts_in = str(layout.transfer_syntax)
    unchanged = RedactionReport(
        path=layout.path, transfer_syntax_in=ts_in, transfer_syntax_out=ts_in,
        frames=layout.frames, zones=tuple(applied), warnings=tuple(messages), pixels=0,
        changed=False, verified=True, method="unchanged",
    )  # fmt: skip
    if not applied:
        return unchanged
    _check_stored_fill(fill, layout)
    target = redaction_target(layout.transfer_syntax)
    encoder = SYNTAXES[target].encoder
    if encoder is None or not can_encode(layout, encoder):
        target = UID(ExplicitVRLittleEndian)
    family = layout.spec.family
    same_colour = (
        decoded_photometric(layout.photometric, layout.samples, layout.bits_allocated, family)
        == layout.photometric
    )
    if (
        layout.transfer_syntax in LITTLE_ENDIAN_NATIVE
        and layout.bits_allocated != 1
        and same_colour
    ):
        data = _in_place_native(ds, layout, applied, fill)
        encoded = EncodedPixels(
            transfer_syntax=UID(ts_in), compression=SYNTAXES[ts_in].encoder,  # type: ignore[arg-type]
            pixel_data=data, pixel_keyword=layout.keyword,
            pixel_vr=ds[layout.keyword].VR if ds[layout.keyword].VR in ("OB", "OW", "OF", "OD")
            else ("OW" if layout.bits_allocated > 8 else "OB"),
            attributes={}, frames=layout.frames, lossy=False,
            original_nbytes=layout.frame_nbytes * layout.frames,
        )  # fmt: skip
        method = "in-place"
    else:
        threads = max(1, workers) if layout.frames == 1 else 1
        items, prepare = redacted_frame_source(ds, layout, applied, fill, threads)
        encoded = encode_pipeline(
            items, prepare, ds, target, count=layout.frames, workers=workers, check=check
        )
        if encoded.frames != layout.frames:
            raise layout.error(f"re-encoded {encoded.frames} frame(s), expected {layout.frames}")
        method = "transcode"
    apply_encoded(ds, encoded)
    if layout.spec.lossy and "LossyImageCompression" not in ds:
        ds.LossyImageCompression = "01"
    return dataclasses.replace(
        unchanged, transfer_syntax_out=str(encoded.transfer_syntax),
        pixels=union_area(applied, layout.rows, layout.columns), changed=True, method=method,
    )  # fmt: skip
