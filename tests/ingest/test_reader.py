"""read_batch: every pydicom sample against a full pydicom read, clutter, a synthetic CT.

The oracle is pydicom itself: each sample is read whole with
``dcmread(force=True)`` and walked recursively here, independently of
``gantry.ingest._reference``; every ``elements`` row and every typed
``instances`` column must match, with the fast walker on and off.
"""

from __future__ import annotations

import builtins
import datetime as dt
import io
import math
import re
import warnings
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import pyarrow as pa
import pydicom
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydicom.datadict import DicomDictionary
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.hooks import hooks, raw_element_value
from pydicom.sequence import Sequence
from pydicom.uid import (
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
)

import gantry.ingest._reference as reference_module
import gantry.ingest._walker as walker_module
from gantry.ingest._batch import ELEMENTS_SCHEMA, SKIPPED_SCHEMA, BatchResult, read_batch
from gantry.ingest._ids import file_id

DATA = Path(pydicom.__file__).parent / "data"
SAMPLES = sorted(p for p in (DATA / "test_files").rglob("*") if p.is_file()) + sorted(
    p for p in (DATA / "charset_files").glob("*") if p.is_file()
)
SAMPLE_IDS = [str(p.relative_to(DATA)) for p in SAMPLES]
REASONS = {"empty", "not_dicom", "truncated", "dicomdir", "unreadable", "io_error"}
BULK = {"OB", "OW", "OF", "OD", "OL", "OV", "UN"}
PIXEL_TAGS = {0x7FE00008, 0x7FE00009, 0x7FE00010}
LONG_VRS = {"OB", "OD", "OF", "OL", "OV", "OW", "SQ", "SV", "UC", "UN", "UR", "UT", "UV"}
FAILED = object()  # a value the typed column cannot hold


# ---------------------------------------------------------------------------
# the pydicom oracle


def _text(vr: str, value: Any) -> str | None:
    """The contract's text of a pydicom value, written independently of _values."""
    if vr == "SQ" or vr in BULK or isinstance(value, bytes | bytearray):
        return None
    if value is None:
        return ""
    items = list(value) if isinstance(value, list | pydicom.multival.MultiValue) else [value]
    if vr == "AT":
        return "\\".join(f"{int(t):08X}" for t in items)
    return "\\".join(str(v) for v in items)


class Oracle:
    """A full pydicom read of one file, walked into contract rows."""

    def __init__(self, path: Path) -> None:
        lengths: dict[tuple[int, int], int] = {}

        def record(raw: RawDataElement, data: dict[str, Any], **kwargs: Any) -> None:
            lengths[(int(raw.tag), raw.value_tell)] = raw.length
            raw_element_value(raw, data, **kwargs)

        # elements pydicom converts while reading lose their raw length: record it
        hooks.register_callback("raw_element_value", record)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                self.ds = pydicom.dcmread(path, force=True)
        finally:
            hooks.register_callback("raw_element_value", raw_element_value)
        self.lengths = lengths
        # the encoding pydicom really read the dataset with (it may contradict the syntax)
        self.implicit = next(
            (r.is_implicit_VR for r in self.ds._dict.values() if isinstance(r, RawDataElement)),
            self.ds.original_encoding[0],
        )
        self.rows: list[tuple[Any, ...]] = []
        self.top: dict[int, tuple[str, Any, str | None]] = {}  # tag -> (vr, value, text)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            self.walk(self.ds.file_meta, "", 0)
            self.walk(self.ds, "", 0)

    def walk(self, ds: Dataset, prefix: str, depth: int) -> None:
        for tag, raw in sorted(ds._dict.items()):
            if isinstance(raw, RawDataElement):
                length = raw.length
                raw_value = raw.value
            else:
                length = self.lengths.get((int(tag), raw.file_tell), -1)
                raw_value = None
            try:
                elem = ds[tag]
                vr, value = str(elem.VR), elem.value
            except Exception:  # as pydicom does with convert_wrong_length_to_UN
                elem, vr, value = None, "UN", raw_value
            path = prefix + f"{tag:08X}"
            keyword = (elem.keyword if elem is not None else "") or None
            creator = None
            if tag.group % 2 and tag.element >= 0x1000:
                # (not elem.private_creator: pydicom leaves it unset on sequences it read whole)
                creator_tag = tag.group << 16 | tag.element >> 8
                if creator_tag in ds._dict:
                    creator = _text("LO", ds[creator_tag].value)
            if length == 0xFFFFFFFF and vr != "SQ":
                length = len(value)
            if vr == "SQ":
                self.rows.append(
                    (path, f"{tag:08X}", depth, keyword, vr, creator, None, len(value), None)
                )
                for index, item in enumerate(value):
                    self.walk(item, f"{path}[{index}].", depth + 1)
                continue
            text = _text(vr, value)
            digest = None
            if tag in PIXEL_TAGS:
                text = None
            elif text is None:
                data = value if isinstance(value, bytes | bytearray) else raw_value
                digest = _blake(data or b"")
            self.rows.append(
                (path, f"{tag:08X}", depth, keyword, vr, creator, text, length, digest)
            )
            if depth == 0:
                self.top[int(tag)] = (vr, value, text)

    def pixel(self) -> tuple[int | None, int | None]:
        """(offset, length) of the top-level (7FE0,0010) element, from pydicom's positions."""
        elem = self.ds._dict.get(0x7FE00010)
        if elem is None:
            return None, None
        vr = str(self.ds[0x7FE00010].VR)
        header = 8 if self.implicit or vr not in LONG_VRS else 12
        value = self.ds[0x7FE00010].value
        undefined = self.ds[0x7FE00010].is_undefined_length
        length = header + len(value) + (8 if undefined else 0)
        deflated = self.ds.file_meta.get("TransferSyntaxUID") == DeflatedExplicitVRLittleEndian
        return (None if deflated else self.ds[0x7FE00010].file_tell - header), length


