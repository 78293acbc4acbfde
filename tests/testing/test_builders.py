"""gantry.testing: the synthetic DICOM builders everything else is tested with."""

from __future__ import annotations

import filecmp
import re
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.encaps import parse_basic_offsets
from pydicom.errors import InvalidDicomError
from pydicom.uid import (
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    HTJ2KLossless,
    ImplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGLSLossless,
    RLELossless,
)

import gantry.testing
from gantry.errors import ConfigError
from gantry.testing import (
    Corpus,
    decode_pixels,
    find_canaries,
    make_clutter,
    make_corpus,
    make_ct_files,
    make_instance,
)

ALL_SYNTAXES = [
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    ExplicitVRBigEndian,
    DeflatedExplicitVRLittleEndian,
    RLELossless,
    JPEG2000Lossless,
    JPEGLSLossless,
    HTJ2KLossless,
]
PYDICOM_DECODES = {
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    ExplicitVRBigEndian,
    DeflatedExplicitVRLittleEndian,
    RLELossless,
}
IDENTIFYING = [
    "PatientName", "PatientID", "PatientBirthDate", "PatientSex", "PatientAge",
    "PatientAddress", "PatientTelephoneNumbers", "OtherPatientIDs", "OtherPatientIDsSequence",
    "AccessionNumber", "ReferringPhysicianName", "PerformingPhysicianName", "OperatorsName",
    "InstitutionName", "InstitutionAddress", "StationName", "DeviceSerialNumber",
    "Manufacturer", "ManufacturerModelName", "StudyDescription", "SeriesDescription",
    "ImageComments", "StudyDate", "StudyTime", "SeriesDate", "AcquisitionDateTime",
    "ContentDate", "StudyID", "RequestAttributesSequence", "ReferencedStudySequence",
    "ReferencedImageSequence",
]  # fmt: skip
CANARY = re.compile(rb"CNRY[0-9A-F]{8}")


def test_exported_members() -> None:
    assert gantry.testing.__all__ == sorted(gantry.testing.__all__)
    assert set(gantry.testing.__all__) >= {
        "Corpus", "PatientSpec", "decode_pixels", "find_canaries", "make_clutter",
        "make_corpus", "make_ct_files", "make_instance",
    }  # fmt: skip


# -- make_instance -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("modality", "frames", "sop_class", "photometric", "dtype"),
    [
        ("CT", 1, "CT Image Storage", "MONOCHROME2", "int16"),
        ("MR", 1, "MR Image Storage", "MONOCHROME2", "uint16"),
        ("US", 1, "Ultrasound Image Storage", "RGB", "uint8"),
        ("US", 4, "Ultrasound Multi-frame Image Storage", "RGB", "uint8"),
        ("CR", 1, "Computed Radiography Image Storage", "MONOCHROME2", "uint16"),
        ("DX", 1, "Digital X-Ray Image Storage - For Presentation", "MONOCHROME2", "uint16"),
        ("SC", 1, "Secondary Capture Image Storage", "RGB", "uint8"),
        ("SC", 2, "Multi-frame True Color Secondary Capture Image Storage", "RGB", "uint8"),
    ],
)
def test_instance_is_a_proper_instance_of_its_modality(
    tmp_path: Path, modality: str, frames: int, sop_class: str, photometric: str, dtype: str
) -> None:
    path = tmp_path / "x.dcm"
    make_instance(path, modality=modality, frames=frames)
    raw = path.read_bytes()
    assert raw[:128] == b"\0" * 128 and raw[128:132] == b"DICM"
    ds = pydicom.dcmread(path)
    assert ds.SOPClassUID.name == sop_class
    assert ds.file_meta.MediaStorageSOPClassUID == ds.SOPClassUID
    assert ds.file_meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID
    assert ds.PhotometricInterpretation == photometric
    for keyword in IDENTIFYING:
        assert ds.get(keyword) not in (None, ""), keyword
    # free text and the private block carry the patient's name
    family = str(ds.PatientName).split("^")[0]
    assert family in ds.ImageComments
    block = ds.private_block(0x0009, "GANTRY_TEST 1.0")
    assert str(ds.PatientName).replace("^", " ") == block[0x01].value
    assert {block[i].VR for i in (0x01, 0x02, 0x03)} == {"LO", "DS", "UN"}
    # nested: depth 1 request ids, depth 2 referenced study and person code
    item = ds.RequestAttributesSequence[0]
    assert item.RequestedProcedureID and item.ScheduledProcedureStepID
    assert item.ReferencedStudySequence[0].ReferencedSOPInstanceUID == ds.StudyInstanceUID
    person = ds.ReferringPhysicianIdentificationSequence[0]
    assert person.PersonIdentificationCodeSequence[0].CodeValue
    assert ds.ReferencedImageSequence[0].ReferencedSOPInstanceUID
    if modality in ("US", "SC"):
        assert ds.BurnedInAnnotation == "YES"
    if modality in ("CT", "MR"):
        assert len(ds.ImagePositionPatient) == 3 and len(ds.PixelSpacing) == 2
    arr = ds.pixel_array
    assert arr.dtype == np.dtype(dtype)
    samples = (3,) if photometric == "RGB" else ()
    assert arr.shape == ((frames,) if frames > 1 else ()) + (64, 64) + samples
    assert int(ds.get("NumberOfFrames", 1)) == frames
    if photometric == "RGB":
        assert ds.PlanarConfiguration == 0 and ds.BitsAllocated == 8
    assert int(arr.max()) < (1 << ds.BitsStored)
    assert int(ds.PixelRepresentation) == (modality == "CT")
    assert arr.std() > 0  # a pattern, not a constant


