"""The demo's own export is COMPLIANT; a leak planted into it is still found and named."""

from __future__ import annotations

import shutil
from pathlib import Path

import pydicom
from click.testing import CliRunner

from gantry import Session
from gantry.cli import cli


def test_demo_export_is_compliant_and_a_planted_leak_fails_it(tmp_path: Path) -> None:
    root = tmp_path / "d"
    made = CliRunner().invoke(cli, ["demo", str(root), "--patients", "2"])
    assert made.exit_code == 0, made.output
    args = ["report", "compliance", str(root / "export"), "--db", str(root / "project.db")]
    args += ["--config", str(root / "gantry.yaml"), "--out", str(tmp_path / "report")]
    clean = CliRunner().invoke(cli, args)
    assert clean.exit_code == 0, clean.output
    assert clean.output.startswith("COMPLIANT"), clean.output

    # the original PatientID of one exported file, written into an attribute the plan keeps
    with Session(root / "project.db", read_only=True) as s:
        rows = s.sql(
            "SELECT e.output_path, i.PatientID FROM exports e JOIN instances i USING (file_id) "
            "WHERE e.status = 'ok' AND i.PatientID IS NOT NULL ORDER BY e.output_path LIMIT 1"
        )
    rel, patient_id = rows.row(0)
    leaky = tmp_path / "leaky"
    shutil.copytree(root / "export", leaky)
    path = leaky / rel
    ds = pydicom.dcmread(path)
    ds.SoftwareVersions = f"v2 {patient_id}"
    ds.save_as(path, enforce_file_format=True)
    with Session(root / "project.db", read_only=True) as s:
        # no export is recorded into the copy: its files are searched for every identity value
        report = s.compliance_report(leaky, profile=root / "gantry.yaml")
    assert not report.compliant
    leaks = report.leaks.filter(report.leaks["output_path"] == rel)
    assert leaks.select("rule", "keyword", "path").rows() == [
        ("identifying-values", "PatientID", "00181020")
    ]
    assert patient_id not in str(report.to_dict())