def _blake(data: bytes) -> str:
    from hashlib import blake2b

    return blake2b(data, digest_size=16).hexdigest()


@cache
def oracle(path: Path) -> Oracle:
    return Oracle(path)


def _column_kind(tag: int) -> tuple[str, bool] | None:
    """(item kind, is list) of the instances column for a top-level tag, from the dictionary."""
    entry = DicomDictionary.get(tag)
    if entry is None or (tag >> 16) % 2 or not entry[4]:
        return None
    vr, vm = entry[0], entry[1]
    if vr == "SQ" or vr in BULK or (" or " in vr and vr != "US or SS"):
        return None
    if vr in {"DS", "FL", "FD"}:
        kind = "float"
    elif vr in {"IS", "SS", "US", "SL", "UL", "SV", "UV", "US or SS"}:
        kind = "int"
    elif vr == "DA":
        kind = "date"
    else:
        kind = "str"
    return kind, vm != "1"


def _typed(kind: str, item: Any) -> Any:
    """One pydicom value converted to the column's item type, or FAILED."""
    if kind == "float":
        try:
            return float(item)
        except (TypeError, ValueError):
            return FAILED
    if kind == "int":
        if isinstance(item, int):
            number = int(item)
        elif isinstance(item, str) and re.fullmatch(r"\s*[+-]?\d+\s*", item):
            number = int(item)
        else:  # ISfloat, text pydicom could not convert
            return FAILED
        return number if -(2**63) <= number < 2**63 else FAILED
    text = str(item).strip()
    if not re.fullmatch(r"\d{8}", text):
        return FAILED
    try:
        return dt.date(int(text[:4]), int(text[4:6]), int(text[6:]))
    except ValueError:
        return FAILED


def expected_column(kind: str, is_list: bool, value: Any, text: str) -> tuple[Any, str | None]:
    """(typed value, __raw text) the instances table must hold for one element."""
    if kind == "str":
        if is_list:
            return ([] if text == "" else text.split("\\")), None
        return text, None
    if text == "":
        return ([] if is_list else None), None
    multiple = isinstance(value, list | pydicom.multival.MultiValue)
    if is_list:
        items = list(value) if multiple else [value]
        typed = [None if str(v).strip() == "" else _typed(kind, v) for v in items]
        failed = any(v is FAILED for v in typed)
        return [None if v is FAILED else v for v in typed], (text if failed else None)
    typed = FAILED if multiple else _typed(kind, value)
    return (None, text) if typed is FAILED else (typed, None)


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


# ---------------------------------------------------------------------------
# every bundled sample, fast path on and off


@pytest.fixture(scope="module", params=[True, False], ids=["fast", "pydicom"])
def samples(request: pytest.FixtureRequest) -> tuple[bool, BatchResult]:
    return request.param, read_batch(SAMPLES, fast=request.param)


