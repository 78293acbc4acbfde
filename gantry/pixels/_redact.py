"""Redaction zones applied with numpy: :class:`Zone`, :func:`redact`, :func:`verify_redaction`.

A zone is a rectangle of rows and columns (ends exclusive) blanked in every
frame and every sample.  Arrays of any integer or float dtype are accepted in
the four layouts pydicom uses: ``(rows, cols)``, ``(frames, rows, cols)``,
``(rows, cols, samples)`` and ``(frames, rows, cols, samples)``.
"""

from __future__ import annotations

import dataclasses
import math
import operator
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from gantry.errors import ConfigError, RedactionError

__all__ = ["RedactionResult", "Zone", "redact", "verify_redaction"]


@dataclasses.dataclass(frozen=True)
class Zone:
    """A rectangle to blank: ``rows [row_start, row_end)`` × ``cols [col_start, col_end)``.

    Coordinates may lie partly or wholly outside an image; :func:`redact`
    clips them and says so in its result.

    Examples
    --------
    >>> Zone(0, 40, 0, 320).clip(30, 100)
    Zone(row_start=0, row_end=30, col_start=0, col_end=100)
    >>> Zone(500, 600, 0, 10).clip(30, 100) is None
    True
    """

    row_start: int
    row_end: int
    col_start: int
    col_end: int

    def __post_init__(self) -> None:
        values = []
        for name in ("row_start", "row_end", "col_start", "col_end"):
            value = getattr(self, name)
            try:
                values.append(operator.index(value))
            except TypeError:
                raise ConfigError(f"zone.{name}", expected="an integer", got=value) from None
            object.__setattr__(self, name, values[-1])
        if values[0] >= values[1] or values[2] >= values[3]:
            raise ConfigError(
                "zone", expected="row_start < row_end and col_start < col_end", got=tuple(values)
            )

    def clip(self, rows: int, cols: int) -> Zone | None:
        """This zone cut to a ``rows`` × ``cols`` image, or None if nothing is left."""
        r0, r1 = max(self.row_start, 0), min(self.row_end, rows)
        c0, c1 = max(self.col_start, 0), min(self.col_end, cols)
        if r0 >= r1 or c0 >= c1:
            return None
        return Zone(r0, r1, c0, c1)

    def as_tuple(self) -> tuple[int, int, int, int]:
        return (self.row_start, self.row_end, self.col_start, self.col_end)


@dataclasses.dataclass(frozen=True, eq=False)
class RedactionResult:
    """What :func:`redact` did.

    Attributes
    ----------
    array : numpy.ndarray
        The redacted array (a copy unless ``copy=False``).
    zones : tuple of Zone
        The zones actually applied, clipped to the image.
    warnings : tuple of str
        One message per zone that was clipped or lay wholly outside the image.
    pixels : int
        Pixels blanked per frame (the area of the union of the applied zones).
    """

    array: np.ndarray
    zones: tuple[Zone, ...]
    warnings: tuple[str, ...]
    pixels: int

    @property
    def changed(self) -> bool:
        """Whether any zone touched the image."""
        return bool(self.zones)


# ---------------------------------------------------------------- internals
def as_zones(zones: Iterable[Zone | Sequence[int]]) -> list[Zone]:
    """Accept :class:`Zone` objects or 4-sequences ``(row_start, row_end, col_start, col_end)``."""
    out = []
    for zone in zones:
        if isinstance(zone, Zone):
            out.append(zone)
        else:
            values = tuple(zone)
            if len(values) != 4:
                raise ConfigError(
                    "zone", expected="(row_start, row_end, col_start, col_end)", got=values
                )
            out.append(Zone(*values))
    return out


def clip_zones(zones: Iterable[Zone | Sequence[int]], rows: int, cols: int
               ) -> tuple[list[Zone], list[str]]:  # fmt: skip
    """Clip zones to the image; return the applied zones and one warning per clipped zone."""
    applied: list[Zone] = []
    messages: list[str] = []
    for zone in as_zones(zones):
        clipped = zone.clip(rows, cols)
        if clipped is None:
            messages.append(
                f"zone {zone.as_tuple()} lies entirely outside the {rows}x{cols} image; "
                "nothing redacted"
            )
            continue
        if clipped != zone:
            messages.append(
                f"zone {zone.as_tuple()} extends outside the {rows}x{cols} image; "
                f"clipped to {clipped.as_tuple()}"
            )
        applied.append(clipped)
    return applied, messages


