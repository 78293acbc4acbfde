"""Assemble a voxel volume and its affine from the (de-identified) DICOM files of one series.

Geometry follows PS3.3 C.7.6.2: voxel ``(i, j, k)`` sits at
``IPP + i * Δcol * row_cosines + j * Δrow * column_cosines + k * step`` in patient
(LPS) millimetres, where ``step`` is the measured vector between consecutive
slice positions. NIfTI wants RAS, so the first two rows of the affine are negated.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
from numpy.typing import NDArray
from pydicom.datadict import tag_for_keyword
from pydicom.dataset import Dataset

from gantry.nifti._header import read_needed

_LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])
_POSITION_TOL = 1e-3  # mm: positions closer than this are the same slice
_SPACING_TOL = 0.02  # relative: steps differing more than 2 % are not uniform
_TILT_TOL = 0.01  # degrees


_NEEDED = [
    "SOPClassUID", "ImageType", "Rows", "Columns", "SamplesPerPixel", "PhotometricInterpretation",
    "BitsAllocated", "BitsStored", "HighBit", "PixelRepresentation", "PlanarConfiguration",
    "NumberOfFrames", "ImagePositionPatient", "ImageOrientationPatient", "PixelSpacing",
    "SliceThickness", "SpacingBetweenSlices", "RescaleSlope", "RescaleIntercept",
    "TemporalPositionIdentifier", "AcquisitionNumber", "InstanceNumber", "AcquisitionTime",
    "DiffusionBValue", "DiffusionGradientOrientation", "SharedFunctionalGroupsSequence",
    "PerFrameFunctionalGroupsSequence", "PixelData", "FloatPixelData", "DoubleFloatPixelData",
    "ExtendedOffsetTable", "ExtendedOffsetTableLengths",
]  # fmt: skip
_NEEDED_TAGS = [int(tag_for_keyword(k) or 0) for k in _NEEDED]


class Unconvertible(Exception):
    """The series cannot be written as a correct NIfTI volume (the message says why)."""


@dataclass
class _Frame:
    """One 2-D image: a classic instance or one frame of an enhanced instance."""

    source: int  # index of the dataset
    frame: int | None  # frame within an enhanced instance
    position: NDArray[np.float64]
    orientation: NDArray[np.float64]
    spacing: tuple[float, float]  # row spacing, column spacing
    slope: float
    intercept: float
    order: tuple[float, ...]  # sort key among images at one position
    bval: float | None = None
    bvec: NDArray[np.float64] | None = None
    time: float | None = None  # acquisition time (s of day), for slice timing


@dataclass
class Volume:
    """A converted series: voxels (i, j, k[, t]), RAS affine and what was noticed."""

    data: NDArray[Any]
    affine: NDArray[np.float64]
    slope: float = 1.0
    intercept: float = 0.0
    sheared: bool = False
    notes: list[str] = field(default_factory=list)
    bvals: list[float] | None = None
    bvecs: NDArray[np.float64] | None = None  # (3, volumes), FSL voxel convention
    slice_timing: list[float] | None = None
    first: Dataset | None = None  # a de-identified header, for the sidecar
    kind: str = "3d"  # "3d", "4d" or "dwi"


def read_volume(paths: list[Path]) -> Volume:
    """Read every file of one series and assemble the volume (raises :class:`Unconvertible`)."""
    if not paths:
        raise Unconvertible("no files")
    # the first header in full (for the sidecar), the others only what geometry needs
    datasets = [pydicom.dcmread(paths[0], force=True)]
    datasets += [_read_needed(p) for p in paths[1:]]
    first = datasets[0]
    if "PixelData" not in first and "FloatPixelData" not in first:
        raise Unconvertible("no pixel data")
    if int(first.get("SamplesPerPixel", 1) or 1) != 1:
        raise Unconvertible("colour images (SamplesPerPixel > 1) are not converted")
    if "MOSAIC" in [str(v).upper() for v in _list(first.get("ImageType"))]:
        raise Unconvertible("Siemens mosaic images are not converted")
    sizes = {(int(d.get("Rows", 0)), int(d.get("Columns", 0))) for d in datasets}
    if len(sizes) != 1:
        raise Unconvertible(f"image size changes within the series ({len(sizes)} sizes)")
    frames = [f for n, ds in enumerate(datasets) for f in _frames(n, ds)]
    volume = _assemble(frames, datasets, sizes.pop())
    volume.first = first
    return volume


def _read_needed(path: Path) -> Dataset:
    """The elements geometry and pixels need: the quick reader, else pydicom."""
    quick = read_needed(path, _NEEDED_TAGS)
    return quick if quick is not None else pydicom.dcmread(path, force=True, specific_tags=_NEEDED)


def _list(value: Any) -> list[Any]:
    if value is None:
        return []
    if isinstance(value, str | bytes):
        return [value]
    try:
        return list(value)
    except TypeError:
        return [value]


def _float(value: Any, default: float | None = None) -> float | None:
    try:
        return float(value) if value not in (None, "") else default
    except (TypeError, ValueError):
        return default


def _seconds(tm: Any) -> float | None:
    text = str(tm or "").strip()
    if len(text) < 6 or not text[:6].isdigit():
        return None
    try:
        return int(text[:2]) * 3600 + int(text[2:4]) * 60 + float(text[4:])
    except ValueError:
        return None


def _item(ds: Dataset, seq: str) -> Dataset | None:
    value = ds.get(seq)
    return value[0] if value else None


def _group(shared: Dataset | None, per_frame: Dataset | None, seq: str) -> Dataset | None:
    """A functional group item, per-frame first, then shared."""
    for where in (per_frame, shared):
        if where is not None and (got := _item(where, seq)) is not None:
            return got
    return None


def _frames(n: int, ds: Dataset) -> list[_Frame]:
    if "PerFrameFunctionalGroupsSequence" in ds:
        return _enhanced_frames(n, ds)
    if "ImagePositionPatient" not in ds or "ImageOrientationPatient" not in ds:
        raise Unconvertible("an image has no Image Position/Orientation (Patient)")
    spacing = [_float(v, 1.0) or 1.0 for v in _list(ds.get("PixelSpacing")) or [1.0, 1.0]]
    gradient = ds.get("DiffusionGradientOrientation")
    bval = _float(ds.get("DiffusionBValue"))
    return [
        _Frame(
            source=n,
            frame=None,
            position=np.array([float(v) for v in ds.ImagePositionPatient]),
            orientation=np.array([float(v) for v in ds.ImageOrientationPatient]),
            spacing=(spacing[0], spacing[1]),
            slope=_float(ds.get("RescaleSlope"), 1.0) or 1.0,
            intercept=_float(ds.get("RescaleIntercept"), 0.0) or 0.0,
            order=(
                _float(ds.get("TemporalPositionIdentifier"), 0.0) or 0.0,
                _float(ds.get("AcquisitionNumber"), 0.0) or 0.0,
                _float(ds.get("InstanceNumber"), 0.0) or 0.0,
            ),
            bval=bval,
            bvec=np.array([float(v) for v in gradient]) if gradient else None,
            time=_seconds(ds.get("AcquisitionTime")),
        )
    ]


def _enhanced_frames(n: int, ds: Dataset) -> list[_Frame]:
    shared = _item(ds, "SharedFunctionalGroupsSequence")
    out = []
    for f, per in enumerate(ds.PerFrameFunctionalGroupsSequence):
        pos = _group(shared, per, "PlanePositionSequence")
        ori = _group(shared, per, "PlaneOrientationSequence")
        meas = _group(shared, per, "PixelMeasuresSequence")
        if pos is None or ori is None or "ImagePositionPatient" not in pos:
            raise Unconvertible(f"frame {f + 1} has no plane position or orientation")
        rescale = _group(shared, per, "PixelValueTransformationSequence")
        content = _group(shared, per, "FrameContentSequence")
        diffusion = _group(shared, per, "MRDiffusionSequence")
        bvec = None
        if diffusion is not None and (d := _item(diffusion, "DiffusionGradientDirectionSequence")):
            if "DiffusionGradientOrientation" in d:
                bvec = np.array([float(v) for v in d.DiffusionGradientOrientation])
        spacing = [float(v) for v in (meas.PixelSpacing if meas else [1.0, 1.0])]
        temporal = content.get("TemporalPositionIndex") if content is not None else None
        out.append(
            _Frame(
                source=n,
                frame=f,
                position=np.array([float(v) for v in pos.ImagePositionPatient]),
                orientation=np.array([float(v) for v in ori.ImageOrientationPatient]),
                spacing=(spacing[0], spacing[1]),
                slope=_float(rescale.get("RescaleSlope") if rescale else None, 1.0) or 1.0,
                intercept=_float(rescale.get("RescaleIntercept") if rescale else None, 0.0) or 0.0,
                order=(_float(temporal, 0.0) or 0.0, 0.0, float(f)),
                bval=_float(diffusion.get("DiffusionBValue")) if diffusion is not None else None,
                bvec=bvec,
            )
        )
    return out


def _assemble(frames: list[_Frame], datasets: list[Dataset], size: tuple[int, int]) -> Volume:
    notes: list[str] = []
    ref = frames[0]
    for f in frames:
        if np.abs(f.orientation - ref.orientation).max() > 1e-4:
            raise Unconvertible("image orientation changes within the series")
        if np.abs(np.subtract(f.spacing, ref.spacing)).max() > 1e-4:
            raise Unconvertible("pixel spacing changes within the series")
    row_dir, col_dir = ref.orientation[:3], ref.orientation[3:]
    normal = np.cross(row_dir, col_dir)
    if np.linalg.norm(normal) < 0.5:
        raise Unconvertible("image orientation is degenerate")
    normal /= np.linalg.norm(normal)
    # group images by their distance along the normal
    dist = np.array([f.position @ normal for f in frames])
    order = np.argsort(dist, kind="stable")
    groups: list[list[_Frame]] = []
    last = None
    for idx in order:
        if last is None or dist[idx] - last > _POSITION_TOL:
            groups.append([])
        groups[-1].append(frames[idx])
        last = dist[idx]
    counts = {len(g) for g in groups}
    if len(counts) != 1:
        raise Unconvertible(
            f"slice positions hold different numbers of images ({min(counts)} to {max(counts)}):"
            " images are missing or the series mixes stacks"
        )
    n_vol = counts.pop()
    for g in groups:
        g.sort(key=lambda f: f.order)
    positions = np.array([g[0].position for g in groups])
    step, sheared = _slice_step(positions, normal, ref, datasets[0], notes)
    rows, cols = size
    affine_lps = np.eye(4)
    affine_lps[:3, 0] = row_dir * ref.spacing[1]
    affine_lps[:3, 1] = col_dir * ref.spacing[0]
    affine_lps[:3, 2] = step
    affine_lps[:3, 3] = positions[0]
    slopes = {(f.slope, f.intercept) for f in frames}
    pixels = _pixels(frames, datasets, groups, n_vol, rows, cols)
    slope, intercept = 1.0, 0.0
    if len(slopes) == 1:
        slope, intercept = slopes.pop()
    else:  # per-image rescale: apply it, store floats
        notes.append("rescale slope/intercept vary between images: values stored as float32")
        scaled = np.empty(pixels.shape, np.float32)
        for k, g in enumerate(groups):
            for t, f in enumerate(g):
                scaled[:, :, k, t] = pixels[:, :, k, t] * f.slope + f.intercept
        pixels = scaled
    volume = Volume(
        data=pixels if n_vol > 1 else pixels[..., 0],
        affine=_LPS_TO_RAS @ affine_lps,
        slope=slope,
        intercept=intercept,
        sheared=sheared,
        notes=notes,
        kind="4d" if n_vol > 1 else "3d",
    )
    if n_vol > 1:
        _diffusion(volume, groups, affine_lps)
        volume.slice_timing = _slice_timing(groups)
    return volume


def _slice_step(
    positions: NDArray[np.float64],
    normal: NDArray[np.float64],
    ref: _Frame,
    first: Dataset,
    notes: list[str],
) -> tuple[NDArray[np.float64], bool]:
    """The vector between consecutive slices; checks gaps and gantry tilt."""
    if len(positions) == 1:
        thickness = _float(first.get("SpacingBetweenSlices")) or _float(first.get("SliceThickness"))
        return normal * (thickness or 1.0), False
    steps = np.diff(positions, axis=0)
    along = steps @ normal
    median = float(np.median(along))
    if median <= 0:
        raise Unconvertible("slice positions do not advance along the slice normal")
    worst = int(np.argmax(np.abs(along - median)))
    if abs(along[worst] - median) > _SPACING_TOL * median:
        raise Unconvertible(
            f"slice spacing is not uniform: {along[worst]:.3f} mm between slices "
            f"{worst + 1} and {worst + 2}, {median:.3f} mm elsewhere (a gap or missing slices)"
        )
    step = (positions[-1] - positions[0]) / (len(positions) - 1)
    cos = float(step @ normal / np.linalg.norm(step))
    angle = float(np.degrees(np.arccos(min(1.0, cos))))
    if angle > _TILT_TOL:
        notes.append(
            f"gantry tilt of {angle:.2f} degrees: the affine is sheared (written as sform only)"
        )
        return step, True
    return normal * (step @ normal), False


def _pixels(
    frames: list[_Frame],
    datasets: list[Dataset],
    groups: list[list[_Frame]],
    n_vol: int,
    rows: int,
    cols: int,
) -> NDArray[Any]:
    from gantry.pixels import decode

    decoded: dict[int, NDArray[Any]] = {}

    def image(f: _Frame) -> NDArray[Any]:
        if f.source not in decoded:
            decoded[f.source] = decode(datasets[f.source])
        arr = decoded[f.source]
        return arr[f.frame] if f.frame is not None and arr.ndim == 3 else arr

    sample = image(frames[0])
    # filled as contiguous (t, k, row, column) planes; the transposed view is (i, j, k, t)
    # and its Fortran-order bytes (what NIfTI stores) are this buffer as is
    stack = np.empty((n_vol, len(groups), rows, cols), dtype=sample.dtype)
    for k, g in enumerate(groups):
        for t, f in enumerate(g):
            stack[t, k] = image(f)
    return stack.transpose(3, 2, 1, 0)


def _diffusion(volume: Volume, groups: list[list[_Frame]], affine_lps: NDArray[Any]) -> None:
    """b-values and gradient directions per volume, bvecs in FSL's voxel convention."""
    firsts = [groups[0][t] for t in range(len(groups[0]))]
    if all(f.bval is None for f in firsts):
        return
    bvals = [float(f.bval or 0.0) for f in firsts]
    axes = affine_lps[:3, :3] / np.linalg.norm(affine_lps[:3, :3], axis=0)
    bvecs = np.zeros((3, len(firsts)))
    for t, f in enumerate(firsts):
        if f.bvec is not None and bvals[t] > 0 and np.linalg.norm(f.bvec) > 0:
            g = f.bvec / np.linalg.norm(f.bvec)
            bvecs[:, t] = np.linalg.solve(axes, g)  # patient → voxel axes
    if np.linalg.det((_LPS_TO_RAS @ affine_lps)[:3, :3]) > 0:
        bvecs[0] *= -1  # FSL assumes a radiological (negative determinant) voxel order
    volume.bvals = bvals
    volume.bvecs = bvecs
    volume.kind = "dwi"


def _slice_timing(groups: list[list[_Frame]]) -> list[float] | None:
    """Acquisition time of each slice of the first volume, relative to the earliest."""
    times = [g[0].time for g in groups]
    if any(t is None for t in times):
        return None
    start = min(t for t in times if t is not None)
    rel = [round(float(t) - start, 4) for t in times if t is not None]
    return rel if max(rel) > 0 else None