def _rows_of(batch: BatchResult, fid: int) -> list[tuple[Any, ...]]:
    table = batch.elements.filter(pa.compute.equal(batch.elements["file_id"], fid))
    columns = [table[name].to_pylist() for name in ELEMENTS_SCHEMA.names[1:]]
    return sorted(zip(*columns, strict=True), key=lambda r: r[0])


def test_every_sample_is_indexed_or_skipped(samples: tuple[bool, BatchResult]) -> None:
    _, batch = samples
    indexed = set(batch.instances["file_path"].to_pylist())
    skipped = dict(
        zip(
            batch.skipped["file_path"].to_pylist(), batch.skipped["reason"].to_pylist(), strict=True
        )
    )
    assert indexed.isdisjoint(skipped)
    assert indexed | set(skipped) == {str(p) for p in SAMPLES}
    assert set(skipped.values()) <= REASONS
    tests = DATA / "test_files"
    assert skipped[str(tests / "README.txt")] == "not_dicom"
    assert skipped[str(tests / "no_meta.dcm")] == "not_dicom"  # starts one byte into an element
    assert skipped[str(tests / "MR_truncated.dcm")] == "truncated"
    assert skipped[str(tests / "rtplan_truncated.dcm")] == "truncated"
    assert skipped[str(tests / "dicomdirtests" / "DICOMDIR")] == "dicomdir"
    assert skipped[str(tests / "dicomdirtests" / "DICOMDIR-bigEnd")] == "dicomdir"
    for name in (
        "CT_small.dcm",
        "rtstruct.dcm",
        "ExplVR_BigEndNoMeta.dcm",
        "image_dfl.dcm",
        "UN_sequence.dcm",
    ):
        assert str(tests / name) in indexed
    assert not any("PatientName" in d for d in batch.skipped["detail"].to_pylist())


@pytest.mark.parametrize("path", SAMPLES, ids=SAMPLE_IDS)
def test_sample_matches_pydicom(samples: tuple[bool, BatchResult], path: Path) -> None:
    fast, batch = samples
    instances = batch.instances.filter(pa.compute.equal(batch.instances["file_path"], str(path)))
    if instances.num_rows == 0:
        return  # skipped: checked above
    truth = oracle(path)
    fid = file_id(path)
    row = instances.to_pylist()[0]
    assert row["file_id"] == fid

    # every element row
    expected = sorted(truth.rows, key=lambda r: r[0])
    assert _rows_of(batch, fid) == expected

    # file-level columns
    syntax = truth.ds.file_meta.get("TransferSyntaxUID")
    assert row["transfer_syntax"] == (ImplicitVRLittleEndian if syntax is None else str(syntax))
    assert (row["pixel_offset"], row["pixel_length"]) == truth.pixel()
    assert row["parser"] == ("fast" if fast and row["parser"] == "fast" else "pydicom")
    assert row["file_size"] == path.stat().st_size

    # every typed column
    checked = set()
    for tag, (_vr, value, text) in truth.top.items():
        kind = _column_kind(tag)
        if kind is None or text is None:
            continue
        keyword = DicomDictionary[tag][4]
        typed, raw = expected_column(*kind, value, text)
        assert _same(row[keyword], typed), keyword
        assert row.get(f"{keyword}__raw") == raw, keyword
        checked.add(keyword)
    columns = {c for c in row if c[0].isupper() and not c.endswith("__raw") and row[c] is not None}
    assert columns <= checked


def test_fast_path_reads_common_syntaxes_itself() -> None:
    tests = DATA / "test_files"
    names = [
        "CT_small.dcm",  # explicit VR LE, private block
        "MR_small_implicit.dcm",
        "MR_small_bigendian.dcm",
        "image_dfl.dcm",  # deflated
        "JPEG2000.dcm",  # encapsulated pixel data
        "rtplan.dcm",  # implicit VR, nested sequences
        "rtstruct.dcm",  # no preamble, no meta
        "ExplVR_BigEndNoMeta.dcm",
        "nested_priv_SQ.dcm",  # implicit VR private sequences
        "test-SR.dcm",
    ]
    batch = read_batch([tests / n for n in names])
    assert batch.instances["parser"].to_pylist() == ["fast"] * len(names)


