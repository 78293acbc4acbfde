"""Build one realistic synthetic DICOM instance: :func:`make_instance`."""

from __future__ import annotations

import dataclasses
import random
from pathlib import Path
from typing import Any

from pydicom.datadict import dictionary_VR, tag_for_keyword
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import (
    UID,
    ExplicitVRLittleEndian,
)

from gantry.errors import ConfigError
from gantry.testing._canaries import CanaryBook
from gantry.testing._pixels import (
    ENCAPSULATED_SYNTAXES,
    check_syntax,
    encapsulated_bytes,
    make_pixels,
    native_bytes,
)
from gantry.testing._specs import (
    DEVICES,
    DatePool,
    InstanceSpec,
    PatientSpec,
    SeriesSpec,
    StudySpec,
    make_uid,
    new_patient,
    new_series,
    new_study,
)

MODALITIES: tuple[str, ...] = ("CT", "MR", "US", "CR", "DX", "SC")
PRIVATE_CREATOR = "GANTRY_TEST 1.0"
PRIVATE_GROUP = 0x0009
IMPLEMENTATION_CLASS_UID = "2.25.148006597343429457283926452466340632207"
IMPLEMENTATION_VERSION_NAME = "GANTRY_TEST_1"

CT_IMAGE = UID("1.2.840.10008.5.1.4.1.1.2")
MR_IMAGE = UID("1.2.840.10008.5.1.4.1.1.4")
US_IMAGE = UID("1.2.840.10008.5.1.4.1.1.6.1")
US_MULTIFRAME = UID("1.2.840.10008.5.1.4.1.1.3.1")
CR_IMAGE = UID("1.2.840.10008.5.1.4.1.1.1")
DX_PRESENTATION = UID("1.2.840.10008.5.1.4.1.1.1.1")
SC_IMAGE = UID("1.2.840.10008.5.1.4.1.1.7")
SC_MF_BYTE = UID("1.2.840.10008.5.1.4.1.1.7.2")
SC_MF_WORD = UID("1.2.840.10008.5.1.4.1.1.7.3")
SC_MF_COLOR = UID("1.2.840.10008.5.1.4.1.1.7.4")
STUDY_MANAGEMENT = UID("1.2.840.10008.3.1.2.3.1")  # Detached Study Management (retired)


def sop_class_for(modality: str, frames: int, photometric: str, bits: int) -> UID:
    """Return the SOP Class UID proper to ``modality`` (and frame count, colour, depth).

    Examples
    --------
    >>> sop_class_for("US", 4, "RGB", 8).name
    'Ultrasound Multi-frame Image Storage'
    >>> sop_class_for("SC", 1, "MONOCHROME2", 16).name
    'Secondary Capture Image Storage'
    """
    if modality in ("CT", "MR", "CR", "DX") and frames > 1:
        raise ConfigError(
            "frames", expected=f"1 for {modality} (single-frame SOP class)", got=frames,
            hint="use modality='US' or 'SC' for multi-frame instances",
        )  # fmt: skip
    if modality == "CT":
        return CT_IMAGE
    if modality == "MR":
        return MR_IMAGE
    if modality == "CR":
        return CR_IMAGE
    if modality == "DX":
        return DX_PRESENTATION
    if modality == "US":
        return US_MULTIFRAME if frames > 1 else US_IMAGE
    if modality == "SC":
        if frames == 1:
            return SC_IMAGE
        if photometric == "RGB":
            return SC_MF_COLOR
        return SC_MF_BYTE if bits == 8 else SC_MF_WORD
    raise ConfigError("modality", expected=f"one of {', '.join(MODALITIES)}", got=modality)