def as_4d(
    array: np.ndarray,
    *,
    frame_axis: bool | None = None,
    samples_per_pixel: int | None = None,
    frames: int | None = None,
) -> np.ndarray:
    """A ``(frames, rows, cols, samples)`` view of ``array`` (no copy)."""
    ndim = array.ndim
    if ndim == 2:
        if frame_axis:
            raise RedactionError("`frame_axis` cannot be True for a 2-D array, got True")
        has_frames, has_samples = False, False
    elif ndim == 4:
        if frame_axis is False:
            raise RedactionError("`frame_axis` cannot be False for a 4-D array, got False")
        has_frames, has_samples = True, True
    elif ndim == 3:
        if frame_axis is not None:
            has_frames = bool(frame_axis)
        elif frames is not None:
            has_frames = frames > 1
        elif samples_per_pixel is not None:
            has_frames = samples_per_pixel == 1
        else:  # pydicom's layouts: a short last axis is samples
            has_frames = array.shape[-1] not in (3, 4)
        has_samples = not has_frames
    else:
        raise RedactionError(f"`array` must have 2 to 4 axes, got shape {array.shape}")
    view = array
    if not has_frames:
        view = view[np.newaxis]
    if not has_samples:
        view = view[..., np.newaxis]
    if samples_per_pixel is not None and view.shape[-1] != samples_per_pixel:
        raise RedactionError(
            f"`samples_per_pixel` does not match the array's shape {array.shape}, "
            f"got {samples_per_pixel!r}"
        )
    if frames is not None and has_frames and view.shape[0] != frames:
        raise RedactionError(
            f"`frames` does not match the array's shape {array.shape}, got {frames!r}"
        )
    return view


def check_fill(fill: Any, dtype: np.dtype[Any]) -> Any:
    """Return ``fill`` as a scalar of ``dtype``; raise if it is not representable."""
    if dtype.kind in "ui":
        if isinstance(fill, float) and not fill.is_integer():
            raise RedactionError(f"`fill` must be an integer for {dtype} pixels, got {fill!r}")
        try:
            value = int(fill)
        except (TypeError, ValueError, OverflowError):
            raise RedactionError(f"`fill` must be a number, got {fill!r}") from None
        info = np.iinfo(dtype)
        if not info.min <= value <= info.max:
            raise RedactionError(
                f"`fill` must be within {info.min}..{info.max} for {dtype} pixels, got {fill!r}"
            )
        return dtype.type(value)
    if dtype.kind == "f":
        try:
            value_f = float(fill)
        except (TypeError, ValueError):
            raise RedactionError(f"`fill` must be a number, got {fill!r}") from None
        if not math.isfinite(value_f) or not math.isfinite(float(dtype.type(value_f))):
            raise RedactionError(f"`fill` must be finite in {dtype}, got {fill!r}")
        return dtype.type(value_f)
    raise RedactionError(f"`array` must hold integers or floats, got dtype {dtype}")


def row_bands(zones: Sequence[Zone], rows: int, cols: int
              ) -> list[tuple[int, int, list[tuple[int, int]]]]:  # fmt: skip
    """Split the image into row bands, each with the column spans that NO zone covers.

    Every pixel outside all zones lies in exactly one ``(band, span)``.
    """
    cuts = sorted({0, rows, *(z.row_start for z in zones), *(z.row_end for z in zones)})
    bands = []
    for top, bottom in zip(cuts, cuts[1:], strict=False):
        covering = sorted(
            (z.col_start, z.col_end) for z in zones if z.row_start <= top and z.row_end >= bottom
        )
        spans, col = [], 0
        for start, end in covering:
            if start > col:
                spans.append((col, start))
            col = max(col, end)
        if col < cols:
            spans.append((col, cols))
        bands.append((top, bottom, spans))
    return bands


def union_area(zones: Sequence[Zone], rows: int, cols: int) -> int:
    """Pixels per frame covered by at least one zone."""
    outside = sum(
        (b - t) * (e - s) for t, b, spans in row_bands(zones, rows, cols) for s, e in spans
    )
    return rows * cols - outside


def _bits(a: np.ndarray) -> np.ndarray:
    """View as unsigned integers of the same size, for bit-for-bit comparison."""
    try:
        return a.view(f"u{a.dtype.itemsize}")
    except ValueError:
        return np.ascontiguousarray(a).view(f"u{a.dtype.itemsize}")