def test_fast_path_falls_back_per_file() -> None:
    charsets = DATA / "charset_files"
    tests = DATA / "test_files"
    paths = [
        charsets / "chrRuss.dcm",  # ISO_IR 144
        charsets / "chrJapMulti.dcm",  # ISO 2022 escapes
        charsets / "chrX1.dcm",  # ISO_IR 192: the fast path's own
        tests / "UN_sequence.dcm",  # UN of undefined length
        tests / "badVR.dcm",  # IS "1A"
        tests / "SC_rgb_jpeg.dcm",  # implicit data under an explicit syntax
    ]
    parsers = read_batch(paths).instances["parser"].to_pylist()
    assert parsers == ["pydicom", "pydicom", "fast", "pydicom", "pydicom", "pydicom"]


# ---------------------------------------------------------------------------
# a synthetic CT, field by field


def _synthetic(syntax: str = ExplicitVRLittleEndian, **values: Any) -> Dataset:
    ds = Dataset()
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
    ds.SOPInstanceUID = "1.2.826.0.1.3680043.8.498.1"
    ds.StudyDate = "20240102"
    ds.StudyTime = "101530.25"
    ds.Modality = "CT"
    ds.ReferringPhysicianName = "Smith^Anna^^Dr=="
    ref = Dataset()
    ref.ReferencedSOPClassUID = "1.2.840.10008.3.1.2.3.1"
    ref.ReferencedSOPInstanceUID = "1.2.826.0.1.3680043.8.498.2"
    ds.ReferencedStudySequence = Sequence([ref])
    ds.PatientName = "Müller^Jürgen"
    ds.PatientID = "PID-0001"
    ds.PatientBirthDate = "19700131"
    ds.PatientWeight = "72.5"
    ds.SliceThickness = "1.25"
    ds.EchoNumbers = ["1", "2"]
    ds.StudyInstanceUID = "1.2.826.0.1.3680043.8.498.3"
    ds.SeriesInstanceUID = "1.2.826.0.1.3680043.8.498.4"
    ds.InstanceNumber = "7"
    ds.ImagePositionPatient = ["-100.0", "-120.5", "33"]
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows = 4
    ds.Columns = 4
    ds.PixelSpacing = ["0.5", "0.5"]
    ds.BitsAllocated = 16
    ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 1
    ds.SmallestImagePixelValue = -5
    ds["SmallestImagePixelValue"].VR = "SS"
    ds.WindowCenter = ["40", "400"]
    code = Dataset()
    code.CodeValue = "CTCHEST"
    code.CodingSchemeDesignator = "99LOCAL"
    request = Dataset()
    request.RequestedProcedureID = "RP1"
    request.RequestedProcedureCodeSequence = Sequence([code])
    ds.RequestAttributesSequence = Sequence([request])
    block = ds.private_block(0x0011, "GANTRY READER TEST", create=True)
    block.add_new(0x10, "LO", "private text")
    block.add_new(0x11, "DS", ["1.5", "2.5"])
    block.add_new(0x12, "US", 42)
    block.add_new(0x13, "OB", bytes(range(10)))
    block.add_new(0x14, "FL", [0.1, 2.0])
    ds.PixelData = bytes(range(32))
    ds["PixelData"].VR = "OW"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for keyword, value in values.items():
            setattr(ds, keyword, value)
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.file_meta.TransferSyntaxUID = syntax
    return ds


def _write(ds: Dataset, path: Path) -> Path:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds.save_as(path, enforce_file_format=True)
    return path


@pytest.fixture(scope="module")
def ct_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _write(_synthetic(), tmp_path_factory.mktemp("ct") / "ct.dcm")


