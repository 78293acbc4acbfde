"""Before/after pictures of a defaced series: :func:`render_deface_preview`.

Each picture is a maximum intensity projection across the head from the side
(left to right), the face to the left and the top of the head up, so the
profile of nose, lips and chin shows before and is gone after.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from gantry.deface._geometry import FacePlane, SliceGeometry

__all__ = ["DefacePreview", "render_deface_preview", "side_projection"]


@dataclass(frozen=True)
class DefacePreview:
    """PNG images of one series before and after defacing.

    Attributes
    ----------
    before, after : bytes
        8-bit grey PNG, the same size: the side projection of the original and
        of the defaced volume.
    """

    before: bytes
    after: bytes


def _axis_of(direction: NDArray[np.float64], axes: Sequence[NDArray[np.float64]]) -> int:
    return int(np.argmax([abs(float(direction @ a)) for a in axes]))


def side_projection(
    volume: NDArray[Any], geometries: Sequence[SliceGeometry]
) -> NDArray[np.float64]:
    """The maximum over left-right of ``(slices, rows, columns)``, face left, head up.

    Examples
    --------
    >>> g = [SliceGeometry((0.0, 0.0, float(z)), (1, 0, 0, 0, 1, 0), (1.0, 1.0), 2, 3)
    ...      for z in range(2)]
    >>> side_projection(np.arange(12).reshape(2, 2, 3), g).tolist()  # rows: z down, cols: y
    [[8.0, 11.0], [2.0, 5.0]]
    """
    first = geometries[0]
    axes = [first.normal, np.asarray(first.orientation[3:]), np.asarray(first.orientation[:3])]
    if len(geometries) > 1:  # the slice axis runs the way the positions do
        step = np.asarray(geometries[-1].position) - np.asarray(first.position)
        if float(step @ axes[0]) < 0:
            axes[0] = -axes[0]
    lr = _axis_of(np.array([1.0, 0, 0]), axes)
    ap = _axis_of(np.array([0, 1.0, 0]), axes)
    si = next(i for i in range(3) if i not in (lr, ap))
    image = np.asarray(volume, dtype=np.float64).max(axis=lr)
    kept = [i for i in range(3) if i != lr]  # image axes, in order
    image = image.transpose(kept.index(si), kept.index(ap))  # rows: SI, columns: AP
    if float(axes[si][2]) > 0:
        image = image[::-1]  # superior up
    if float(axes[ap][1]) < 0:
        image = image[:, ::-1]  # anterior (-y) left
    return image


def _png(image: NDArray[np.float64], lo: float, hi: float) -> bytes:
    import imagecodecs

    scaled = np.clip((image - lo) / max(hi - lo, 1e-9), 0, 1) * 255
    return bytes(imagecodecs.png_encode(np.ascontiguousarray(scaled.astype(np.uint8))))


def render_deface_preview(
    volume: NDArray[Any], geometries: Sequence[SliceGeometry], plane: FacePlane, fill: float
) -> DefacePreview:
    """Side projections (PNG) of a volume before and after blanking the face side of ``plane``.

    The grey scale runs from the 1st to the 99.5th percentile of the volume,
    the same for both pictures.  :meth:`gantry.Session.deface_preview` renders
    a series of the session.

    Examples
    --------
    >>> from gantry.testing import make_head_phantom
    >>> from gantry.deface import fit_face_plane
    >>> ph = make_head_phantom(size=32, spacing=8.0)
    >>> fit = fit_face_plane(ph.values(), ph.geometries(), ph.step, modality="CT")
    >>> preview = render_deface_preview(ph.volume, ph.geometries(), fit.plane, 0)
    >>> preview.before[:4], len(preview.after) < len(preview.before)
    (b'\\x89PNG', True)
    """
    masks = np.stack([plane.slice_mask(g) for g in geometries])
    after = np.where(masks, fill, volume)
    lo, hi = (float(v) for v in np.percentile(volume, [1.0, 99.5]))
    return DefacePreview(
        before=_png(side_projection(volume, geometries), lo, hi),
        after=_png(side_projection(after, geometries), lo, hi),
    )