def _pixel_format(
    modality: str, photometric: str | None, bits: int | None
) -> tuple[str, int, int, bool]:
    """Return ``(photometric, bits_allocated, bits_stored, signed)``."""
    if photometric is None:
        photometric = "RGB" if modality in ("US", "SC") else "MONOCHROME2"
    if photometric not in ("MONOCHROME2", "MONOCHROME1", "RGB"):
        raise ConfigError(
            "photometric", expected="'MONOCHROME2', 'MONOCHROME1', 'RGB' or None", got=photometric
        )
    if bits is None:
        bits = 8 if photometric == "RGB" else 16
    if bits not in (8, 16):
        raise ConfigError("bits", expected="8 or 16", got=bits)
    signed = modality == "CT" and bits == 16
    stored = 16 if signed or bits == 8 or photometric == "RGB" else 12
    if bits == 8:
        stored = 8
    return photometric, bits, stored, signed


def _item(**values: Any) -> Dataset:
    item = Dataset()
    for key, value in values.items():
        setattr(item, key, value)
    return item


def _person_id_sequence(code: str, meaning: str, institution: str) -> Sequence:
    """A Person Identification Macro item (2-deep: item ▸ code sequence ▸ item)."""
    code_item = _item(CodeValue=code, CodingSchemeDesignator="99GANTRY", CodeMeaning=meaning)
    return Sequence(
        [
            _item(
                PersonIdentificationCodeSequence=Sequence([code_item]),
                InstitutionName=institution,
            )
        ]
    )