@pytest.mark.parametrize("fast", [True, False], ids=["fast", "pydicom"])
def test_synthetic_ct_field_by_field(ct_file: Path, fast: bool) -> None:
    batch = read_batch([str(ct_file)], fast=fast)
    assert batch.skipped.num_rows == 0
    (row,) = batch.instances.to_pylist()
    assert row["file_id"] == file_id(ct_file)
    assert row["file_path"] == str(ct_file)
    assert row["parser"] == ("fast" if fast else "pydicom")
    assert row["transfer_syntax"] == ExplicitVRLittleEndian
    data = ct_file.read_bytes()
    header = data.index(b"\xe0\x7f\x10\x00OW\x00\x00")
    assert (row["pixel_offset"], row["pixel_length"]) == (header, 12 + 32)
    assert row["file_size"] == len(data)
    assert row["ImageType"] == ["ORIGINAL", "PRIMARY", "AXIAL"]
    assert row["StudyDate"] == dt.date(2024, 1, 2)
    assert row["StudyTime"] == "101530.25"
    assert row["PatientName"] == "Müller^Jürgen"
    assert row["ReferringPhysicianName"] == "Smith^Anna^^Dr"  # empty component groups dropped
    assert row["PatientBirthDate"] == dt.date(1970, 1, 31)
    assert row["PatientWeight"] == 72.5
    assert row["SliceThickness"] == 1.25
    assert row["EchoNumbers"] == [1, 2]
    assert row["InstanceNumber"] == 7
    assert row["ImagePositionPatient"] == [-100.0, -120.5, 33.0]
    assert row["PixelSpacing"] == [0.5, 0.5]
    assert row["WindowCenter"] == [40.0, 400.0]
    assert row["Rows"] == 4 and row["PixelRepresentation"] == 1
    assert row["SmallestImagePixelValue"] == -5
    assert row["SpecificCharacterSet"] == ["ISO_IR 100"]
    assert row["MediaStorageSOPInstanceUID"] == "1.2.826.0.1.3680043.8.498.1"
    assert not any(name.endswith("__raw") for name in row)
    for absent in ("PixelData", "ReferencedStudySequence", "FileMetaInformationVersion"):
        assert absent not in row
    types = dict(zip(batch.instances.schema.names, batch.instances.schema.types, strict=True))
    assert types["StudyDate"] == pa.date32() and types["PixelSpacing"] == pa.list_(pa.float64())
    assert types["EchoNumbers"] == pa.list_(pa.int64()) and types["Rows"] == pa.int64()

    elements = {r["path"]: r for r in batch.elements.to_pylist()}
    assert set(batch.elements["file_id"].to_pylist()) == {row["file_id"]}
    ref = elements["00081110"]
    assert (ref["vr"], ref["length"], ref["value"], ref["depth"]) == ("SQ", 1, None, 0)
    uid = elements["00081110[0].00081155"]
    assert (uid["tag"], uid["depth"], uid["keyword"], uid["vr"]) == (
        "00081155",
        1,
        "ReferencedSOPInstanceUID",
        "UI",
    )
    assert uid["value"] == "1.2.826.0.1.3680043.8.498.2"
    nested = elements["00400275[0].00321064[0].00080100"]
    assert (nested["depth"], nested["value"]) == (2, "CTCHEST")
    creator = elements["00110010"]
    assert (creator["vr"], creator["value"], creator["private_creator"]) == (
        "LO",
        "GANTRY READER TEST",
        None,
    )
    text = elements["00111010"]
    assert (text["keyword"], text["private_creator"], text["value"]) == (
        None,
        "GANTRY READER TEST",
        "private text",
    )
    assert elements["00111011"]["value"] == "1.5\\2.5"
    assert elements["00111012"]["value"] == "42"
    assert elements["00111014"]["value"] == f"{0.10000000149011612}\\2.0"  # float32, as pydicom
    blob = elements["00111013"]
    assert (blob["vr"], blob["value"], blob["length"]) == ("OB", None, 10)
    assert blob["value_hash"] == _blake(bytes(range(10)))
    pixels = elements["7FE00010"]
    assert (pixels["vr"], pixels["value"], pixels["length"], pixels["value_hash"]) == (
        "OW",
        None,
        32,
        None,
    )
    assert elements["00100010"]["value"] == "Müller^Jürgen"
    assert elements["00280106"]["vr"] == "SS" and elements["00280106"]["value"] == "-5"
    assert elements["00020010"]["value"] == ExplicitVRLittleEndian
    assert all(r["value_hash"] is None for r in elements.values() if r["vr"] not in BULK)


@pytest.mark.parametrize(
    "syntax",
    [ImplicitVRLittleEndian, ExplicitVRBigEndian, DeflatedExplicitVRLittleEndian],
    ids=["implicit", "big_endian", "deflated"],
)
def test_synthetic_ct_in_other_syntaxes(tmp_path: Path, ct_file: Path, syntax: str) -> None:
    path = _write(_synthetic(syntax), tmp_path / "ct.dcm")
    for fast in (True, False):
        batch = read_batch([ct_file, path], fast=fast)
        assert batch.instances["parser"].to_pylist() == ["fast" if fast else "pydicom"] * 2
        rows = batch.instances.to_pylist()
        skip = {
            "file_id",
            "file_path",
            "file_size",
            "file_mtime",
            "transfer_syntax",
            "TransferSyntaxUID",
        }
        skip |= {"pixel_offset", "pixel_length", "FileMetaInformationGroupLength"}
        for column in rows[0]:
            if column not in skip:
                assert rows[0][column] == rows[1][column], column
        assert rows[1]["pixel_offset"] is None if syntax == DeflatedExplicitVRLittleEndian else True
        assert rows[1]["transfer_syntax"] == syntax
        both = [_rows_of(batch, r["file_id"]) for r in rows]
        public = [
            [r for r in b if not r[1].startswith("0002") and not r[1].startswith("0011")]
            for b in both
        ]
        if (
            syntax == ImplicitVRLittleEndian
        ):  # VRs come from the dictionary: the private block is UN
            assert {r[4] for r in both[1] if r[1].startswith("00111")} == {"UN"}
        else:
            public = [[r for r in b if not r[1].startswith("0002")] for b in both]
        assert public[0] == public[1]