@pytest.mark.parametrize("syntax", ALL_SYNTAXES, ids=lambda uid: uid.name)
@pytest.mark.parametrize(("modality", "frames"), [("CT", 1), ("MR", 1), ("US", 3)])
def test_every_syntax_round_trips_to_the_same_pixels(
    tmp_path: Path, syntax: str, modality: str, frames: int
) -> None:
    reference = make_instance(modality=modality, frames=frames, seed=3).pixel_array
    path = tmp_path / "x.dcm"
    made = make_instance(path, modality=modality, frames=frames, seed=3, transfer_syntax=syntax)
    ds = pydicom.dcmread(path)
    assert ds.file_meta.TransferSyntaxUID == syntax
    assert ds.SOPInstanceUID == made.SOPInstanceUID
    if syntax in PYDICOM_DECODES:
        decoded = ds.pixel_array
    else:
        decoded = decode_pixels(ds)
    assert decoded.dtype.newbyteorder("=") == reference.dtype  # big endian reads as >i2
    np.testing.assert_array_equal(decoded, reference)
    if syntax not in PYDICOM_DECODES or syntax == RLELossless:
        assert ds["PixelData"].is_undefined_length
        assert len(parse_basic_offsets(ds.PixelData)) == frames
        assert ds.LossyImageCompression == "00"


def test_big_endian_pixels_are_byte_swapped(tmp_path: Path) -> None:
    little = make_instance(modality="MR")
    big = make_instance(modality="MR", transfer_syntax=ExplicitVRBigEndian)
    assert big.PixelData == np.frombuffer(little.PixelData, "<u2").astype(">u2").tobytes()


def test_same_seed_same_instance_other_seed_other_identity() -> None:
    a, b, c = make_instance(seed=5), make_instance(seed=5), make_instance(seed=6)
    assert a == b and a.PixelData == b.PixelData
    assert a.SOPInstanceUID != c.SOPInstanceUID and a.PatientID != c.PatientID


def test_overrides_set_delete_and_flow_into_free_text() -> None:
    ds = make_instance(PatientName="ROE^RICHARD", StationName=None, SliceThickness="2.5")
    assert str(ds.PatientName) == "ROE^RICHARD"
    assert "ROE" in ds.ImageComments
    assert ds.private_block(0x0009, "GANTRY_TEST 1.0")[0x01].value == "ROE RICHARD"
    assert "StationName" not in ds and ds.SliceThickness == 2.5
    ds = make_instance(TransferSyntaxUID=ImplicitVRLittleEndian)  # file meta keyword
    assert ds.file_meta.TransferSyntaxUID == ImplicitVRLittleEndian


@pytest.mark.parametrize(
    "kwargs",
    [
        {"NotAKeyword": 1},
        {"modality": "PET"},
        {"modality": "CT", "frames": 2},
        {"transfer_syntax": "1.2.840.10008.1.2.4.50"},
        {"bits": 12},
        {"photometric": "YBR_FULL"},
    ],
)
def test_bad_arguments_raise_config_error(kwargs: dict[str, object]) -> None:
    with pytest.raises(ConfigError):
        make_instance(**kwargs)  # type: ignore[arg-type]


