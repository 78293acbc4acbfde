"""Find the face-side cut of a head volume: a shear plane under the brain's hull.

The method follows the idea of Quickshear (Schimke & Hale, *Quickshear
defacing for neuroimages*, HealthSec 2011): in the sagittal view the face lies
in front of and below the brain, so a plane that touches the brain's convex
hull on its front-lower side, moved a safety margin outward, separates the
face from the brain; every voxel beyond it is blanked.  Quickshear takes its
brain mask from a skull-stripping tool; this module finds the brain itself:

1. the head is the largest bright region (CT: above -300 HU; MR: above an
   Otsu threshold), holes filled;
2. the brain is the highest brain-sized region of soft tissue (CT: -20..100
   HU; MR: above the Otsu threshold) at least 6 mm inside the skin, once bone,
   CSF and air (dark on MR, bone bright on CT) and an erosion of one voxel
   have cut it off from scalp and face; at least 30 % of an 8 mm shell around
   it must be skull (CT: above 300 HU; MR: dark bone and CSF), or the volume
   is refused as no head;
3. in patient coordinates (LPS), the brain's most anterior and most inferior
   points span a chord of its lower-front hull; the plane is parallel to the
   chord, perpendicular to the sagittal plane, and touches the brain, plus
   ``margin`` mm.

The plane lives in patient coordinates, so slice orientation and order do not
matter; morphology works on a copy subsampled to about 2 mm voxels.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from gantry._deps import require
from gantry.deface._geometry import FacePlane, SliceGeometry
from gantry.errors import DefaceError

__all__ = ["ShearFit", "fit_face_plane"]

#: A brain smaller or larger than this (ml) means the head was not found.
BRAIN_ML = (400.0, 2600.0)


@dataclass(frozen=True)
class ShearFit:
    """The plane found for one volume and what it removes.

    Attributes
    ----------
    plane : FacePlane
        The cut, in patient coordinates.
    removed_fraction : float
        Share of the volume's voxels on the face side.
    head_removed_fraction : float
        Share of the head's voxels on the face side.
    brain_ml : float
        Volume of the brain region found (ml).
    """

    plane: FacePlane
    removed_fraction: float
    head_removed_fraction: float
    brain_ml: float


def _ndimage() -> Any:
    return require("scipy.ndimage", extra="deface")


def _otsu(values: NDArray[Any]) -> float:
    hist, edges = np.histogram(values, bins=256)
    centres = (edges[:-1] + edges[1:]) / 2
    weight = np.cumsum(hist)
    total = weight[-1]
    mean = np.cumsum(hist * centres)
    between = (mean[-1] * weight - mean * total) ** 2 / np.maximum(
        weight * (total - weight), 1
    ).astype(float)
    return float(centres[int(np.argmax(between[:-1]))])


def _largest(mask: NDArray[np.bool_]) -> NDArray[np.bool_]:
    ndi = _ndimage()
    labels, count = ndi.label(mask)
    if count == 0:
        return mask
    sizes = np.bincount(labels.ravel())
    sizes[0] = 0
    return np.asarray(labels == int(np.argmax(sizes)))


def _uppermost(mask: NDArray[np.bool_], voxel_ml: float, patient: Any) -> NDArray[np.bool_]:
    """The brain-sized region of ``mask`` lying highest in the patient (largest if none is)."""
    ndi = _ndimage()
    labels, count = ndi.label(mask)
    if count == 0:
        return mask
    sizes = np.bincount(labels.ravel())
    sizes[0] = 0
    big = [i for i in range(1, count + 1) if sizes[i] * voxel_ml >= BRAIN_ML[0]]
    if not big:
        return np.asarray(labels == int(np.argmax(sizes)))
    centres = ndi.center_of_mass(mask, labels, big)
    heights = [float(patient(*(np.array([round(v)]) for v in ctr))[0, 2]) for ctr in centres]
    return np.asarray(labels == big[int(np.argmax(heights))])


def _brain_frame(sagittal: NDArray[np.float64]) -> NDArray[np.float64]:
    """A rotation taking (anterior, inferior) to the brain's long and short sagittal axes.

    The long axis of the brain's sagittal outline runs front to back; following
    it makes the cut turn with a nodding head.  It is trusted up to ±25° from the
    scanner's axes, and only when the outline is clearly longer than high.
    """
    centred = sagittal - sagittal.mean(axis=0)
    values, vectors = np.linalg.eigh(centred.T @ centred)
    long_axis = vectors[:, int(np.argmax(values))]
    if long_axis[0] < 0:
        long_axis = -long_axis
    angle = float(np.arctan2(long_axis[1], long_axis[0]))
    if values.max() < 1.1 * values.min():
        angle = 0.0
    angle = float(np.clip(angle, -np.radians(25), np.radians(25)))
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[c, -s], [s, c]])


def _ball(radius_mm: float, spacing: Sequence[float]) -> NDArray[np.bool_]:
    half = [max(0, int(radius_mm // s)) for s in spacing]
    grid = np.ogrid[tuple(slice(-h, h + 1) for h in half)]
    dist = sum((g * s) ** 2 for g, s in zip(grid, spacing, strict=True))
    return np.asarray(dist <= radius_mm**2 + 1e-9)


def fit_face_plane(
    volume: NDArray[Any],
    geometries: Sequence[SliceGeometry],
    step: float,
    *,
    modality: str,
    margin: float = 4.0,
) -> ShearFit:
    """The face-side plane of a head volume (see the module docstring for the method).

    Parameters
    ----------
    volume : numpy.ndarray
        ``(slices, rows, columns)`` in physical units (HU for CT), slices in
        order along their normal (:func:`gantry.deface.stack_slices`).
    geometries : sequence of SliceGeometry
        One per slice, in the same order.
    step : float
        Distance between slices (mm).
    modality : str
        ``"CT"`` uses Hounsfield thresholds; anything else MR-like ones.
    margin : float
        Distance (mm) the plane is moved away from the brain.

    Raises
    ------
    gantry.errors.DefaceError
        No head, or no brain-sized region inside it.
    gantry.errors.MissingDependencyError
        scipy is not installed (``pip install 'gantry[deface]'``).

    Examples
    --------
    >>> from gantry.testing import make_head_phantom
    >>> ph = make_head_phantom(size=48, spacing=5.0)
    >>> fit = fit_face_plane(ph.values(), ph.geometries(), ph.step, modality="CT")
    >>> removed = np.stack([fit.plane.slice_mask(g) for g in ph.geometries()])
    >>> bool(removed[ph.face].mean() > 0.99), bool(removed[ph.brain].mean() < 0.005)
    (True, True)
    """
    ndi = _ndimage()
    spacing_full = (step, geometries[0].spacing[0], geometries[0].spacing[1])
    stride = [max(1, round(2.0 / s)) for s in spacing_full]
    sub = np.asarray(volume[:: stride[0], :: stride[1], :: stride[2]], dtype=np.float32)
    spacing = [s * k for s, k in zip(spacing_full, stride, strict=True)]
    voxel_ml = float(np.prod(spacing)) / 1000.0
    ct = modality.upper() == "CT"
    if ct:
        head_level = -300.0
    else:
        positive = sub[sub > np.percentile(sub, 2)]
        tissue_level = _otsu(positive) if positive.size else float("inf")
        head_level = tissue_level * 0.5
    head = _largest(ndi.binary_fill_holes(sub > head_level))  # skull and brain inside the scalp
    if head.sum() * voxel_ml < BRAIN_ML[0]:
        raise DefaceError("no head was found in the volume (too little tissue above background)")
    inner = ndi.binary_erosion(head, structure=_ball(6.0, spacing))
    if ct:
        tissue = (sub > -20) & (sub < 100)
    else:
        tissue = sub > tissue_level  # CSF and bone are dark
    bridge = _ball(max(2.0, min(spacing)), spacing)  # cuts one-voxel bridges
    candidates = ndi.binary_erosion(tissue & inner, structure=bridge)
    g = [geometries[int(i)] for i in range(0, len(geometries), stride[0])]
    row = np.asarray(geometries[0].orientation[:3]) * geometries[0].spacing[1]
    col = np.asarray(geometries[0].orientation[3:]) * geometries[0].spacing[0]
    positions = np.array([s.position for s in g])

    def patient(k: Any, r: Any, c: Any) -> NDArray[np.float64]:
        return np.asarray(
            positions[k] + (c * stride[2])[:, None] * row + (r * stride[1])[:, None] * col
        )

    brain = _uppermost(candidates, voxel_ml, patient)
    brain = ndi.binary_dilation(brain, structure=bridge) & tissue & inner
    brain_ml = float(brain.sum()) * voxel_ml
    if not BRAIN_ML[0] <= brain_ml <= BRAIN_ML[1]:
        raise DefaceError(
            f"no brain-sized region was found inside the head ({brain_ml:.0f} ml; expected "
            f"{BRAIN_ML[0]:.0f}-{BRAIN_ML[1]:.0f} ml): is this a head scan?"
        )
    shell = ndi.binary_dilation(brain, structure=_ball(max(8.0, 2 * min(spacing)), spacing))
    shell &= ~brain & head
    skull = sub > 300 if ct else sub < tissue_level  # bone: bright on CT, dark (with CSF) on MR
    if not shell.any() or float(skull[shell].mean()) < 0.3:
        raise DefaceError(
            "the brain-sized region has no skull around it (too little bone, or dark CSF and "
            "bone on MR): is this a head scan?"
        )
    points = patient(*np.nonzero(brain))
    sagittal = -points[:, 1:]  # (anterior, inferior): LPS y grows posterior, z superior
    turn = _brain_frame(sagittal)
    aligned = sagittal @ turn  # the brain's own front and bottom, whatever the head's pitch
    front = sagittal[int(np.argmax(aligned[:, 0]))]
    bottom = sagittal[int(np.argmax(aligned[:, 1]))]
    chord = bottom - front
    normal_ai = np.array([chord[1], -chord[0]])  # perpendicular, toward front and below
    length = float(np.linalg.norm(normal_ai))
    if length < 1e-6 or normal_ai.min() < 0:
        raise DefaceError("the brain's front and bottom could not be told apart: no plane fits")
    normal_ai /= length
    normal = (0.0, -float(normal_ai[0]), -float(normal_ai[1]))  # back to LPS
    offset = float(np.max(points @ np.asarray(normal))) + margin
    plane = FacePlane(normal, offset)
    removed = np.stack([plane.slice_mask(s) for s in geometries])
    head_full = removed[:: stride[0], :: stride[1], :: stride[2]]
    head_removed = float(head_full[head].mean()) if head.any() else 0.0
    if head_removed < 0.01:
        raise DefaceError(
            "nothing of the head lies in front of the brain: the face is not in the field of view"
        )
    return ShearFit(plane, float(removed.mean()), head_removed, brain_ml)