def _patch(path: Path, old: bytes, new: bytes) -> None:
    data = path.read_bytes()
    assert data.count(old) == 1 and len(old) == len(new)
    path.write_bytes(data.replace(old, new))


@pytest.mark.parametrize(
    "syntax", [ExplicitVRLittleEndian, ImplicitVRLittleEndian], ids=["explicit", "implicit"]
)
def test_ambiguous_vrs_and_lut_descriptors_match_pydicom(tmp_path: Path, syntax: str) -> None:
    ds = _synthetic(syntax)
    # read as SS, pydicom adds 65536 to a negative first value; re-read as SS (implicit
    # 'US or SS' with Pixel Representation 1) it does not
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pydicom checks SS values against US bounds
        ds.add_new(0x00281101, "SS", [32768, 0, 16])  # written "H", read back as -32768
    ds.add_new(0x00281201, "OW", bytes(6))
    ds.add_new(0x60000010, "US", 4)
    ds.add_new(0x60003000, "OW", bytes(4))
    path = _write(ds, tmp_path / "lut.dcm")
    truth = sorted(oracle(path).rows, key=lambda r: r[0])
    assert truth[[r[0] for r in truth].index("00281101")][6] == (
        "32768\\0\\16" if syntax == ExplicitVRLittleEndian else "-32768\\0\\16"
    )
    for fast in (True, False):
        batch = read_batch([path], fast=fast)
        assert batch.instances["parser"].to_pylist() == ["fast" if fast else "pydicom"]
        assert _rows_of(batch, file_id(path)) == truth


@pytest.mark.parametrize(
    "syntax", [ExplicitVRLittleEndian, ImplicitVRLittleEndian], ids=["explicit", "implicit"]
)
def test_private_creators_are_per_group_and_dataset(tmp_path: Path, syntax: str) -> None:
    ds = _synthetic(syntax)
    ds.add_new(0x00090010, "LO", "OTHER CREATOR")
    ds.add_new(0x00091001, "LO", "in group 9")
    ds.add_new(0x00131001, "LO", "no creator in group 13")  # block 0x10 of group 9 is not its block
    item = ds.RequestAttributesSequence[0]
    item.add_new(0x00110010, "LO", "ITEM CREATOR")
    item.add_new(0x00111001, "LO", "in the item")
    item.add_new(0x00091001, "LO", "creator only in the parent")
    path = _write(ds, tmp_path / "private.dcm")
    truth = sorted(oracle(path).rows, key=lambda r: r[0])
    creators = {r[0]: r[5] for r in truth}
    assert creators["00091001"] == "OTHER CREATOR" and creators["00131001"] is None
    assert creators["00400275[0].00111001"] == "ITEM CREATOR"
    assert creators["00400275[0].00091001"] is None
    for fast in (True, False):
        batch = read_batch([path], fast=fast)
        assert batch.instances["parser"].to_pylist() == ["fast" if fast else "pydicom"]
        assert _rows_of(batch, file_id(path)) == truth