def build_dataset(
    patient: PatientSpec,
    study: StudySpec,
    series: SeriesSpec,
    instance: InstanceSpec,
    *,
    rows: int,
    columns: int,
    photometric: str | None = None,
    bits: int | None = None,
    seed: int = 0,
    pixel_bytes: bytes | None = None,
) -> Dataset:
    """Assemble the full dataset (file meta and pixels included) for one instance.

    ``seed`` seeds the pixel pattern only; identities come from the specs.
    ``pixel_bytes``, when given, is used as the (native) pixel data as is.
    """
    ts = check_syntax(instance.transfer_syntax)
    modality = series.modality
    frames = instance.frames
    if rows < 1 or columns < 1 or frames < 1:
        raise ConfigError("rows/columns/frames", expected="positive", got=(rows, columns, frames))
    photometric, bits_alloc, bits_stored, signed = _pixel_format(modality, photometric, bits)
    sop_class = UID(instance.sop_class_uid)
    manufacturer, model, software = DEVICES[modality]
    date, time = study.date, study.time
    series_time = (
        f"{(int(time[:2]) + series.number // 10) % 24:02d}{time[2:4]}{(series.number * 7) % 60:02d}"
    )
    content_time = f"{series_time[:4]}{(int(series_time[4:]) + instance.number) % 60:02d}"

    ds = Dataset()
    ds.preamble = b"\0" * 128
    meta = FileMetaDataset()
    meta.FileMetaInformationVersion = b"\x00\x01"
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = UID(instance.sop_instance_uid)
    meta.TransferSyntaxUID = ts
    meta.ImplementationClassUID = UID(IMPLEMENTATION_CLASS_UID)
    meta.ImplementationVersionName = IMPLEMENTATION_VERSION_NAME
    ds.file_meta = meta

    # SOP common / general study / patient / series / equipment
    ds.SpecificCharacterSet = "ISO_IR 100"
    if modality == "CT":
        ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
    elif modality == "MR":
        ds.ImageType = ["ORIGINAL", "PRIMARY", "M", "ND"]
    elif modality == "SC":
        ds.ImageType = ["DERIVED", "SECONDARY"]
    else:
        ds.ImageType = ["ORIGINAL", "PRIMARY"]
    ds.InstanceCreationDate = date
    ds.InstanceCreationTime = content_time
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = instance.sop_instance_uid
    ds.StudyDate = date
    ds.SeriesDate = date
    ds.AcquisitionDate = date
    ds.ContentDate = date
    ds.StudyTime = time
    ds.SeriesTime = series_time
    ds.AcquisitionTime = series_time
    ds.ContentTime = content_time
    ds.AcquisitionDateTime = f"{date}{series_time}.000000"
    ds.AccessionNumber = study.accession_number
    ds.IssuerOfAccessionNumberSequence = Sequence(
        [_item(LocalNamespaceEntityID=study.accession_issuer)]
    )
    ds.Modality = "OT" if modality == "SC" else modality
    if modality == "SC":
        ds.ConversionType = "WSD"
    ds.Manufacturer = manufacturer
    ds.InstitutionName = study.institution_name
    ds.InstitutionAddress = study.institution_address
    ds.ReferringPhysicianName = study.referring_physician
    ds.ReferringPhysicianIdentificationSequence = _person_id_sequence(
        study.referring_physician_code, study.referring_physician, study.institution_name
    )
    ds.StationName = series.station_name
    ds.StudyDescription = study.description
    ds.SeriesDescription = series.description
    ds.InstitutionalDepartmentName = study.department
    ds.PerformingPhysicianName = series.performing_physician
    ds.OperatorsName = series.operator
    ds.ManufacturerModelName = model
    ds.ReferencedStudySequence = Sequence(
        [
            _item(
                ReferencedSOPClassUID=STUDY_MANAGEMENT,
                ReferencedSOPInstanceUID=study.study_instance_uid,
            )
        ]
    )
    refs = [
        _item(ReferencedSOPClassUID=cls, ReferencedSOPInstanceUID=uid)
        for cls, uid in instance.references
    ]
    if refs:
        ds.ReferencedImageSequence = Sequence(refs)
    if refs and (modality == "SC" or "DERIVED" in ds.ImageType):
        ds.DerivationDescription = "Key images captured at the workstation"
        ds.SourceImageSequence = Sequence(
            [_item(ReferencedSOPClassUID=r.ReferencedSOPClassUID,
                   ReferencedSOPInstanceUID=r.ReferencedSOPInstanceUID) for r in refs]
        )  # fmt: skip
    ds.PatientName = patient.name
    ds.PatientID = patient.patient_id
    ds.IssuerOfPatientID = patient.issuer_of_patient_id
    ds.PatientBirthDate = patient.birth_date
    ds.PatientSex = patient.sex
    # the retired OtherPatientIDs keeps the first, the sequence the others
    ds.OtherPatientIDs = patient.other_patient_ids[0]
    ds.OtherPatientIDsSequence = Sequence(
        [
            _item(PatientID=oid, IssuerOfPatientID=patient.issuer_of_patient_id,
                  TypeOfPatientID="TEXT")
            for oid in patient.other_patient_ids[1:]
        ]
    )  # fmt: skip
    ds.PatientAge = patient.age_at(date)
    ds.PatientSize = "1.72"
    ds.PatientWeight = "71.5"
    ds.PatientAddress = patient.address
    ds.PatientTelephoneNumbers = patient.telephone
    ds.AdditionalPatientHistory = patient.history

    # acquisition details per modality
    ds.BodyPartExamined = {"US": "ABDOMEN", "CR": "CHEST", "DX": "CHEST", "MR": "HEAD"}.get(
        modality, "CHEST"
    )
    if modality in ("CT", "MR"):
        ds.SliceThickness = "5.0" if modality == "CT" else "4.0"
    if modality in ("CT", "CR", "DX"):
        ds.KVP = "120" if modality == "CT" else "110"
    if modality == "MR":
        ds.ScanningSequence = "SE"
        ds.SequenceVariant = "SK"
        ds.ScanOptions = "PFP"
        ds.MRAcquisitionType = "2D"
        ds.RepetitionTime = "4000.0"
        ds.EchoTime = "98.0"
        ds.MagneticFieldStrength = "3.0"
        ds.ImagingFrequency = "123.25"
        ds.EchoTrainLength = "16"
    ds.DeviceSerialNumber = series.device_serial_number
    ds.SoftwareVersions = software
    ds.ProtocolName = f"{series.description} PROTOCOL"
    ds.DateOfLastCalibration = date
    if modality == "CT":
        ds.ReconstructionDiameter = "350.0"
        ds.GantryDetectorTilt = "0.0"
        ds.TableHeight = "150.0"
        ds.RotationDirection = "CW"
        ds.ExposureTime = "500"
        ds.XRayTubeCurrent = "200"
        ds.Exposure = "100"
        ds.ConvolutionKernel = "STANDARD"
    if modality in ("CR", "DX"):
        ds.ViewPosition = "PA"
        ds.ImagerPixelSpacing = ["0.139", "0.139"]
        ds.ExposureTime = "20"
        ds.XRayTubeCurrent = "250"
    if modality == "DX":
        ds.ImageLaterality = "U"
        ds.AcquisitionContextSequence = Sequence()
        ds.AnatomicRegionSequence = Sequence(
            [_item(CodeValue="51185008", CodingSchemeDesignator="SCT", CodeMeaning="Chest")]
        )
        ds.PositionerType = "NONE"
        ds.PresentationIntentType = "FOR PRESENTATION"
        ds.DetectorType = "DIRECT"
        ds.PixelIntensityRelationship = "LOG"
        ds.PixelIntensityRelationshipSign = 1
    if modality in ("CT", "MR"):
        ds.PatientPosition = "HFS"
    ds.StudyInstanceUID = study.study_instance_uid
    ds.SeriesInstanceUID = series.series_instance_uid
    ds.StudyID = study.study_id
    ds.SeriesNumber = series.number
    ds.AcquisitionNumber = 1
    ds.InstanceNumber = instance.number
    if modality in ("CT", "MR"):
        thickness = float(ds.SliceThickness)
        z = -100.0 + thickness * (instance.number - 1)
        ds.ImagePositionPatient = [-175.0, -175.0, z]
        ds.ImageOrientationPatient = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]
        ds.FrameOfReferenceUID = series.frame_of_reference_uid
        ds.PositionReferenceIndicator = ""
        ds.SliceLocation = z
    if modality in ("CR", "DX"):
        ds.PatientOrientation = ["P", "F"]
    elif modality in ("US", "SC"):
        ds.PatientOrientation = ""
    ds.ImageComments = series.comment
    ds.RequestAttributesSequence = Sequence(
        [
            _item(
                RequestedProcedureID=study.requested_procedure_id,
                ScheduledProcedureStepID=study.scheduled_procedure_step_id,
                RequestedProcedureDescription=study.requested_procedure_description,
                AccessionNumber=study.accession_number,
                StudyInstanceUID=study.study_instance_uid,
                ReferencedStudySequence=Sequence(
                    [_item(ReferencedSOPClassUID=STUDY_MANAGEMENT,
                           ReferencedSOPInstanceUID=study.study_instance_uid)]
                ),
            )
        ]
    )  # fmt: skip
    if modality == "SC":
        ds.DateOfSecondaryCapture = date
        ds.TimeOfSecondaryCapture = content_time
        ds.SecondaryCaptureDeviceManufacturer = manufacturer
        ds.SecondaryCaptureDeviceManufacturerModelName = model

    # image pixel module
    samples = 3 if photometric == "RGB" else 1
    ds.SamplesPerPixel = samples
    ds.PhotometricInterpretation = photometric
    if samples == 3:
        ds.PlanarConfiguration = 0
    if frames > 1:
        ds.NumberOfFrames = frames
        ds.FrameTime = "33.3"
        ds.FrameIncrementPointer = 0x00181063  # FrameTime
        if modality == "US":
            ds.CineRate = 30
    ds.Rows = rows
    ds.Columns = columns
    if modality != "US":  # US carries its spacing in SequenceOfUltrasoundRegions
        ds.PixelSpacing = (
            ["0.683594", "0.683594"] if modality in ("CT", "MR") else ["0.139", "0.139"]
        )
    ds.BitsAllocated = bits_alloc
    ds.BitsStored = bits_stored
    ds.HighBit = bits_stored - 1
    ds.PixelRepresentation = int(signed)
    if modality in ("US", "SC"):
        ds.BurnedInAnnotation = "YES"
    elif modality in ("CT", "MR", "CR", "DX"):
        ds.BurnedInAnnotation = "NO"
    if samples == 1:
        if modality == "CT":
            ds.WindowCenter = "40"
            ds.WindowWidth = "400"
            ds.RescaleIntercept = "0"
            ds.RescaleSlope = "1"
            ds.RescaleType = "HU"
        else:
            if modality == "DX" or (modality == "SC" and frames > 1):
                ds.RescaleIntercept = "0"
                ds.RescaleSlope = "1"
                ds.RescaleType = "US"
                ds.PresentationLUTShape = "IDENTITY"
            top = (1 << bits_stored) - 1
            ds.WindowCenter = str(top // 2)
            ds.WindowWidth = str(top)
    if modality == "US":
        ds.SequenceOfUltrasoundRegions = Sequence(
            [
                _item(
                    RegionSpatialFormat=1, RegionDataType=1, RegionFlags=0,
                    RegionLocationMinX0=0, RegionLocationMinY0=rows // 10,
                    RegionLocationMaxX1=columns - 1, RegionLocationMaxY1=rows - 1,
                    PhysicalUnitsXDirection=3, PhysicalUnitsYDirection=3,
                    PhysicalDeltaX=0.02, PhysicalDeltaY=0.02,
                )
            ]
        )  # fmt: skip
    ds.LossyImageCompression = "00"

    # private block: a vendor's habit of copying PHI into private tags
    block = ds.private_block(PRIVATE_GROUP, PRIVATE_CREATOR, create=True)
    block.add_new(0x01, "LO", patient.name.replace("^", " "))
    block.add_new(0x02, "DS", "2.5")
    block.add_new(0x03, "UN", _even(f"ACQ-NOTE:{series.private_note}".encode("ascii")))
    block.add_new(0x04, "LO", series.private_note)
    block.add_new(0x05, "US", 42)
    block.add_new(0x06, "SH", "GT-PROTO-7")

    # pixel data
    if pixel_bytes is not None:
        ds.PixelData = pixel_bytes
        ds["PixelData"].VR = "OW" if bits_alloc > 8 else "OB"
        return ds
    arr = make_pixels(
        rows=rows, columns=columns, frames=frames, samples=samples, bits_allocated=bits_alloc,
        bits_stored=bits_stored, signed=signed, seed=seed,
        annotation=modality in ("US", "SC"),
    )  # fmt: skip
    if ts in ENCAPSULATED_SYNTAXES:
        # colour is encoded without a colour transform, so photometric stays RGB
        ds.PixelData = encapsulated_bytes(
            arr, ts, frames=frames, bits_stored=bits_stored, photometric=photometric
        )
        ds["PixelData"].VR = "OB"
        ds["PixelData"].is_undefined_length = True
    else:
        ds.PixelData = native_bytes(arr, ts)
        ds["PixelData"].VR = "OW" if bits_alloc > 8 else "OB"
    return ds


def _even(data: bytes) -> bytes:
    return data + b"\0" if len(data) % 2 else data


def apply_overrides(ds: Dataset, overrides: dict[str, Any]) -> None:
    """Set (or, for ``None``, delete) each keyword of ``overrides`` on ``ds``."""
    for keyword, value in overrides.items():
        tag = tag_for_keyword(keyword)
        if tag is None:
            raise ConfigError(
                f"overrides.{keyword}", expected="a DICOM keyword", got=keyword,
            )  # fmt: skip
        target = ds.file_meta if tag >> 16 == 0x0002 else ds
        if value is None:
            if keyword in target:
                del target[keyword]
        elif dictionary_VR(tag) == "SQ" and isinstance(value, list):
            setattr(target, keyword, Sequence(value))
        else:
            setattr(target, keyword, value)


def write_dataset(ds: Dataset, path: str | Path) -> Path:
    """Write ``ds`` as a DICOM file (preamble + file meta), creating parent folders."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)
    return path


def make_instance(
    path: str | Path | None = None,
    *,
    modality: str = "CT",
    rows: int = 64,
    columns: int = 64,
    frames: int = 1,
    transfer_syntax: str = ExplicitVRLittleEndian,
    photometric: str | None = None,
    bits: int | None = None,
    seed: int = 0,
    **overrides: Any,
) -> Dataset:
    """Return (and optionally write) one realistic synthetic DICOM instance.

    The instance has the modality's proper SOP class, a full set of
    identifying attributes (names, IDs, address, phone, accession,
    institution, physicians, station, device serial number, free text naming
    the patient, dates), geometry, nested sequences (two deep), a private
    block that copies the patient's name (creator ``"GANTRY_TEST 1.0"`` in
    group 0x0009) and a deterministic pixel pattern.

    Parameters
    ----------
    path : str or Path, optional
        When given, the instance is written there (preamble + file meta).
    modality : {"CT", "MR", "US", "CR", "DX", "SC"}
        ``"SC"`` gives Secondary Capture (``Modality`` is ``"OT"``).
    rows, columns, frames : int
        Image size; ``frames > 1`` is for ``"US"`` and ``"SC"`` (multi-frame SOP classes).
    transfer_syntax : str
        Explicit/implicit VR little endian, explicit big endian, deflated, RLE
        Lossless, JPEG 2000 Lossless, JPEG-LS Lossless or HTJ2K Lossless.
    photometric : {"MONOCHROME2", "MONOCHROME1", "RGB"}, optional
        Default ``"RGB"`` for US and SC, ``"MONOCHROME2"`` otherwise.
    bits : {8, 16}, optional
        Bits allocated; default 8 for RGB, 16 otherwise.  16-bit CT is signed
        (``PixelRepresentation`` 1), other 16-bit monochrome stores 12 bits.
    seed : int
        Every UID, identity value, date and pixel derives from it.
    **overrides
        Any DICOM keyword to set on the result; ``None`` deletes the element.
        ``PatientName`` and ``PatientID`` also flow into the free text and the
        private block that copy them.

    Returns
    -------
    pydicom.Dataset
        With ``file_meta`` and ``preamble`` set, ready for ``save_as``.

    Examples
    --------
    >>> ds = make_instance(modality="MR", PatientName="DOE^JANE")
    >>> ds.SOPClassUID.name, str(ds.PatientName), ds.pixel_array.shape
    ('MR Image Storage', 'DOE^JANE', (64, 64))
    >>> us = make_instance(modality="US", frames=3, transfer_syntax="1.2.840.10008.1.2.5")
    >>> us.pixel_array.shape, int(us.NumberOfFrames)
    ((3, 64, 64, 3), 3)
    """
    modality = modality.upper()
    rnd = random.Random(f"gantry-instance:{seed}")
    book = CanaryBook(seed, enabled=False)
    dates = DatePool()
    patient = new_patient(rnd, book, dates, 0)
    if overrides.get("PatientName") is not None:
        patient = dataclasses.replace(patient, name=str(overrides["PatientName"]))
    if overrides.get("PatientID") is not None:
        patient = dataclasses.replace(patient, patient_id=str(overrides["PatientID"]))
    study = new_study(rnd, book, dates, seed, patient, 0, 0)
    series = new_series(
        rnd, book, seed, patient, modality if modality in MODALITIES else "CT", "p0.s0.se0", 1
    )
    series.modality = modality
    photometric_, bits_alloc, _, _ = _pixel_format(modality, photometric, bits)
    instance = InstanceSpec(
        sop_instance_uid=make_uid(seed, "p0.s0.se0.i1", "sop"),
        sop_class_uid=sop_class_for(modality, frames, photometric_, bits_alloc),
        number=1,
        transfer_syntax=check_syntax(transfer_syntax),
        frames=frames,
        references=((CT_IMAGE, make_uid(seed, "p0.s0.prior", "sop")),),
    )
    ds = build_dataset(
        patient, study, series, instance, rows=rows, columns=columns,
        photometric=photometric_, bits=bits_alloc, seed=seed,
    )  # fmt: skip
    apply_overrides(ds, overrides)
    if path is not None:
        write_dataset(ds, path)
    return ds
