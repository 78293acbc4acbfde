"""Slice geometry in patient coordinates (LPS) and the face-side cut of one slice.

A slice's pixel ``(r, c)`` sits at ``position + c·Δc·row_dir + r·Δr·col_dir``
(PS3.3 C.7.6.2.1.1: the first direction cosine triplet runs along a row, the
second down a column; Pixel Spacing is row spacing then column spacing).  The
plane found once per series (:class:`FacePlane`) is applied to any slice from
its own geometry, so each export worker needs only the plane and the instance.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from gantry.errors import DefaceError

__all__ = ["FacePlane", "SliceGeometry", "stack_slices"]

#: Fewest slices a series needs to be defaced (a handful of slices is no volume).
MIN_SLICES = 16


@dataclass(frozen=True)
class SliceGeometry:
    """Where one image lies in patient space.

    Attributes
    ----------
    position : (float, float, float)
        Image Position (Patient) of the first pixel's centre (mm, LPS).
    orientation : six floats
        Image Orientation (Patient): row direction, then column direction.
    spacing : (float, float)
        Pixel Spacing: between rows, then between columns (mm).
    rows, columns : int
        Image size.

    Examples
    --------
    >>> g = SliceGeometry((0.0, 0.0, 5.0), (1, 0, 0, 0, 1, 0), (2.0, 1.0), 2, 3)
    >>> g.points()[1, 2].tolist()  # row 1, column 2
    [2.0, 2.0, 5.0]
    """

    position: tuple[float, float, float]
    orientation: tuple[float, float, float, float, float, float]
    spacing: tuple[float, float]
    rows: int
    columns: int

    @classmethod
    def from_dataset(cls, ds: Any) -> SliceGeometry:
        """The geometry of a pydicom dataset; :class:`DefaceError` when it lacks any of it."""
        try:
            position = tuple(float(v) for v in ds.ImagePositionPatient)
            orientation = tuple(float(v) for v in ds.ImageOrientationPatient)
            spacing = tuple(float(v) for v in ds.PixelSpacing)
            rows, columns = int(ds.Rows), int(ds.Columns)
        except (AttributeError, TypeError, ValueError) as exc:
            raise DefaceError(
                "the image has no usable geometry (ImagePositionPatient, "
                "ImageOrientationPatient, PixelSpacing): it cannot be placed in patient space"
            ) from exc
        return cls.checked(position, orientation, spacing, rows, columns)

    @classmethod
    def checked(
        cls, position: Sequence[float], orientation: Sequence[float], spacing: Sequence[float],
        rows: int, columns: int,
    ) -> SliceGeometry:  # fmt: skip
        """A geometry after checking the values make sense (unit, orthogonal cosines)."""
        if len(position) != 3 or len(orientation) != 6 or len(spacing) != 2:
            raise DefaceError("the image geometry has the wrong number of values")
        row, col = np.asarray(orientation[:3], float), np.asarray(orientation[3:], float)
        if (
            not np.all(np.isfinite([*position, *orientation, *spacing]))
            or abs(np.linalg.norm(row) - 1) > 1e-3
            or abs(np.linalg.norm(col) - 1) > 1e-3
            or abs(float(row @ col)) > 1e-3
            or min(spacing) <= 0
        ):
            raise DefaceError(
                "the image geometry is not valid (direction cosines not unit and orthogonal, "
                "or a pixel spacing not positive)"
            )
        return cls(
            (float(position[0]), float(position[1]), float(position[2])),
            tuple(float(v) for v in orientation),  # type: ignore[arg-type]
            (float(spacing[0]), float(spacing[1])),
            int(rows),
            int(columns),
        )

    @property
    def normal(self) -> NDArray[np.float64]:
        """The slice normal, row direction × column direction."""
        return np.cross(self.orientation[:3], self.orientation[3:])

    def points(self) -> NDArray[np.float64]:
        """Patient coordinates of every pixel centre, shape ``(rows, columns, 3)``."""
        row = np.asarray(self.orientation[:3]) * self.spacing[1]
        col = np.asarray(self.orientation[3:]) * self.spacing[0]
        r = np.arange(self.rows, dtype=float)[:, None, None]
        c = np.arange(self.columns, dtype=float)[None, :, None]
        return np.asarray(self.position) + c * row + r * col


@dataclass(frozen=True)
class FacePlane:
    """A plane in patient space; everything on its face side is removed.

    A point ``p`` (mm, LPS) is removed when ``normal · p > offset``.

    Attributes
    ----------
    normal : (float, float, float)
        Unit normal pointing to the face side.
    offset : float
        Signed distance of the plane from the origin along ``normal`` (mm).

    Examples
    --------
    >>> plane = FacePlane((0.0, -1.0, 0.0), 80.0)  # remove what lies > 80 mm anterior
    >>> g = SliceGeometry((0.0, -100.0, 0.0), (1, 0, 0, 0, 1, 0), (10.0, 10.0), 4, 1)
    >>> plane.slice_mask(g).ravel().tolist()  # y = -100, -90, -80, -70
    [True, True, False, False]
    """

    normal: tuple[float, float, float]
    offset: float

    def slice_mask(self, geometry: SliceGeometry) -> NDArray[np.bool_]:
        """The pixels of one slice on the face side, shape ``(rows, columns)``."""
        n = np.asarray(self.normal, float)
        row = float(n @ np.asarray(geometry.orientation[:3])) * geometry.spacing[1]
        col = float(n @ np.asarray(geometry.orientation[3:])) * geometry.spacing[0]
        base = float(n @ np.asarray(geometry.position))
        r = np.arange(geometry.rows, dtype=float)[:, None]
        c = np.arange(geometry.columns, dtype=float)[None, :]
        return np.asarray(base + r * col + c * row > self.offset)

    def as_dict(self) -> dict[str, Any]:
        """Plain data for the plan and the ``deface`` table."""
        return {"normal": list(self.normal), "offset": self.offset}


def stack_slices(geometries: Sequence[SliceGeometry]) -> tuple[list[int], float]:
    """Order slices along their normal and check they form one regular volume.

    Returns the slice indexes in order and the step between slices (mm).

    Raises
    ------
    gantry.errors.DefaceError
        Too few slices, mixed orientation or image size, or uneven spacing.

    Examples
    --------
    >>> gs = [SliceGeometry((0.0, 0.0, z), (1, 0, 0, 0, 1, 0), (1.0, 1.0), 4, 4)
    ...       for z in [2.0, 0.0, 1.0] + [float(k) for k in range(3, 20)]]
    >>> order, step = stack_slices(gs)
    >>> order[:3], step
    ([1, 2, 0], 1.0)
    """
    if len(geometries) < MIN_SLICES:
        raise DefaceError(
            f"the series has {len(geometries)} image(s); defacing needs a volume of at least "
            f"{MIN_SLICES} slices"
        )
    first = geometries[0]
    for g in geometries[1:]:
        if (
            not np.allclose(g.orientation, first.orientation, atol=1e-3)
            or (g.rows, g.columns) != (first.rows, first.columns)
            or not np.allclose(g.spacing, first.spacing, rtol=1e-3)
        ):
            raise DefaceError(
                "the series mixes image orientations, sizes or pixel spacings: it is not one volume"
            )
    normal = first.normal
    where = np.array([float(normal @ np.asarray(g.position)) for g in geometries])
    order = [int(i) for i in np.argsort(where, kind="stable")]
    steps = np.diff(where[order])
    step = float(np.median(steps))
    if step <= 1e-3 or np.any(np.abs(steps - step) > max(0.05 * step, 0.01)):
        raise DefaceError(
            "the slices are not evenly spaced along their normal (a gap, an overlap or "
            "repeated positions): defacing needs one regular volume"
        )
    return order, step