def test_unconvertible_values_keep_their_text(tmp_path: Path) -> None:
    good = _write(_synthetic(), tmp_path / "good.dcm")
    bad = _write(
        _synthetic(
            StudyDate="2024-01-02",
            SliceThickness="9.875",
            EchoNumbers=["1", "8"],
            InstanceNumber="7.5",
        ),
        tmp_path / "bad.dcm",
    )
    _patch(bad, b"9.875 ", b"thick ")  # pydicom would not let us set these
    _patch(bad, b"1\\8 ", b"1\\x ")
    for fast in (True, False):
        batch = read_batch([good, bad], fast=fast)
        rows = batch.instances.to_pylist()
        assert rows[1]["parser"] == "pydicom"  # an invalid DS / IS: the fast path declines
        assert [r["StudyDate"] for r in rows] == [dt.date(2024, 1, 2), None]
        assert [r["StudyDate__raw"] for r in rows] == [None, "2024-01-02"]
        assert [r["SliceThickness"] for r in rows] == [1.25, None]
        assert rows[1]["SliceThickness__raw"] == "thick"
        assert [r["EchoNumbers"] for r in rows] == [[1, 2], [1, None]]
        assert rows[1]["EchoNumbers__raw"] == "1\\x"
        assert rows[1]["InstanceNumber"] is None and rows[1]["InstanceNumber__raw"] == "7.5"
        assert "PatientName__raw" not in rows[0]
    # the column type depends on the keyword only
    assert read_batch([good]).instances.schema.field("StudyDate").type == pa.date32()
    assert read_batch([bad]).instances.schema.field("StudyDate").type == pa.date32()


# ---------------------------------------------------------------------------
# the fast path is never less correct than pydicom

MUTATED = [
    "CT_small.dcm",
    "MR_small_implicit.dcm",
    "MR_small_bigendian.dcm",
    "rtplan.dcm",
    "test-SR.dcm",
]
INTERESTING = list(b" \x00\\=.+-eE019AZaz^\xe9\x1b\t\xff")


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    name=st.sampled_from(MUTATED),
    edits=st.lists(
        st.tuples(st.integers(132, 3000), st.sampled_from(INTERESTING)), min_size=1, max_size=3
    ),
)
def test_mutated_headers_read_the_same_fast_or_not(
    tmp_path: Path, name: str, edits: list[tuple[int, int]]
) -> None:
    data = bytearray((DATA / "test_files" / name).read_bytes())
    for position, byte in edits:
        data[min(position, len(data) - 1)] = byte
    path = tmp_path / "mutated.dcm"
    path.write_bytes(data)
    fast, slow = read_batch([path], fast=True), read_batch([path], fast=False)
    assert fast.elements.equals(slow.elements)
    assert fast.instances.drop_columns(["parser"]).equals(slow.instances.drop_columns(["parser"]))
    assert fast.skipped.select(["file_path", "reason"]).equals(
        slow.skipped.select(["file_path", "reason"])
    )


# ---------------------------------------------------------------------------
# clutter


def _cut_points(data: bytes) -> dict[str, int]:
    name = data.index("Müller".encode("latin-1"))
    item = data.index(b"\x40\x00\x75\x02SQ\x00\x00") + 12  # RequestAttributesSequence item header
    blob = data.index(bytes(range(10)))
    pixel = data.index(b"\xe0\x7f\x10\x00OW\x00\x00")
    return {
        "patient_name": name + 3,
        "sequence_item_header": item + 3,
        "nested_sequence": item + 30,
        "private_blob": blob + 5,
        "pixel_header": pixel + 5,
        "pixel_data": pixel + 12 + 16,
        "after_preamble": 140,
    }


@pytest.mark.parametrize("fast", [True, False], ids=["fast", "pydicom"])
def test_truncated_copies_are_skipped(tmp_path: Path, ct_file: Path, fast: bool) -> None:
    data = ct_file.read_bytes()
    paths = []
    for label, cut in _cut_points(data).items():
        path = tmp_path / f"cut_{label}.dcm"
        path.write_bytes(data[:cut])
        paths.append(path)
    batch = read_batch(paths, fast=fast)
    assert batch.instances.num_rows == 0
    assert batch.elements.num_rows == 0
    assert batch.skipped["reason"].to_pylist() == ["truncated"] * len(paths)


