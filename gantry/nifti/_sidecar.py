"""BIDS JSON sidecars built from a de-identified header only.

Only technical acquisition keys are copied, from a fixed list (no free text,
no dates, no identifiers): whatever the plan left in the de-identified file is
the sole source, so a value the plan removed can never appear here.

PET series get the keys SUV and decay arithmetic need (:func:`pet_keys`) -
units, decay correction, tracer, injected dose, half-life, frame duration, and
the body weight and injection time *only when the plan kept them* (the Basic
Profile removes both; ``retain-patient-characteristics`` keeps the weight).
Times become seconds relative to the acquisition, never clock times or dates.
"""

from __future__ import annotations

from typing import Any

from pydicom.dataset import Dataset

from gantry.nifti._volume import _seconds

# BIDS key -> (DICOM keyword, scale); milliseconds become seconds
_NUMERIC: dict[str, tuple[str, float]] = {
    "MagneticFieldStrength": ("MagneticFieldStrength", 1.0),
    "ImagingFrequency": ("ImagingFrequency", 1.0),
    "RepetitionTime": ("RepetitionTime", 0.001),
    "EchoTime": ("EchoTime", 0.001),
    "InversionTime": ("InversionTime", 0.001),
    "FlipAngle": ("FlipAngle", 1.0),
    "EchoTrainLength": ("EchoTrainLength", 1.0),
    "SliceThickness": ("SliceThickness", 1.0),
    "SpacingBetweenSlices": ("SpacingBetweenSlices", 1.0),
    "PixelBandwidth": ("PixelBandwidth", 1.0),
    "SAR": ("SAR", 1.0),
    "KVP": ("KVP", 1.0),
    "XRayTubeCurrent": ("XRayTubeCurrent", 1.0),
    "ExposureTime": ("ExposureTime", 0.001),
    "GantryDetectorTilt": ("GantryDetectorTilt", 1.0),
}
_TEXT: dict[str, str] = {
    "Modality": "Modality",
    "Manufacturer": "Manufacturer",
    "ManufacturersModelName": "ManufacturerModelName",
    "MRAcquisitionType": "MRAcquisitionType",
    "ScanningSequence": "ScanningSequence",
    "SequenceVariant": "SequenceVariant",
    "ScanOptions": "ScanOptions",
    "ConvolutionKernel": "ConvolutionKernel",
    "ReceiveCoilName": "ReceiveCoilName",
}
# where enhanced objects keep the same values (functional group sequences)
_ENHANCED: dict[str, tuple[str, str]] = {
    "RepetitionTime": ("MRTimingAndRelatedParametersSequence", "RepetitionTime"),
    "FlipAngle": ("MRTimingAndRelatedParametersSequence", "FlipAngle"),
    "EchoTrainLength": ("MRTimingAndRelatedParametersSequence", "EchoTrainLength"),
    "EchoTime": ("MREchoSequence", "EffectiveEchoTime"),
    "InversionTime": ("MRModifierSequence", "InversionTimes"),
    "SliceThickness": ("PixelMeasuresSequence", "SliceThickness"),
    "SpacingBetweenSlices": ("PixelMeasuresSequence", "SpacingBetweenSlices"),
}


def _number(value: Any) -> float | None:
    if isinstance(value, list | tuple) or type(value).__name__ == "MultiValue":
        value = value[0] if len(value) else None
    try:
        return float(value) if value not in (None, "") else None
    except (TypeError, ValueError):
        return None


def _enhanced_value(ds: Dataset, seq: str, keyword: str) -> Any:
    for groups in ("SharedFunctionalGroupsSequence", "PerFrameFunctionalGroupsSequence"):
        outer = ds.get(groups)
        if not outer:
            continue
        inner = outer[0].get(seq)
        if inner and keyword in inner[0]:
            return inner[0].get(keyword)
    return None


def _clean_text(value: Any) -> str | list[str] | None:
    if value is None or value == "":
        return None
    if isinstance(value, list | tuple) or type(value).__name__ == "MultiValue":
        items = [str(v) for v in value]
        return items if len(items) > 1 else (items[0] if items else None)
    return str(value)


