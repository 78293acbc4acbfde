"""Blank one image's face side (export worker side): :func:`deface_pixels`.

The worker has the series' plane from the plan (``new_value`` of the DEFACE
row) and the instance's own geometry; the mask is recomputed here, so nothing
per-slice needs storing.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from gantry.deface._geometry import FacePlane, SliceGeometry
from gantry.errors import DefaceError

__all__ = ["DEFACE_CODE", "deface_pixels", "plane_from_plan", "verify_defaced"]

#: PS3.16 CID 7050: the Clean Recognizable Visual Features Option, claimed on defaced images.
DEFACE_CODE = {
    "value": "113102",
    "scheme": "DCM",
    "meaning": "Clean Recognizable Visual Features Option",
}


def plane_from_plan(value: dict[str, Any]) -> tuple[FacePlane, float]:
    """The plane and fill of a DEFACE plan row's parsed ``new_value``."""
    try:
        normal = tuple(float(v) for v in value["normal"])
        plane = FacePlane((normal[0], normal[1], normal[2]), float(value["offset"]))
        return plane, float(value["fill"])
    except (KeyError, TypeError, ValueError, IndexError) as exc:
        raise DefaceError("the plan's DEFACE row is malformed: run anonymize again") from exc


def deface_pixels(
    array: NDArray[Any], geometry: SliceGeometry, value: dict[str, Any]
) -> tuple[NDArray[Any], NDArray[np.bool_], float]:
    """``(new array, face-side mask, fill)`` of one single-frame grey image.

    Examples
    --------
    >>> g = SliceGeometry((0.0, -100.0, 0.0), (1, 0, 0, 0, 1, 0), (10.0, 10.0), 3, 2)
    >>> out, mask, fill = deface_pixels(np.full((3, 2), 7), g,
    ...                                 {"normal": [0, -1, 0], "offset": 85.0, "fill": 0})
    >>> out.tolist()
    [[0, 0], [0, 0], [7, 7]]
    """
    plane, fill = plane_from_plan(value)
    if array.shape != (geometry.rows, geometry.columns):
        raise DefaceError(
            f"only single-frame grey images are defaced; the pixel array has shape {array.shape}"
        )
    mask = plane.slice_mask(geometry)
    out = np.array(array, copy=True)
    out[mask] = fill
    return out, mask, fill


def verify_defaced(written: NDArray[Any], mask: NDArray[np.bool_], fill: float) -> None:
    """Raise unless every face-side pixel of the written image holds ``fill``."""
    if written.shape != mask.shape or np.any(written[mask] != fill):
        raise DefaceError(
            "the written pixel data still holds values on the face side of the cut; "
            "the instance is not exported as defaced"
        )