@pytest.mark.parametrize("fast", [True, False], ids=["fast", "pydicom"])
def test_clutter(tmp_path: Path, ct_file: Path, fast: bool) -> None:
    data = ct_file.read_bytes()
    meta_end = data.index(b"\x08\x00\x05\x00CS")  # first dataset element
    cases = {
        "empty": b"",
        "text": b"Scan notes\nNot an image.\n",
        "binary": bytes(range(256)) * 4,
        "no_preamble": data[132:],
        "no_meta": data[meta_end:],
    }
    paths = {}
    for name, content in cases.items():
        paths[name] = tmp_path / f"{name}.dcm"
        paths[name].write_bytes(content)
    paths["dicomdir"] = DATA / "test_files" / "dicomdirtests" / "DICOMDIR"
    paths["missing"] = tmp_path / "missing.dcm"
    paths["folder"] = tmp_path
    paths["original"] = ct_file
    batch = read_batch(list(paths.values()), fast=fast)
    reasons = dict(
        zip(
            batch.skipped["file_path"].to_pylist(), batch.skipped["reason"].to_pylist(), strict=True
        )
    )
    assert reasons == {
        str(paths["empty"]): "empty",
        str(paths["text"]): "not_dicom",
        str(paths["binary"]): "not_dicom",
        str(paths["dicomdir"]): "dicomdir",
        str(paths["missing"]): "io_error",
        str(paths["folder"]): "io_error",
    }
    missing = batch.skipped.filter(
        pa.compute.equal(batch.skipped["file_path"], str(paths["missing"]))
    )
    assert missing.to_pylist()[0]["file_size"] is None
    rows = {r["file_path"]: r for r in batch.instances.to_pylist()}
    original = rows[str(ct_file)]
    no_preamble = rows[str(paths["no_preamble"])]
    no_meta = rows[str(paths["no_meta"])]
    assert no_preamble["pixel_offset"] == original["pixel_offset"] - 132
    assert no_meta["pixel_offset"] == original["pixel_offset"] - meta_end
    assert (
        no_meta["transfer_syntax"] == ImplicitVRLittleEndian
    )  # the contract's default; read as explicit
    assert "TransferSyntaxUID" not in no_meta or no_meta["TransferSyntaxUID"] is None
    for column in ("PatientName", "StudyDate", "PixelSpacing", "SmallestImagePixelValue"):
        assert original[column] == no_preamble[column] == no_meta[column]
    dataset_rows = [
        [r for r in _rows_of(batch, row["file_id"]) if not r[1].startswith("0002")]
        for row in (original, no_preamble, no_meta)
    ]
    assert dataset_rows[0] == dataset_rows[1] == dataset_rows[2]


def test_empty_batch_has_the_schemas() -> None:
    batch = read_batch([])
    assert batch.elements.schema == ELEMENTS_SCHEMA and batch.elements.num_rows == 0
    assert batch.skipped.schema == SKIPPED_SCHEMA
    assert batch.instances.schema.names[:3] == ["file_id", "file_path", "file_size"]
    only_skips = read_batch([DATA / "test_files" / "README.txt"])
    assert only_skips.instances.num_rows == 0 and only_skips.elements.schema == ELEMENTS_SCHEMA


# ---------------------------------------------------------------------------
# headers only


class _Counting(io.RawIOBase):
    """An unbuffered file counting the bytes read from it."""

    total = 0

    def __init__(self, path: str) -> None:
        self._f = builtins.open(path, "rb", buffering=0)

    def readinto(self, buffer: Any) -> int:
        n = self._f.readinto(buffer)
        _Counting.total += n or 0
        return n

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = 0) -> int:
        return self._f.seek(offset, whence)

    def tell(self) -> int:
        return self._f.tell()

    def close(self) -> None:
        self._f.close()
        super().close()


@pytest.fixture
def counting(monkeypatch: pytest.MonkeyPatch) -> Iterator[type[_Counting]]:
    def fake_open(path: str, mode: str = "rb", buffering: int = -1) -> _Counting:
        assert mode == "rb"
        return _Counting(path)

    monkeypatch.setattr(walker_module, "open", fake_open, raising=False)
    monkeypatch.setattr(reference_module, "open", fake_open, raising=False)
    _Counting.total = 0
    yield _Counting


@pytest.mark.parametrize("fast", [True, False], ids=["fast", "pydicom"])
def test_pixel_data_is_never_read(tmp_path: Path, counting: type[_Counting], fast: bool) -> None:
    ds = _synthetic(Rows=512, Columns=512)
    ds.PixelData = b"\x01\x02" * (512 * 512)
    native = _write(ds, tmp_path / "native.dcm")
    encapsulated = DATA / "test_files" / "examples_jpeg2k.dcm"  # 150 kB of fragments
    batch = read_batch([native, encapsulated], fast=fast)
    assert batch.instances["parser"].to_pylist() == ["fast" if fast else "pydicom"] * 2
    assert counting.total < 48 * 1024
    lengths = batch.instances["pixel_length"].to_pylist()
    assert lengths[0] == 12 + 512 * 512 * 2
    assert lengths[1] > 100_000
