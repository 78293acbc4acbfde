"""Export of odd real files pydicom bundles, found by sweeping every sample (issue h22s)."""

from __future__ import annotations

import shutil
import warnings
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file

from gantry import Session


def _export_one(tmp_path: Path, name: str) -> tuple[Path, Path, object]:
    src = tmp_path / "in" / name
    src.parent.mkdir()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        shutil.copy(get_testdata_file(name), src)
    with Session(tmp_path / "s.db") as s:
        s.ingest(src.parent, workers=1, progress=False)
        s.anonymize()
        result = s.export(tmp_path / "out", safe=False, workers=1, progress=False)
        out = s.sql("SELECT output_path FROM exports WHERE status = 'ok'")["output_path"]
    written = tmp_path / "out" / out[0] if len(out) else tmp_path / "missing"
    return src, written, result


def test_explicit_syntax_with_an_implicit_vr_data_set_exports(tmp_path: Path) -> None:
    # SC_rgb_jpeg.dcm: JPEG Baseline (explicit VR) in the meta, the data set written
    # implicit VR; pydicom keeps its elements raw with no VR, which dcmwrite cannot encode
    src, written, result = _export_one(tmp_path, "SC_rgb_jpeg.dcm")
    assert result.failed.height == 0, result.failed["reason"].to_list()
    assert result.exported == 1
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        before, after = pydicom.dcmread(src), pydicom.dcmread(written)
    assert after.ImageType == before.ImageType
    assert np.array_equal(after.pixel_array, before.pixel_array)  # pixels copied untouched
    # the pixel element is written in the output's encoding too (not copied implicit VR)
    copy = tmp_path / "check" / "x.dcm"
    copy.parent.mkdir()
    shutil.copy(written, copy)  # ingest refuses an export folder
    with Session(tmp_path / "check.db") as s:
        assert s.ingest(copy, workers=1, progress=False).skipped == 0


def test_a_name_spelled_like_a_vr_is_no_leak(tmp_path: Path) -> None:
    # OBXXXX1A.dcm: PatientName 'OB^^^^'; 'OB' is the VR of the file meta's first
    # element (and of other elements), a header's bytes and no value
    src, written, result = _export_one(tmp_path, "OBXXXX1A.dcm")
    assert result.failed.height == 0, result.failed["reason"].to_list()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        after = pydicom.dcmread(written)
    assert "OB" not in str(after.get("PatientName", ""))


@pytest.mark.parametrize(
    "name",
    [
        # a name part ('RG1') that JPEG 2000 bytes happen to spell, in the copied pixel data
        "RG1_J2KR.dcm",
        # a private OB value holding the CT Image Storage SOP Class UID, which the file
        # meta names too (a standard UID identifies no one)
        "J2K_pixelrep_mismatch.dcm",
    ],
)
def test_the_compliance_report_agrees_with_export_verification(tmp_path: Path, name: str) -> None:
    src = tmp_path / "in" / name
    src.parent.mkdir()
    shutil.copy(get_testdata_file(name), src)
    with Session(tmp_path / "s.db") as s:
        s.ingest(src.parent, workers=1, progress=False)
        s.anonymize()
        result = s.export(tmp_path / "out", workers=1, progress=False)
        assert result.exported == 1
        report = s.compliance_report(tmp_path / "out")
    assert report.compliant, report.problems.to_dicts()


def test_the_compliance_report_keeps_sr_times_as_clean_structured_content_does(
    tmp_path: Path,
) -> None:
    # test-SR.dcm has a TIME content item; with clean-structured-content the plan keeps
    # it (docs/anonymize.md: a shift by whole days leaves a time of day as it is), and
    # the report once called that Time (0040,A122) "still holds its original value"
    src = tmp_path / "in" / "test-SR.dcm"
    src.parent.mkdir()
    shutil.copy(get_testdata_file("test-SR.dcm"), src)
    cfg = {"privacy_profile": "comprehensive", "options": []}
    with Session(tmp_path / "s.db") as s:
        s.ingest(src.parent, workers=1, progress=False)
        s.anonymize(cfg)
        assert s.export(tmp_path / "out", config=cfg, workers=1, progress=False).exported == 1
        report = s.compliance_report(tmp_path / "out")
    assert report.compliant, report.problems.to_dicts()
