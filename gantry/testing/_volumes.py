"""Build whole synthetic image series with known geometry: :func:`make_series`.

Each series is written as real DICOM (one file per slice, or one enhanced
multi-frame file) with a deterministic voxel volume, so NIfTI converters can be
checked voxel by voxel: CT, MR, enhanced MR, fMRI (4D) and diffusion (4D with
b-values and gradient directions). Identifying elements can carry canaries.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.uid import UID

from gantry.errors import ConfigError
from gantry.testing._builders import apply_overrides, make_instance, write_dataset
from gantry.testing._canaries import CanaryBook
from gantry.testing._specs import make_uid

SeriesKind = Literal["ct", "mr", "enhanced", "fmri", "dwi", "pet"]
ENHANCED_MR = UID("1.2.840.10008.5.1.4.1.1.4.1")
PET_IMAGE = UID("1.2.840.10008.5.1.4.1.1.128")

# identifying elements that carry a canary when ``canaries=True``
_CANARY_KEYWORDS = (
    "PatientName",
    "PatientID",
    "OtherPatientIDs",
    "InstitutionName",
    "InstitutionAddress",
    "ReferringPhysicianName",
    "StationName",
    "StudyDescription",
    "SeriesDescription",
    "ProtocolName",
    "OperatorsName",
    "PerformingPhysicianName",
    "DeviceSerialNumber",
    "AccessionNumber",
    "StudyID",
    "PatientAddress",
    "AdditionalPatientHistory",
    "ImageComments",
)


@dataclass
class SeriesFiles:
    """What :func:`make_series` wrote.

    Attributes
    ----------
    paths : list of Path
        The files, in the (shuffled) order they were written.
    volume : numpy.ndarray
        Stored values as ``(volumes, slices, rows, columns)``, slices in
        acquisition order along the slice normal.
    slope, intercept : float
        The rescale applied by readers (``value = stored * slope + intercept``).
    bvals : list of float
        One b-value per volume (diffusion only, else empty).
    bvecs : list of tuple of float
        One unit gradient direction per volume in patient (LPS) axes.
    canaries : set of str
        Canary tokens planted in identifying elements.
    slice_slopes : list of float
        PET only: the Rescale Slope of each slice (in :attr:`volume`'s slice
        order), which varies per image as on real scanners.
    """

    paths: list[Path]
    volume: NDArray[Any]
    slope: float = 1.0
    intercept: float = 0.0
    bvals: list[float] = field(default_factory=list)
    bvecs: list[tuple[float, float, float]] = field(default_factory=list)
    canaries: set[str] = field(default_factory=set)
    slice_slopes: list[float] = field(default_factory=list)


def make_series(
    dest: str | Path,
    *,
    kind: SeriesKind = "ct",
    slices: int = 6,
    rows: int = 20,
    columns: int = 16,
    volumes: int = 1,
    pixel_spacing: tuple[float, float] = (0.8, 0.9),
    slice_step: float = 2.5,
    orientation: tuple[float, ...] = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0),
    origin: tuple[float, float, float] = (-100.0, -120.0, 40.0),
    tilt: float = 0.0,
    gap_after: int | None = None,
    slope: float = 1.0,
    intercept: float = 0.0,
    bvals: list[float] | None = None,
    canaries: bool = True,
    seed: int = 0,
    **overrides: Any,
) -> SeriesFiles:
    """Write one synthetic series with known geometry into ``dest``.

    Parameters
    ----------
    dest : str or Path
        Folder for the files (created).
    kind : {"ct", "mr", "enhanced", "fmri", "dwi", "pet"}
        ``"enhanced"`` is one Enhanced MR file holding every slice as a frame
        with per-frame positions; ``"pet"`` a static FDG PET in Bq/ml, decay
        corrected to the scan start, with a Rescale Slope of its own per slice,
        the injected dose, injection time and the patient's weight; ``"fmri"`` repeats the slices for ``volumes``
        time points (TR 2 s, interleaved slice times); ``"dwi"`` for each
        b-value in ``bvals`` (default ``[0, 1000, 1000, 1000]``).
    slices, rows, columns, volumes : int
        Volume size.
    pixel_spacing : (float, float)
        Row spacing, column spacing (mm).
    slice_step : float
        Distance between slice centres along the normal (mm).
    orientation : six floats
        Image Orientation (Patient): row then column direction cosines.
    origin : three floats
        Image Position (Patient) of the first slice (LPS, mm).
    tilt : float
        Gantry tilt in degrees: each slice also moves along the column direction.
    gap_after : int, optional
        Leave one slice out after this slice index (a gap in the stack).
    slope, intercept : float
        Rescale Slope and Intercept written on every image.
    canaries : bool
        Plant a canary token in each identifying element (see :attr:`SeriesFiles.canaries`).
    seed : int
        Identities and voxel values derive from it.
    **overrides
        Any DICOM keyword set on every file (``None`` deletes it).

    Examples
    --------
    >>> import tempfile
    >>> s = make_series(tempfile.mkdtemp(), kind="dwi", slices=3, rows=4, columns=5)
    >>> len(s.paths), s.volume.shape, s.bvals
    (12, (4, 3, 4, 5), [0.0, 1000.0, 1000.0, 1000.0])
    """
    kinds = ("ct", "mr", "enhanced", "fmri", "dwi", "pet")
    if kind not in kinds:
        raise ConfigError("kind", expected="one of " + ", ".join(map(repr, kinds)), got=kind)
    dest = Path(dest)
    rng = np.random.default_rng(seed)
    if kind == "dwi":
        bvals = [0.0, 1000.0, 1000.0, 1000.0] if bvals is None else [float(b) for b in bvals]
        volumes = len(bvals)
    elif kind != "fmri":
        volumes = 1
    modality = {"ct": "CT", "pet": "PT"}.get(kind, "MR")
    base = make_instance(modality="CT" if kind == "pet" else modality, rows=rows,
                         columns=columns, seed=seed)  # fmt: skip
    book = CanaryBook(seed, enabled=True)
    planted: set[str] = set()
    if canaries:
        for kw in _CANARY_KEYWORDS:
            tok = book.token(f"series.{kw}")
            setattr(base, kw, tok if kw != "SeriesDescription" else f"{tok} {_describe(kind)}")
            planted.add(tok)
    else:
        base.SeriesDescription = _describe(kind)
    series_uid = make_uid(seed, f"volume.{kind}", "series")
    base.SeriesInstanceUID = series_uid
    base.SeriesNumber = 3 + seed % 50
    base.SliceThickness = f"{slice_step:g}"
    base.SpacingBetweenSlices = f"{slice_step:g}"
    base.PixelSpacing = [f"{pixel_spacing[0]:g}", f"{pixel_spacing[1]:g}"]
    base.ImageOrientationPatient = [f"{v:.6g}" for v in orientation]
    base.RescaleSlope = f"{slope:g}"
    base.RescaleIntercept = f"{intercept:g}"
    if kind == "pet":
        _pet(base)
        stored = rng.integers(0, 32000, size=(volumes, slices, rows, columns), dtype=np.int16)
    elif modality == "CT":
        base.RescaleType = "HU"
        base.GantryDetectorTilt = f"{tilt:g}"
        stored = rng.integers(-1024, 3000, size=(volumes, slices, rows, columns), dtype=np.int16)
    else:
        stored = rng.integers(0, 4096, size=(volumes, slices, rows, columns), dtype=np.uint16)
        base.InPlanePhaseEncodingDirection = "COL"
        base.FlipAngle = "90" if kind in ("fmri", "dwi") else "12"
        if kind == "fmri":
            base.RepetitionTime = "2000"
            base.EchoTime = "30"
        elif kind == "dwi":
            base.RepetitionTime = "8000"
            base.EchoTime = "85"
    apply_overrides(base, overrides)

    row_dir = np.asarray(orientation[:3], float)
    col_dir = np.asarray(orientation[3:], float)
    normal = np.cross(row_dir, col_dir)
    shear = np.tan(np.radians(tilt)) * col_dir
    index = [k + (1 if gap_after is not None and k > gap_after else 0) for k in range(slices)]
    positions = [np.asarray(origin) + i * slice_step * (normal + shear) for i in index]
    order = list(range(slices))
    rng.shuffle(order)  # slices are written out of order on purpose
    bvecs = _directions(volumes) if kind == "dwi" else []
    assert bvals is not None or kind != "dwi"
    dest.mkdir(parents=True, exist_ok=True)
    if kind == "enhanced":
        path = _write_enhanced(dest, base, stored[0], positions, seed)
        return SeriesFiles([path], stored, slope, intercept, canaries=planted)
    paths = []
    slopes = [slope * (1.0 + 0.25 * k) for k in range(slices)] if kind == "pet" else []
    # interleaved slice order: 0, 2, 4, ..., 1, 3, ...
    slot = {k: n for n, k in enumerate(list(range(0, slices, 2)) + list(range(1, slices, 2)))}
    for t in range(volumes):
        for k in order:
            ds = copy.deepcopy(base)
            number = t * slices + k + 1
            uid = make_uid(seed, f"volume.{kind}.{t}.{k}", "sop")
            ds.SOPInstanceUID = uid
            ds.file_meta.MediaStorageSOPInstanceUID = uid
            ds.InstanceNumber = number
            ds.AcquisitionNumber = t + 1
            ds.ImagePositionPatient = [f"{v:.6f}" for v in positions[k]]
            ds.SliceLocation = f"{float(positions[k] @ normal):.6f}"
            ds.PixelData = stored[t, k].tobytes()
            if kind == "pet":
                ds.RescaleSlope = f"{slopes[k]:.6g}"
                ds.DecayFactor = f"{1.0 + 0.001 * k:.6g}"
                ds.ImageIndex = k + 1
            if kind == "fmri":
                ds.TemporalPositionIdentifier = t + 1
                ds.NumberOfTemporalPositions = volumes
                ds.AcquisitionTime = _tm(36000.0 + t * 2.0 + slot[k] * 2.0 / slices)
            if kind == "dwi":
                assert bvals is not None
                ds.DiffusionBValue = bvals[t]
                ds.DiffusionDirectionality = "DIRECTIONAL" if bvals[t] > 0 else "NONE"
                if bvals[t] > 0:
                    ds.DiffusionGradientOrientation = list(bvecs[t])
            paths.append(write_dataset(ds, dest / f"{kind}_{t:03d}_{k:03d}.dcm"))
    return SeriesFiles(
        paths, stored, slope, intercept, bvals=list(bvals or []), bvecs=bvecs, canaries=planted,
        slice_slopes=[float(f"{v:.6g}") for v in slopes],
    )  # fmt: skip


def _pet(ds: Dataset) -> None:
    """Turn a CT instance into a static FDG PET image (PET Image and Series modules)."""
    ds.SOPClassUID = PET_IMAGE
    ds.file_meta.MediaStorageSOPClassUID = PET_IMAGE
    ds.Modality = "PT"
    for keyword in ("KVP", "RescaleType", "ConvolutionKernel", "XRayTubeCurrent",
                    "ExposureTime", "Exposure", "GantryDetectorTilt"):  # fmt: skip
        if keyword in ds:
            delattr(ds, keyword)
    ds.ImageType = ["ORIGINAL", "PRIMARY"]
    ds.SeriesType = ["STATIC", "IMAGE"]
    ds.Units = "BQML"
    ds.CountsSource = "EMISSION"
    ds.DecayCorrection = "START"
    ds.CorrectedImage = ["DECY", "ATTN", "SCAT", "NORM"]
    ds.AttenuationCorrectionMethod = "CTAC"
    ds.ReconstructionMethod = "OSEM 3i21s"
    ds.RandomsCorrectionMethod = "DLYD"
    ds.FrameReferenceTime = "0"
    ds.ActualFrameDuration = 180000
    ds.NumberOfSlices = 1
    ds.PatientWeight = "72.5"
    ds.PatientSize = "1.7"
    ds.AcquisitionTime = "100000"
    nuclide = Dataset()
    nuclide.CodeValue = "C-111A1"
    nuclide.CodingSchemeDesignator = "SRT"
    nuclide.CodeMeaning = "^18^Fluorine"
    drug = Dataset()
    drug.Radiopharmaceutical = "Fluorodeoxyglucose"
    drug.RadiopharmaceuticalStartTime = "090000"
    drug.RadiopharmaceuticalStartDateTime = f"{ds.StudyDate}090000"
    drug.RadionuclideTotalDose = "370000000"
    drug.RadionuclideHalfLife = "6586.2"
    drug.RadionuclidePositronFraction = "0.9673"
    drug.RadionuclideCodeSequence = Sequence([nuclide])
    ds.RadiopharmaceuticalInformationSequence = Sequence([drug])


def _describe(kind: str) -> str:
    return {
        "ct": "CT CHEST",
        "mr": "T1 MPRAGE SAG",
        "enhanced": "T2 TSE AX",
        "fmri": "BOLD REST",
        "dwi": "DTI DIFFUSION",
        "pet": "PET WB FDG AC",
    }[kind]


def _tm(seconds: float) -> str:
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{int(h):02d}{int(m):02d}{s:09.6f}"


def _directions(volumes: int) -> list[tuple[float, float, float]]:
    """Distinct unit gradient directions (the b=0 volume gets one too, unused)."""
    out = []
    for t in range(volumes):
        v = np.array([np.cos(1.1 * t), np.sin(1.1 * t), 0.3 + 0.1 * t])
        v /= np.linalg.norm(v)
        out.append((float(v[0]), float(v[1]), float(v[2])))
    return out


def _write_enhanced(
    dest: Path, base: Dataset, stored: NDArray[Any], positions: list[NDArray[Any]], seed: int
) -> Path:
    """One Enhanced MR file: geometry in the functional group sequences."""
    ds = copy.deepcopy(base)
    ds.SOPClassUID = ENHANCED_MR
    ds.file_meta.MediaStorageSOPClassUID = ENHANCED_MR
    uid = make_uid(seed, "volume.enhanced", "sop")
    ds.SOPInstanceUID = uid
    ds.file_meta.MediaStorageSOPInstanceUID = uid
    ds.ImageType = ["ORIGINAL", "PRIMARY", "M", "NONE"]
    ds.InstanceNumber = 1
    ds.NumberOfFrames = len(positions)
    for kw in ("ImagePositionPatient", "ImageOrientationPatient", "PixelSpacing",
               "SliceThickness", "SpacingBetweenSlices", "RescaleSlope", "RescaleIntercept",
               "RepetitionTime", "EchoTime", "FlipAngle"):  # fmt: skip
        if kw in ds:
            delattr(ds, kw)
    measures = Dataset()
    measures.PixelSpacing = base.PixelSpacing
    measures.SliceThickness = base.SliceThickness
    measures.SpacingBetweenSlices = base.SpacingBetweenSlices
    plane = Dataset()
    plane.ImageOrientationPatient = base.ImageOrientationPatient
    rescale = Dataset()
    rescale.RescaleSlope = base.RescaleSlope
    rescale.RescaleIntercept = base.RescaleIntercept
    rescale.RescaleType = "US"
    timing = Dataset()
    timing.RepetitionTime = 4000.0
    timing.FlipAngle = 90.0
    echo = Dataset()
    echo.EffectiveEchoTime = 98.0
    shared = Dataset()
    shared.PixelMeasuresSequence = Sequence([measures])
    shared.PlaneOrientationSequence = Sequence([plane])
    shared.PixelValueTransformationSequence = Sequence([rescale])
    shared.MRTimingAndRelatedParametersSequence = Sequence([timing])
    shared.MREchoSequence = Sequence([echo])
    ds.SharedFunctionalGroupsSequence = Sequence([shared])
    dim_uid = make_uid(seed, "volume.enhanced", "dimension")
    dims = []
    for pointer, group in ((0x00209056, 0x00209111), (0x00209057, 0x00209111)):
        item = Dataset()
        item.DimensionOrganizationUID = dim_uid
        item.DimensionIndexPointer = pointer
        item.FunctionalGroupPointer = group
        dims.append(item)
    org = Dataset()
    org.DimensionOrganizationUID = dim_uid
    ds.DimensionOrganizationSequence = Sequence([org])
    ds.DimensionIndexSequence = Sequence(dims)
    frames = []
    for n in range(len(positions)):
        k = len(positions) - 1 - n  # frames stored from the last slice to the first
        pos = Dataset()
        pos.ImagePositionPatient = [f"{v:.6f}" for v in positions[k]]
        content = Dataset()
        content.StackID = "1"
        content.InStackPositionNumber = k + 1
        content.DimensionIndexValues = [1, k + 1]
        item = Dataset()
        item.PlanePositionSequence = Sequence([pos])
        item.FrameContentSequence = Sequence([content])
        frames.append(item)
    ds.PerFrameFunctionalGroupsSequence = Sequence(frames)
    ds.PixelData = np.ascontiguousarray(stored[::-1]).tobytes()
    return write_dataset(ds, dest / "enhanced.dcm")