# -- make_corpus -------------------------------------------------------------------


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Corpus:
    return make_corpus(tmp_path_factory.mktemp("corpus"), canaries=True)


@pytest.fixture(scope="module")
def datasets(corpus: Corpus) -> dict[Path, pydicom.Dataset]:
    return {path: pydicom.dcmread(path) for path in corpus.paths}


def test_corpus_tree_matches_its_specs(corpus: Corpus, datasets: dict) -> None:
    assert len(corpus.paths) == 3 * 2 * 2 * 3 == len(set(corpus.paths))
    assert len(corpus.patients) == 3
    assert sum(1 for _ in corpus.instances()) == len(corpus.paths)
    for patient in corpus.patients:
        assert len(patient.studies) == 2
        for study in patient.studies:
            for series in study.series:
                for inst in series.instances:
                    ds = datasets[inst.path]
                    assert ds.PatientID == patient.patient_id
                    assert str(ds.PatientName) == patient.name
                    assert ds.PatientBirthDate == patient.birth_date
                    assert ds.StudyInstanceUID == study.study_instance_uid
                    assert ds.StudyDate == study.date == ds.ContentDate
                    assert ds.AccessionNumber == study.accession_number
                    assert ds.SeriesInstanceUID == series.series_instance_uid
                    assert ds.SOPInstanceUID == inst.sop_instance_uid
                    assert ds.file_meta.TransferSyntaxUID == inst.transfer_syntax
                    assert int(ds.get("NumberOfFrames", 1)) == inst.frames


def test_corpus_mixes_modalities_syntaxes_frames_and_file_names(
    corpus: Corpus, datasets: dict
) -> None:
    modalities = {ds.Modality for ds in datasets.values()}
    assert modalities == {"CT", "MR", "US", "CR", "OT"}
    syntaxes = {ds.file_meta.TransferSyntaxUID for ds in datasets.values()}
    assert syntaxes == {
        ExplicitVRLittleEndian, ImplicitVRLittleEndian, RLELossless,
        JPEG2000Lossless, JPEGLSLossless, HTJ2KLossless,
    }  # fmt: skip
    assert any(int(ds.get("NumberOfFrames", 1)) > 1 for ds in datasets.values())
    suffixes = {p.suffix for p in corpus.paths}
    assert "" in suffixes and ".dcm" in suffixes
    assert any(p.stem == datasets[p].SOPInstanceUID for p in corpus.paths)
    assert all(p.is_relative_to(corpus.root) for p in corpus.paths)
    assert len({p.parent for p in corpus.paths}) == 12  # one folder per series


def test_corpus_pixels_decode(datasets: dict) -> None:
    for ds in datasets.values():
        arr = decode_pixels(ds)
        assert arr.shape[-2 if ds.SamplesPerPixel == 1 else -3 :][:2] == (64, 64)


def test_corpus_study_dates_differ_and_references_resolve(corpus: Corpus, datasets: dict) -> None:
    for patient in corpus.patients:
        assert len({s.date for s in patient.studies}) == len(patient.studies)
        assert patient.dates[0] == patient.birth_date
    assert len(corpus.dates) == 3 * 3  # unique across the corpus
    sop_uids = {ds.SOPInstanceUID: ds for ds in datasets.values()}
    resolved = 0
    for ds in datasets.values():
        for keyword in ("ReferencedImageSequence", "SourceImageSequence"):
            for item in ds.get(keyword, []):
                target = sop_uids[item.ReferencedSOPInstanceUID]
                assert target.StudyInstanceUID == ds.StudyInstanceUID
                assert target.SeriesInstanceUID != ds.SeriesInstanceUID
                assert target.SOPClassUID == item.ReferencedSOPClassUID
                resolved += 1
        assert ds.ReferencedStudySequence[0].ReferencedSOPInstanceUID == ds.StudyInstanceUID
    assert resolved >= 18  # every instance of every second series


