"""Output verification agrees with the plan: precise matching, reasons that name attributes."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import pydicom
import pytest
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from gantry import Session
from gantry.export._leaks import Token, first_leak, plan_tree
from gantry.testing import make_instance


def _code(value: str, meaning: str) -> Dataset:
    item = Dataset()
    item.CodeValue, item.CodingSchemeDesignator, item.CodeMeaning = value, "99LOCAL", meaning
    return item


def test_real_data_collisions_export_clean(tmp_path: Path) -> None:
    """The false alarms seen on real data: every one of them now exports."""
    make_instance(
        tmp_path / "dicom" / "ct.dcm",
        PatientName="ANON",  # becomes ANON_000001: no leak of ANON
        InstitutionName="TOSHIBA",  # removed; kept Manufacturer TOSHIBA_MEC holds it as a word part
        Manufacturer="TOSHIBA_MEC",
        ProtocolName="STANDARD",  # removed; kept in ConvolutionKernel
        ConvolutionKernel="STANDARD",
        StudyDescription="CT ABDOMEN PELVIS",  # removed; kept as a code meaning
        ProcedureCodeSequence=Sequence([_code("CTAP", "CT ABDOMEN PELVIS")]),
        StudyID="1179",  # emptied; its digits may occur inside new UIDs
    )
    with Session(tmp_path / "s.db") as s:
        s.ingest(tmp_path / "dicom", workers=1, progress=False)
        s.anonymize(None)
        r = s.export(tmp_path / "out", safe=False, workers=1, progress=False)
    assert r.exported == 1, r.failed.to_dicts()
    [out] = list((tmp_path / "out").rglob("*.dcm"))
    ds = pydicom.dcmread(out)
    assert ds.ConvolutionKernel == "STANDARD" and ds.get("ProtocolName") != "STANDARD"
    assert ds.ProcedureCodeSequence[0].CodeMeaning == "CT ABDOMEN PELVIS"
    assert str(ds.PatientName).startswith("ANON_")


def test_a_kept_identity_value_fails_naming_path_and_attribute_then_can_be_acknowledged(
    tmp_path: Path,
) -> None:
    make_instance(tmp_path / "dicom" / "ct.dcm", PatientName="QUIRINIUS^ZEBEDEE", seed=4)
    keep = {"phi_tags": {"0020,4000": {"action": "KEEP"}}}  # ImageComments names the patient
    with Session(tmp_path / "s.db") as s:
        s.ingest(tmp_path / "dicom", workers=1, progress=False)
        s.anonymize(keep)
        r = s.export(tmp_path / "out", config=keep, safe=False, workers=1, progress=False)
        assert r.exported == 0 and r.failed.height == 1
        reason = r.failed["reason"][0]
        assert "00204000" in reason and "(0010,0010) PatientName" in reason
        assert "QUIRINIUS" not in reason.upper() and "ZEBEDEE" not in reason.upper()
        digest = re.search(r"value hash ([0-9a-f]{16})", reason)
        assert digest is not None
        # acknowledging that one value (by attribute and hash) lets the instance through
        # only when every identity value it holds there is acknowledged
        acks = []
        for _ in range(4):
            acks.append({"attribute": "PatientName", "value_hash": digest.group(1)})
            cfg = {**keep, "acknowledged": acks}
            r = s.export(tmp_path / "out", config=cfg, safe=False, workers=1, progress=False)
            if r.exported:
                break
            digest = re.search(r"value hash ([0-9a-f]{16})", r.failed["reason"][0])
            assert digest is not None
        assert r.exported == 1
        runs = s.sql("SELECT details FROM runs WHERE kind = 'export' ORDER BY started_at").rows()
        last = json.loads(runs[-1][0])
        assert {"tag": "00100010", "value_hash": acks[0]["value_hash"]} in last["acknowledged"]


def _encoded(ds: Dataset) -> tuple[bytes, int]:
    buf = io.BytesIO()
    ds.file_meta = pydicom.dataset.FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = pydicom.uid.ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = "1.2.3"
    ds.file_meta.MediaStorageSOPInstanceUID = "1.2.3.4"
    pydicom.dcmwrite(buf, ds, enforce_file_format=True)
    data = buf.getvalue()
    return data, 144 + int.from_bytes(data[140:144], "little")


def test_other_values_may_stay_only_in_elements_the_plan_keeps() -> None:
    ds = Dataset()
    ds.ConvolutionKernel = "STANDARD"  # kept (no plan row)
    ds.SeriesDescription = "HEAD"
    ds.ProcedureCodeSequence = Sequence([_code("A", "STANDARD"), _code("B", "OTHER")])
    data, start = _encoded(ds)
    standard = Token("STANDARD", False, "00181030", "ProtocolName", "1" * 16)

    def reason(paths: list[str], tokens: tuple[Token, ...] = (standard,)) -> str | None:
        leak = first_leak(data, start, plan_tree(paths), tokens, implicit=False)
        return None if leak is None else leak.reason

    assert reason([]) is None  # only in kept elements
    assert reason(["0008103E"]) is None  # a planned element without the value
    hit = reason(["00181210"])  # the plan wrote the kernel: it must not hold the value
    assert hit is not None and "00181210" in hit and "(0018,1030) ProtocolName" in hit
    assert "STANDARD" not in hit
    nested = reason(["00081032[0].00080104"])
    assert nested is not None and "00081032[0].00080104" in nested
    assert reason(["00081032[1].00080104"]) is None
    # identity values may occur nowhere, kept or not, and are found case-insensitively
    ident = Token("HEAD", True, "00100010", "PatientName", "2" * 16)
    found = reason([], (ident,))
    assert found is not None and "0008103E" in found and "identifying" in found
    assert first_leak(data, start, {}, [ident], implicit=False, out_rel="x/head/1.dcm")


@pytest.mark.parametrize(
    ("text", "token", "hit"),
    [
        ("TOSHIBA_MEC", "TOSHIBA", False),
        ("TOSHIBA MEC", "TOSHIBA", True),
        ("ANON_000008", "ANON", False),
        ("2.25.3311794", "1179", False),
        ("2.25.1179", "1179", False),
        ("1179.5", "1179", False),
        ("STUDY 1179", "1179", True),
        ("12\\1179", "1179", True),
        ("DOE^JOHN", "JOHN", True),
    ],
)
def test_precise_matching(text: str, token: str, hit: bool) -> None:
    from gantry.plan._match import contains

    assert contains(text, token) is hit
