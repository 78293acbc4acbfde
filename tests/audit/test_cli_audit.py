"""The audit verbs in-process: ``config init``, ``audit``, ``preview``."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest
from click.testing import CliRunner

from gantry import Session
from gantry.cli import cli
from gantry.config import load_config
from gantry.testing import make_instance


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("cli")
    make_instance(root / "dicom" / "ct.dcm", modality="CT")
    make_instance(root / "dicom" / "us.dcm", modality="US", seed=1)
    with Session(root / "p.db") as s:
        s.ingest(root / "dicom", workers=1, progress=False)
    return root / "p.db"


def test_config_init(tmp_path: Path) -> None:
    target = tmp_path / "gantry.yaml"
    result = CliRunner().invoke(cli, ["config", "init", str(target)])
    assert result.exit_code == 0, result.output
    assert load_config(target) == load_config(None)
    again = CliRunner().invoke(cli, ["config", "init", str(target)])
    assert again.exit_code == 1 and "exists" in again.output
    forced = CliRunner().invoke(cli, ["config", "init", str(target), "--force"])
    assert forced.exit_code == 0


def test_session_create_config(tmp_path: Path) -> None:
    with Session(tmp_path / "p.db") as s:
        written = s.create_config(tmp_path / "cfg" / "gantry.yaml")
    assert load_config(written) == load_config(None)


@pytest.mark.parametrize("suffix", [".parquet", ".csv"])
def test_audit_prints_summary_and_writes_findings(db: Path, tmp_path: Path, suffix: str) -> None:
    out = tmp_path / f"findings{suffix}"
    config = tmp_path / "gantry.yaml"
    CliRunner().invoke(cli, ["config", "init", str(config)])
    result = CliRunner().invoke(
        cli, ["audit", "--db", str(db), "--config", str(config), "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    assert "profile-action" in result.output and "burned-in" in result.output
    assert "1 instances unresolved" in result.output
    frame = pl.read_parquet(out) if suffix == ".parquet" else pl.read_csv(out, infer_schema=False)
    with Session(db, read_only=True) as s:
        assert frame.height == s.sql("SELECT count(*) FROM findings").item()
    assert {"file_id", "path", "rule", "severity", "message", "resolved"} <= set(frame.columns)


def test_audit_by_and_fail_on_unresolved(db: Path) -> None:
    result = CliRunner().invoke(cli, ["audit", "--db", str(db), "--by", "modality", "--no-save"])
    assert result.exit_code == 0, result.output
    assert "US" in result.output and "CT" in result.output
    failing = CliRunner().invoke(cli, ["audit", "--db", str(db), "--fail-on-unresolved"])
    assert failing.exit_code == 3


def test_preview(db: Path, tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["preview", "--db", str(db)])
    assert result.exit_code == 0, result.output
    assert "patient_name" in result.output and "remap UID" in result.output
    out = tmp_path / "preview.csv"
    written = CliRunner().invoke(
        cli, ["preview", "--db", str(db), "--kept", "--format", "csv", "--out", str(out)]
    )
    assert written.exit_code == 0, written.output
    assert "keep" in pl.read_csv(out)["effect"].to_list()


def test_errors_are_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("privacy_profile: basci\n")
    result = CliRunner().invoke(
        cli, ["audit", "--db", str(tmp_path / "p.db"), "--config", str(bad)]
    )
    assert result.exit_code == 2
    assert "basci" in result.output and "Traceback" not in result.output
