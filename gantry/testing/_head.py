"""A synthetic head with a face, for defacing tests: :func:`make_head_phantom`.

The head is drawn analytically in patient coordinates (LPS, mm, origin at the
head's centre; the face looks to -y): a cranium of scalp over a 7 mm skull,
CSF and an ellipsoidal brain whose front-lower corner gives way to the skull
base above the orbits; in front and below it a lower face and neck, eyes in
orbits of fat, a nose, lips and a chin.  Any acquisition grid (axial,
sagittal, coronal, either slice order, a pitched head) samples the same
analytic head, and the ground truth masks come with it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray

from gantry.errors import ConfigError

__all__ = ["HeadPhantom", "make_head_phantom", "write_head_series"]

Orientation = Literal["axial", "sagittal", "coronal"]

# (row direction, column direction) of each acquisition plane
_PLANES: dict[str, tuple[tuple[float, ...], tuple[float, ...]]] = {
    "axial": ((1.0, 0.0, 0.0), (0.0, 1.0, 0.0)),
    "sagittal": ((0.0, 1.0, 0.0), (0.0, 0.0, -1.0)),
    "coronal": ((1.0, 0.0, 0.0), (0.0, 0.0, -1.0)),
}
# tissue values: CT in HU, MR in T1-like arbitrary units
_VALUES = {
    "CT": {"air": -1000, "soft": 40, "fat": -90, "bone": 1000, "csf": 5, "brain": 35, "eye": 10},
    "MR": {"air": 0, "soft": 600, "fat": 900, "bone": 40, "csf": 80, "brain": 450, "eye": 120},
}


def _ellipsoid(p: NDArray[Any], centre: tuple[float, ...], semi: tuple[float, ...]) -> Any:
    return sum(((p[..., i] - centre[i]) / semi[i]) ** 2 for i in range(3)) <= 1.0


@dataclass
class HeadPhantom:
    """A sampled head: stored values, ground truth and geometry.

    Attributes
    ----------
    volume : numpy.ndarray
        Stored values, ``(slices, rows, columns)``, slices in acquisition order.
    brain, face : numpy.ndarray of bool
        Ground truth: brain voxels (to keep) and face voxels (eyes, nose, lips,
        chin and the front of the lower face: to remove).
    positions : list of (float, float, float)
        Image Position (Patient) of each slice.
    orientation : six floats
        Image Orientation (Patient).
    spacing : float
        Pixel spacing and slice step (mm; isotropic).
    modality : str
        ``"CT"`` or ``"MR"``.
    slope, intercept : float
        Rescale from stored to physical values.
    """

    volume: NDArray[Any]
    brain: NDArray[np.bool_]
    face: NDArray[np.bool_]
    positions: list[tuple[float, float, float]]
    orientation: tuple[float, float, float, float, float, float]
    spacing: float
    modality: str
    slope: float = 1.0
    intercept: float = 0.0

    @property
    def step(self) -> float:
        """Distance between slices (mm)."""
        return self.spacing

    def values(self) -> NDArray[np.float64]:
        """Physical values (HU for CT)."""
        return self.volume.astype(np.float64) * self.slope + self.intercept

    def geometries(self) -> list[Any]:
        """One :class:`gantry.deface.SliceGeometry` per slice."""
        from gantry.deface import SliceGeometry

        rows, columns = self.volume.shape[1:]
        return [
            SliceGeometry(p, self.orientation, (self.spacing, self.spacing), rows, columns)
            for p in self.positions
        ]


def _labels(p: NDArray[Any]) -> tuple[NDArray[Any], NDArray[np.bool_], NDArray[np.bool_]]:
    """Tissue names per point, the brain and the face masks."""
    y, z = p[..., 1], p[..., 2]
    cranium = _ellipsoid(p, (0, 5, 20), (74, 94, 87))
    skull_outer = _ellipsoid(p, (0, 5, 20), (68, 88, 81))
    skull_inner = _ellipsoid(p, (0, 5, 20), (61, 81, 74))
    notch = (y < -20) & (z < -10)  # skull base and orbital roofs under the frontal lobe
    brain = _ellipsoid(p, (0, 5, 20), (58, 78, 71)) & ~notch
    lower = _ellipsoid(p, (0, -22, -50), (56, 62, 52))
    neck = ((p[..., 0] / 48) ** 2 + ((y - 20) / 52) ** 2 <= 1) & (z < -40)
    eyes = _ellipsoid(p, (32, -82, -22), (11, 11, 11)) | _ellipsoid(
        p, (-32, -82, -22), (11, 11, 11)
    )
    orbits = _ellipsoid(p, (32, -80, -22), (16, 16, 15)) | _ellipsoid(
        p, (-32, -80, -22), (16, 16, 15)
    )
    nose = _ellipsoid(p, (0, -84, -38), (13, 20, 24))
    lips = _ellipsoid(p, (0, -80, -66), (22, 9, 8))
    chin = _ellipsoid(p, (0, -72, -92), (22, 12, 14))
    head = cranium | lower | neck | nose | lips | chin | orbits
    tissue = np.full(p.shape[:-1], "air", dtype=object)
    tissue[head] = "soft"
    tissue[skull_outer] = "bone"
    tissue[skull_inner & ~notch] = "csf"
    tissue[brain] = "brain"
    tissue[orbits & ~brain] = "fat"
    tissue[eyes & ~brain] = "eye"
    face = (eyes | nose | lips | chin | (lower & (y < -66) & (z < -20))) & head & ~brain
    return tissue, brain, face


def make_head_phantom(
    *,
    size: int = 64,
    spacing: float = 4.0,
    orientation: Orientation = "axial",
    reverse: bool = False,
    modality: Literal["CT", "MR"] = "CT",
    pitch: float = 0.0,
    roll: float = 0.0,
    noise: float = 0.0,
    seed: int = 0,
) -> HeadPhantom:
    """Sample the synthetic head on a ``size``³ grid of ``spacing`` mm voxels.

    Parameters
    ----------
    size : int
        Voxels per side (the grid is centred on the head; 64 × 4 mm spans 256 mm).
    spacing : float
        Voxel size (mm, isotropic).
    orientation : {"axial", "sagittal", "coronal"}
        Acquisition plane.
    reverse : bool
        Slices run the other way along their normal (e.g. head to feet).
    modality : {"CT", "MR"}
        CT in HU (stored + 1024), or a T1-like MR contrast.
    pitch, roll : float
        The head's tilt (degrees): nodding about the left-right axis, then
        leaning about the front-back axis.
    noise : float
        Standard deviation of Gaussian noise (HU, or MR units).
    seed : int
        Seeds the noise.

    Examples
    --------
    >>> ph = make_head_phantom(size=32, spacing=8.0, orientation="sagittal")
    >>> ph.volume.shape, ph.volume.dtype.name, int(ph.brain.sum()) > 0, int(ph.face.sum()) > 0
    ((32, 32, 32), 'uint16', True, True)
    """
    if orientation not in _PLANES:
        raise ConfigError("orientation", expected="one of 'axial', 'sagittal', 'coronal'",
                          got=orientation)  # fmt: skip
    if modality not in _VALUES:
        raise ConfigError("modality", expected="'CT' or 'MR'", got=modality)
    row, col = (np.asarray(v) for v in _PLANES[orientation])
    normal = np.cross(row, col)
    if reverse:
        normal = -normal
    half = (size - 1) / 2 * spacing
    first = -half * (row + col + normal)
    idx = np.arange(size, dtype=float) * spacing
    k, r, c = np.meshgrid(idx, idx, idx, indexing="ij")
    points = first + k[..., None] * normal + r[..., None] * col + c[..., None] * row
    a, b = np.radians(pitch), np.radians(roll)
    pitch_m = np.array([[1, 0, 0], [0, np.cos(a), -np.sin(a)], [0, np.sin(a), np.cos(a)]])
    roll_m = np.array([[np.cos(b), 0, np.sin(b)], [0, 1, 0], [-np.sin(b), 0, np.cos(b)]])
    # the head is turned by R, so a patient point p shows the head at R⁻¹ p
    inverse = (roll_m @ pitch_m).T
    tissue, brain, face = _labels(points @ inverse.T)
    values = np.zeros(tissue.shape)
    for name, value in _VALUES[modality].items():
        values[tissue == name] = value
    if noise:
        values += np.random.default_rng(seed).normal(0.0, noise, values.shape)
    offset = 1024.0 if modality == "CT" else 0.0
    stored = np.clip(np.rint(values + offset), 0, 4095).astype(np.uint16)
    positions = [tuple(float(v) for v in first + i * normal) for i in idx]
    return HeadPhantom(
        volume=stored, brain=brain, face=face, positions=positions,  # type: ignore[arg-type]
        orientation=tuple(float(v) for v in (*row, *col)),  # type: ignore[arg-type]
        spacing=spacing, modality=modality, slope=1.0, intercept=-offset,
    )  # fmt: skip


def write_head_series(
    dest: str | Path, phantom: HeadPhantom, *, seed: int = 0, **overrides: Any
) -> list[Path]:
    """Write ``phantom`` as one DICOM series (one file per slice) into ``dest``.

    Files carry the geometry tags (Image Position/Orientation (Patient), Pixel
    Spacing, Slice Thickness), rescale for CT, and the identifying elements of
    :func:`gantry.testing.make_instance`; ``overrides`` are set on every file
    (``None`` deletes an element).

    Examples
    --------
    >>> import tempfile, pydicom
    >>> paths = write_head_series(tempfile.mkdtemp(), make_head_phantom(size=16, spacing=16.0))
    >>> ds = pydicom.dcmread(paths[0])
    >>> len(paths), ds.Modality, ds.Rows, [float(v) for v in ds.PixelSpacing]
    (16, 'CT', 16, [16.0, 16.0])
    """
    import copy

    from pydicom.uid import UID

    from gantry.testing._builders import apply_overrides, make_instance, write_dataset
    from gantry.testing._specs import make_uid

    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    slices, rows, columns = phantom.volume.shape
    base = make_instance(modality=phantom.modality, rows=rows, columns=columns, seed=seed)
    base.SeriesInstanceUID = make_uid(seed, f"head.{phantom.modality}", "series")
    base.SeriesDescription = f"HEAD {phantom.modality}"
    base.BodyPartExamined = "HEAD"
    base.BitsAllocated, base.BitsStored, base.HighBit = 16, 12, 11
    base.PixelRepresentation = 0
    base.SamplesPerPixel = 1
    base.PhotometricInterpretation = "MONOCHROME2"
    base.PixelSpacing = [f"{phantom.spacing:g}", f"{phantom.spacing:g}"]
    base.SliceThickness = f"{phantom.spacing:g}"
    base.ImageOrientationPatient = [f"{v:.6g}" for v in phantom.orientation]
    base.FrameOfReferenceUID = make_uid(seed, f"head.{phantom.modality}", "frame")
    if phantom.modality == "CT":
        base.RescaleSlope, base.RescaleIntercept, base.RescaleType = "1", "-1024", "HU"
    for keyword in ("RescaleSlope", "RescaleIntercept", "RescaleType"):
        if phantom.modality != "CT" and keyword in base:
            delattr(base, keyword)
    apply_overrides(base, overrides)
    paths = []
    for k in range(slices):
        ds = copy.deepcopy(base)
        uid = make_uid(seed, f"head.{phantom.modality}.{k}", "sop")
        ds.SOPInstanceUID = uid
        ds.file_meta.MediaStorageSOPInstanceUID = UID(uid)
        ds.InstanceNumber = k + 1
        if "ImagePositionPatient" not in overrides:
            ds.ImagePositionPatient = [f"{v:.4f}" for v in phantom.positions[k]]
        ds.PixelData = phantom.volume[k].astype("<u2").tobytes()
        paths.append(write_dataset(ds, dest / f"head_{k:03d}.dcm"))
    return paths