def sidecar(ds: Dataset, *, slice_timing: list[float] | None, notes: list[str]) -> dict[str, Any]:
    """The sidecar for a series whose de-identified header is ``ds``.

    Examples
    --------
    >>> from pydicom.dataset import Dataset
    >>> ds = Dataset(); ds.Modality = "MR"; ds.RepetitionTime = "2000"; ds.PatientName = "X"
    >>> sidecar(ds, slice_timing=None, notes=[])
    {'Modality': 'MR', 'RepetitionTime': 2.0, 'ConversionSoftware': 'gantry'}
    """
    out: dict[str, Any] = {}
    for key, keyword in _TEXT.items():
        got = _clean_text(ds.get(keyword))
        if got is not None:
            out[key] = got
    for key, (keyword, scale) in _NUMERIC.items():
        value = _number(ds.get(keyword))
        if value is None and key in _ENHANCED:
            value = _number(_enhanced_value(ds, *_ENHANCED[key]))
        if value is not None:
            out[key] = round(value * scale, 6)
    image_type = ds.get("ImageType")
    if image_type:
        out["ImageType"] = [str(v) for v in image_type]
    direction = str(ds.get("InPlanePhaseEncodingDirection", "") or "").upper()
    if direction in ("ROW", "COL"):
        # the sign (i vs i-) needs vendor private data, so only the axis is known
        out["PhaseEncodingAxis"] = "i" if direction == "ROW" else "j"
    if str(ds.get("Modality", "")).upper() == "PT":
        out.update(pet_keys(ds))
    if slice_timing:
        out["SliceTiming"] = slice_timing
    if notes:
        out["ConversionNotes"] = list(notes)
    out["ConversionSoftware"] = "gantry"
    return out


_PET_UNITS = {"BQML": "Bq/mL", "CNTS": "counts", "GML": "g/mL", "PROPCNTS": "counts"}


def pet_keys(ds: Dataset) -> dict[str, Any]:
    """Units, decay, tracer and dose keys of a PET series, from its de-identified header.

    Examples
    --------
    >>> from pydicom.dataset import Dataset
    >>> from pydicom.sequence import Sequence
    >>> ds = Dataset(); ds.Modality = "PT"; ds.Units = "BQML"; ds.DecayCorrection = "START"
    >>> ds.CorrectedImage = ["DECY", "ATTN"]; ds.AcquisitionTime = "100000"
    >>> drug = Dataset(); drug.RadionuclideTotalDose = "370000000"
    >>> drug.RadiopharmaceuticalStartTime = "090000"
    >>> ds.RadiopharmaceuticalInformationSequence = Sequence([drug])
    >>> keys = pet_keys(ds)
    >>> keys["Units"], keys["ImageDecayCorrected"], keys["InjectedRadioactivity"]
    ('Bq/mL', True, 370.0)
    >>> keys["InjectionStart"]  # seconds from the acquisition start, no clock time
    -3600.0
    """
    out: dict[str, Any] = {}
    units = str(ds.get("Units", "") or "").upper()
    if units:
        out["Units"] = _PET_UNITS.get(units, units)
    decay = str(ds.get("DecayCorrection", "") or "").upper()
    if decay:
        out["DecayCorrection"] = decay
    corrected = [str(v).upper() for v in (_as_list(ds.get("CorrectedImage")))]
    if corrected:
        out["ImageDecayCorrected"] = "DECY" in corrected
        out["AttenuationCorrected"] = "ATTN" in corrected
        if "DECY" in corrected and decay == "START":
            out["ImageDecayCorrectionTime"] = 0.0  # seconds after the scan start
    _copy(
        out, ds, _number, DecayFactor="DecayFactor", DoseCalibrationFactor="DoseCalibrationFactor"
    )
    _copy(out, ds, _clean_text, AttenuationCorrection="AttenuationCorrectionMethod",
          ReconMethodName="ReconstructionMethod")  # fmt: skip
    duration = _number(ds.get("ActualFrameDuration"))
    if duration is not None:
        out["FrameDuration"] = [round(duration / 1000.0, 6)]
    weight = _number(ds.get("PatientWeight"))
    if weight:
        out["BodyWeight"] = weight
        out["BodyWeightUnits"] = "kg"
    drugs = ds.get("RadiopharmaceuticalInformationSequence") or []
    if drugs:
        drug = drugs[0]
        name = _clean_text(drug.get("Radiopharmaceutical"))
        if name is not None:
            out["TracerName"] = name
        codes = drug.get("RadionuclideCodeSequence") or []
        if codes and codes[0].get("CodeMeaning"):
            out["TracerRadionuclide"] = str(codes[0].CodeMeaning)
        dose = _number(drug.get("RadionuclideTotalDose"))
        if dose is not None:
            out["InjectedRadioactivity"] = round(dose / 1e6, 6)
            out["InjectedRadioactivityUnits"] = "MBq"
        _copy(out, drug, _number, RadionuclideHalfLife="RadionuclideHalfLife",
              RadionuclidePositronFraction="RadionuclidePositronFraction")  # fmt: skip
        injected = _seconds(drug.get("RadiopharmaceuticalStartTime"))
        started = _seconds(ds.get("AcquisitionTime")) or _seconds(ds.get("SeriesTime"))
        if injected is not None and started is not None:
            out["InjectionStart"] = round(injected - started, 3)  # relative: no clock time
    return out


def _copy(out: dict[str, Any], ds: Dataset, convert: Any, **keys: str) -> None:
    """``out[key] = convert(ds.<keyword>)`` for each ``key=keyword`` that converts to a value."""
    for key, keyword in keys.items():
        value = convert(ds.get(keyword))
        if value is not None:
            out[key] = value


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    return list(value)