def test_corpus_is_byte_identical_for_the_same_seed(tmp_path: Path) -> None:
    kwargs = {"patients": 2, "studies_per_patient": 1, "instances_per_series": 2}
    a = make_corpus(tmp_path / "a", **kwargs)
    b = make_corpus(tmp_path / "b", **kwargs)
    c = make_corpus(tmp_path / "c", seed=1, **kwargs)
    rel_a = [p.relative_to(a.root) for p in a.paths]
    assert rel_a == [p.relative_to(b.root) for p in b.paths]
    match, mismatch, errors = filecmp.cmpfiles(a.root, b.root, [str(r) for r in rel_a], False)
    assert len(match) == len(rel_a) and not mismatch and not errors
    assert not {p.read_bytes() for p in a.paths} & {p.read_bytes() for p in c.paths}


def test_corpus_flat_uncompressed_single_frame(tmp_path: Path) -> None:
    corpus = make_corpus(
        tmp_path, patients=1, compressed=False, multiframe=False, nested_dirs=False,
        modalities=("US", "DX"), rows=16, columns=24,
    )  # fmt: skip
    assert {p.parent for p in corpus.paths} == {tmp_path}
    for path in corpus.paths:
        ds = pydicom.dcmread(path)
        assert ds.file_meta.TransferSyntaxUID in (ExplicitVRLittleEndian, ImplicitVRLittleEndian)
        assert "NumberOfFrames" not in ds and (ds.Rows, ds.Columns) == (16, 24)
    assert not corpus.canaries
    assert not any(CANARY.search(p.read_bytes()) for p in corpus.paths)


def test_corpus_rejects_bad_sizes(tmp_path: Path) -> None:
    with pytest.raises(ConfigError):
        make_corpus(tmp_path, patients=0)
    with pytest.raises(ConfigError):
        make_corpus(tmp_path, modalities=("XA",))


# -- canaries ----------------------------------------------------------------------


def test_canaries_are_distinct_recorded_and_in_the_bytes(corpus: Corpus) -> None:
    assert corpus.canaries and set(corpus.canary_locations) == corpus.canaries
    assert all(re.fullmatch(r"CNRY[0-9A-F]{8}", c) for c in corpus.canaries)
    in_files: set[str] = set()
    for path in corpus.paths:
        in_files |= {m.decode() for m in CANARY.findall(path.read_bytes())}
    assert in_files == corpus.canaries


def test_canaries_cover_every_identifying_place(corpus: Corpus) -> None:
    where = set(corpus.canary_locations.values())
    expected = {
        "00100010",  # PatientName
        "00100020",  # PatientID
        "00100021",  # IssuerOfPatientID
        "00101000",  # OtherPatientIDs
        "00101002[0].00100020",  # OtherPatientIDsSequence
        "00101040",  # PatientAddress
        "00102154",  # PatientTelephoneNumbers
        "00080050",  # AccessionNumber
        "00080051[0].00400031",  # IssuerOfAccessionNumberSequence (depth 1)
        "00080080",  # InstitutionName
        "00080081",  # InstitutionAddress
        "00080090",  # ReferringPhysicianName
        "00080096[0].00401101[0].00080100",  # depth 2
        "00081010",  # StationName
        "00081030",  # StudyDescription
        "0008103E",  # SeriesDescription
        "00081040",  # InstitutionalDepartmentName
        "00081050",  # PerformingPhysicianName
        "00081070",  # OperatorsName
        "00181000",  # DeviceSerialNumber
        "00200010",  # StudyID
        "00204000",  # ImageComments
        "001021B0",  # AdditionalPatientHistory
        "00400275[0].00401001",  # RequestedProcedureID
        "00400275[0].00400009",  # ScheduledProcedureStepID
        "00400275[0].00321060",  # RequestedProcedureDescription
        "00091003",  # private UN
    }
    assert expected <= where
    # the patient's name is copied into free text and the private block too
    ds = pydicom.dcmread(corpus.paths[0])
    family = str(ds.PatientName).split("^")[0]
    copies = find_canaries(ds)[family]
    assert copies[0] == "00100010"
    assert {"00091001", "00400275[0].00321060", "001021B0"} <= set(copies)


def test_canary_dates_are_in_the_files(corpus: Corpus) -> None:
    for patient in corpus.patients:
        text = b"".join(s.series[0].instances[0].path.read_bytes() for s in patient.studies)
        for date in patient.dates:
            assert re.fullmatch(r"\d{8}", date) and date.encode() in text


# -- make_clutter ------------------------------------------------------------------