# ------------------------------------------------------------------- public
def redact(
    array: np.ndarray,
    zones: Iterable[Zone | Sequence[int]],
    *,
    fill: float = 0,
    frame_axis: bool | None = None,
    samples_per_pixel: int | None = None,
    frames: int | None = None,
    copy: bool = True,
) -> RedactionResult:
    """Blank ``zones`` in every frame and every sample of ``array``.

    Parameters
    ----------
    array : numpy.ndarray
        Integer or float pixels shaped ``(rows, cols)``, ``(frames, rows, cols)``,
        ``(rows, cols, samples)`` or ``(frames, rows, cols, samples)``.
    zones : iterable of Zone or (row_start, row_end, col_start, col_end)
        Ends exclusive.  Zones partly outside are clipped, zones wholly outside
        are skipped; both are reported in ``warnings``.
    fill : int or float
        The value written; must be representable in ``array.dtype``.
    frame_axis : bool, optional
        Whether a 3-D array's first axis is frames.  When omitted it is taken
        from ``frames`` or ``samples_per_pixel``, else a last axis of 3 or 4 is
        read as samples (pydicom's layouts).
    samples_per_pixel : int, optional
        SamplesPerPixel of the image; checked against the array.
    frames : int, optional
        NumberOfFrames of the image (1 means no frame axis); checked too.
    copy : bool
        Redact a copy (default) or ``array`` itself.

    Returns
    -------
    RedactionResult

    Raises
    ------
    gantry.errors.RedactionError
        The layout is inconsistent, the dtype is not numeric, or ``fill`` does
        not fit the dtype.

    Examples
    --------
    >>> import numpy as np
    >>> img = np.arange(12, dtype=np.uint8).reshape(3, 4)
    >>> res = redact(img, [Zone(0, 1, 1, 3), Zone(2, 9, 3, 9)], fill=0)
    >>> res.array
    array([[ 0,  0,  0,  3],
           [ 4,  5,  6,  7],
           [ 8,  9, 10,  0]], dtype=uint8)
    >>> res.warnings
    ('zone (2, 9, 3, 9) extends outside the 3x4 image; clipped to (2, 3, 3, 4)',)
    """
    arr = np.asarray(array)
    value = check_fill(fill, arr.dtype)
    out = arr.copy() if copy else arr
    if not out.flags.writeable:
        raise RedactionError("`array` is read-only, got copy=False on a read-only array")
    view = as_4d(out, frame_axis=frame_axis, samples_per_pixel=samples_per_pixel, frames=frames)
    rows, cols = view.shape[1], view.shape[2]
    applied, messages = clip_zones(zones, rows, cols)
    for zone in applied:
        view[:, zone.row_start : zone.row_end, zone.col_start : zone.col_end, :] = value
    return RedactionResult(
        array=out, zones=tuple(applied), warnings=tuple(messages),
        pixels=union_area(applied, rows, cols),
    )  # fmt: skip


def verify_redaction(
    before: np.ndarray,
    after: np.ndarray,
    zones: Iterable[Zone | Sequence[int]],
    fill: float = 0,
    *,
    frame_axis: bool | None = None,
    samples_per_pixel: int | None = None,
    frames: int | None = None,
) -> None:
    """Check that ``after`` is ``before`` with exactly ``zones`` blanked to ``fill``.

    Every pixel inside a (clipped) zone must equal ``fill`` and every pixel
    outside all zones must be bit-for-bit identical to ``before``, in every
    frame and sample.  Works band by band, without a full-size mask.

    Raises
    ------
    gantry.errors.RedactionError
        Shapes or dtypes differ, a zone pixel is not ``fill``, or a pixel
        outside the zones changed.  The message gives counts, never values.

    Examples
    --------
    >>> import numpy as np
    >>> img = np.ones((4, 4), np.int16)
    >>> out = redact(img, [Zone(0, 2, 0, 2)], fill=-5).array
    >>> verify_redaction(img, out, [Zone(0, 2, 0, 2)], fill=-5)
    >>> out[3, 3] = 7
    >>> verify_redaction(img, out, [Zone(0, 2, 0, 2)], fill=-5)
    Traceback (most recent call last):
    ...
    gantry.errors.RedactionError: 1 pixel value(s) outside the redaction zones changed
    """
    a, b = np.asarray(before), np.asarray(after)
    if a.shape != b.shape or a.dtype != b.dtype:
        raise RedactionError(
            f"redacted array is {b.dtype}{b.shape}, the original is {a.dtype}{a.shape}"
        )
    value = check_fill(fill, b.dtype)
    va = as_4d(a, frame_axis=frame_axis, samples_per_pixel=samples_per_pixel, frames=frames)
    vb = as_4d(b, frame_axis=frame_axis, samples_per_pixel=samples_per_pixel, frames=frames)
    rows, cols = va.shape[1], va.shape[2]
    applied, _ = clip_zones(zones, rows, cols)
    for zone in applied:
        region = vb[:, zone.row_start : zone.row_end, zone.col_start : zone.col_end, :]
        wrong = int(np.count_nonzero(region != value))
        if wrong:
            raise RedactionError(
                f"zone {zone.as_tuple()} holds {wrong} pixel value(s) that are not the fill value"
            )
    changed = 0
    for top, bottom, spans in row_bands(applied, rows, cols):
        for start, end in spans:
            x = _bits(va[:, top:bottom, start:end, :])
            y = _bits(vb[:, top:bottom, start:end, :])
            if not np.array_equal(x, y):
                changed += int(np.count_nonzero(x != y))
    if changed:
        raise RedactionError(f"{changed} pixel value(s) outside the redaction zones changed")
