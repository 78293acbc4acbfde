"""``preview`` predicts export verification failures; the compliance report gives the same verdict."""

from __future__ import annotations

import re
from pathlib import Path

import polars as pl
import pydicom
from click.testing import CliRunner
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from gantry import Session
from gantry.cli import cli
from gantry.testing import make_instance

NAME = "QUIRINIUS^ZEBEDEE"
KEEP_COMMENTS = {"phi_tags": {"0020,4000": {"action": "KEEP"}}}  # ImageComments names the patient


def _ingested(tmp_path: Path, **overrides: object) -> Session:
    make_instance(tmp_path / "dicom" / "ct.dcm", **overrides)
    s = Session(tmp_path / "s.db")
    s.ingest(tmp_path / "dicom", workers=1, progress=False)
    return s


def test_preview_predicts_the_failure_export_then_gives(tmp_path: Path) -> None:
    s = _ingested(tmp_path, PatientName=NAME, ImageComments=f"seen by {NAME}", seed=4)
    with s:
        predicted = s.preview_failures(KEEP_COMMENTS)
        # nothing is written by a preview: no pseudonym numbers, no plan, no files
        assert "pseudonyms" not in s.store.table_names() and "plan" not in s.store.table_names()
        assert predicted.height >= 1 and predicted["file_id"].n_unique() == 1
        assert set(predicted["path"]) == {"00204000"}
        assert set(predicted["keyword"]) == {"PatientName"} and predicted["identity"].all()
        text = str(predicted.to_dicts()).upper()
        assert "QUIRINIUS" not in text and "ZEBEDEE" not in text
        s.anonymize(KEEP_COMMENTS)
        r = s.export(tmp_path / "out", config=KEEP_COMMENTS, safe=False, workers=1, progress=False)
        assert r.exported == 0 and r.failed.height == 1
        assert r.failed["file_id"][0] == predicted["file_id"][0]
        assert r.failed["reason"][0] in set(predicted["reason"])
        # acknowledging what preview lists clears both the prediction and the export
        acks = [{"attribute": "PatientName", "value_hash": h} for h in predicted["value_hash"]]
        cfg = {**KEEP_COMMENTS, "acknowledged": acks}
        assert s.preview_failures(cfg).height == 0
        s.anonymize(cfg)
        r = s.export(tmp_path / "out", config=cfg, safe=False, workers=1, progress=False)
        assert r.exported == 1
        # the compliance report applies the same rules and the same acknowledgements (its
        # profile check still names the comments the config keeps against the profile)
        report = s.compliance_report(r, profile=cfg)
        assert set(report.problems["rule"]) == {"removed"}
        assert set(report.problems["keyword"]) == {"ImageComments"}
        strict = s.compliance_report(r, profile=KEEP_COMMENTS)
        leak = strict.problems.filter(pl.col("rule") == "identifying-values")
        assert leak.select("keyword", "path").rows() == [("PatientName", "00204000")]
        digest = re.search(r"value hash ([0-9a-f]{16})", leak["detail"][0])
        assert digest is not None and digest.group(1) in set(predicted["value_hash"])


def test_a_shifted_date_equal_to_the_birth_date_is_predicted(tmp_path: Path) -> None:
    """An identity value inside a value the plan writes: named before export, then by export."""
    same = {"PatientID": "P-77123", "StudyDate": "20200102"}
    s = _ingested(tmp_path, PatientBirthDate="19700101", seed=2, **same)
    with s:
        s.anonymize(None)
        shifted = s.sql("SELECT new_value FROM plan WHERE path = '00080020'")["new_value"][0]
        # a second file of the patient whose birth date is the study date after the shift
        make_instance(tmp_path / "dicom" / "b.dcm", PatientBirthDate=shifted, seed=3, **same)
        s.ingest(tmp_path / "dicom", workers=1, progress=False)
        predicted = s.preview_failures(None)
        assert predicted.height and predicted["file_id"].n_unique() == 1
        assert set(predicted["keyword"]) == {"PatientBirthDate"}
        assert "00080020" in set(predicted["path"])
        s.anonymize(None)
        r = s.export(tmp_path / "out", safe=False, workers=1, progress=False)
        assert r.exported == 1 and r.failed.height == 1
        assert r.failed["file_id"][0] == predicted["file_id"][0]
        assert r.failed["reason"][0] in set(predicted["reason"])


def test_default_export_of_clean_data_is_predicted_clean(tmp_path: Path) -> None:
    def code(meaning: str) -> Dataset:
        item = Dataset()
        item.CodeValue, item.CodingSchemeDesignator, item.CodeMeaning = "A", "99L", meaning
        return item

    s = _ingested(
        tmp_path,
        PatientName="ANON",
        InstitutionName="TOSHIBA",
        Manufacturer="TOSHIBA_MEC",
        ProtocolName="STANDARD",
        ConvolutionKernel="STANDARD",
        StudyDescription="CT ABDOMEN PELVIS",
        ProcedureCodeSequence=Sequence([code("CT ABDOMEN PELVIS")]),
        StudyID="1179",
    )
    with s:
        assert s.preview_failures(None).height == 0
        s.anonymize(None)
        r = s.export(tmp_path / "out", safe=False, workers=1, progress=False)
        assert r.exported == 1
        report = s.compliance_report(r)
        assert report.compliant, report.problems.to_dicts()


def test_cli_preview_warns_of_predicted_failures(tmp_path: Path) -> None:
    s = _ingested(tmp_path, PatientName=NAME, ImageComments=f"seen by {NAME}", seed=4)
    s.close()
    cfg = tmp_path / "keep.yaml"
    cfg.write_text('version: 2\nphi_tags:\n  "0020,4000": {action: KEEP}\n')
    r = CliRunner().invoke(cli, ["preview", "--db", str(tmp_path / "s.db"), "--config", str(cfg)])
    assert r.exit_code == 0, r.output
    assert "export verification would fail 1 instance(s)" in r.output
    assert "00204000" in r.output and "PatientName" in r.output
    assert "QUIRINIUS" not in r.output.upper()
    clean = CliRunner().invoke(cli, ["preview", "--db", str(tmp_path / "s.db")])
    assert clean.exit_code == 0 and "would fail" not in clean.output
    assert pydicom.dcmread(tmp_path / "dicom" / "ct.dcm").ImageComments.startswith("seen by")