def test_clutter_cases_are_what_they_say(tmp_path: Path) -> None:
    cases = make_clutter(tmp_path)
    assert set(cases) >= {
        "empty", "text", "truncated", "no_preamble", "big_endian", "deflated",
        "dicomdir", "binary", "duplicate",
    }  # fmt: skip
    assert all(p.is_relative_to(tmp_path) and p.is_file() for p in cases.values())
    assert cases["empty"].stat().st_size == 0
    assert cases["text"].read_bytes().decode("ascii").startswith("Scan notes")
    for key in ("empty", "text", "binary", "no_preamble", "no_meta"):
        with pytest.raises(InvalidDicomError):
            pydicom.dcmread(cases[key])
    assert cases["binary"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    with pytest.raises(OSError):
        list(pydicom.dcmread(cases["truncated"]).iterall())
    partial = pydicom.dcmread(cases["truncated_pixels"])
    with pytest.raises(ValueError):
        partial.pixel_array  # noqa: B018

    raw = cases["no_preamble"].read_bytes()
    assert raw[:4] == b"\x02\x00\x00\x00"
    assert pydicom.dcmread(cases["no_preamble"], force=True).pixel_array.shape == (64, 64)
    bare = pydicom.dcmread(cases["no_meta"], force=True)
    assert "TransferSyntaxUID" not in bare.file_meta and bare.Rows == 64 and bare.PatientID

    be = pydicom.dcmread(cases["big_endian"])
    assert be.file_meta.TransferSyntaxUID == ExplicitVRBigEndian
    assert be.pixel_array.shape == (64, 64)
    df = pydicom.dcmread(cases["deflated"])
    assert df.file_meta.TransferSyntaxUID == DeflatedExplicitVRLittleEndian
    assert df.pixel_array.shape == (64, 64)

    dicomdir = pydicom.dcmread(cases["dicomdir"])
    assert dicomdir.file_meta.MediaStorageSOPClassUID == "1.2.840.10008.1.3.10"
    assert dicomdir.DirectoryRecordSequence

    original, duplicate = cases["original"], cases["duplicate"]
    assert original != duplicate and original.read_bytes() == duplicate.read_bytes()
    assert pydicom.dcmread(duplicate).SOPInstanceUID == pydicom.dcmread(original).SOPInstanceUID


def test_clutter_is_deterministic(tmp_path: Path) -> None:
    a, b = make_clutter(tmp_path / "a"), make_clutter(tmp_path / "b")
    for key in a:
        assert a[key].read_bytes() == b[key].read_bytes(), key


# -- make_ct_files -----------------------------------------------------------------


def test_ct_files_are_valid_varied_and_spread(tmp_path: Path) -> None:
    paths = make_ct_files(tmp_path, 60, rows=32, columns=32)
    assert len(paths) == 60 and all(p.is_file() for p in paths)
    datasets = [pydicom.dcmread(p) for p in paths]
    assert len({ds.SOPInstanceUID for ds in datasets}) == 60
    assert all(ds.file_meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID for ds in datasets)
    assert len({ds.SeriesInstanceUID for ds in datasets}) == 3  # 25 + 25 + 10
    assert len({ds.PatientID for ds in datasets}) == 1
    first = datasets[:25]
    assert [int(ds.InstanceNumber) for ds in first] == list(range(1, 26))
    assert [float(ds.ImagePositionPatient[2]) for ds in first] == [
        -100.0 + 5 * i for i in range(25)
    ]
    assert all(float(ds.SliceLocation) == float(ds.ImagePositionPatient[2]) for ds in first)
    assert len(datasets[0]) >= 90 and "RequestAttributesSequence" in datasets[0]
    ref = datasets[25].ReferencedImageSequence[0].ReferencedSOPInstanceUID
    assert ref == datasets[0].SOPInstanceUID
    assert datasets[0].pixel_array.shape == (32, 32) and datasets[0].pixel_array.dtype == np.int16
    again = make_ct_files(tmp_path / "again", 60, rows=32, columns=32)
    assert [p.read_bytes() for p in again] == [p.read_bytes() for p in paths]


def test_ct_files_in_parallel_match_serial(tmp_path: Path) -> None:
    serial = make_ct_files(tmp_path / "s", 30, rows=16, columns=16)
    parallel = make_ct_files(tmp_path / "p", 30, rows=16, columns=16, workers=2)
    assert [p.read_bytes() for p in serial] == [p.read_bytes() for p in parallel]
