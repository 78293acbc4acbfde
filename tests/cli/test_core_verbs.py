"""The core verbs in-process: demo, ingest, sql, info, anonymize, plan, export, maps."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from click.testing import CliRunner

import gantry
from gantry.cli import cli, main


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    root = tmp_path_factory.mktemp("cli")
    result = CliRunner().invoke(cli, ["demo", str(root / "d"), "--patients", "2"])
    assert result.exit_code == 0, result.output
    return root / "d", result.output


@pytest.fixture(scope="module")
def demo(demo_run: tuple[Path, str]) -> Path:
    return demo_run[0]


def test_demo_runs_the_pipeline(demo: Path) -> None:
    assert (demo / "export" / "manifest.csv").is_file()
    assert (demo / "maps" / "patient_map.csv").is_file()
    assert list((demo / "export").rglob("*.dcm"))


def test_demo_scans_burned_in_risks(demo_run: tuple[Path, str]) -> None:
    """Secondary captures without text are cleared, the screen captures are redacted, and
    nothing is excluded for a burned-in text risk."""
    import polars as pl

    demo, output = demo_run
    assert re.search(r"== scan: OCR read every frame of the (\d+) images", output)
    scanned = int(re.search(r"of the (\d+) images", output).group(1))  # type: ignore[union-attr]
    assert f"{scanned - 2} cleared (no text), 2 with text to redact" in output
    from gantry import Session

    with Session(demo / "project.db", read_only=True) as s:  # no burned-in risk is left
        unresolved = s.audit(demo / "gantry.yaml").unresolved()
    assert unresolved.filter(pl.col("rule") == "burned-in").height == 0
    manifest = pl.read_csv(demo / "export" / "manifest.csv")
    boxed = manifest.filter(pl.col("redacted_boxes").is_not_null() & (pl.col("Modality") != "US"))
    assert boxed.height == 2  # the screen captures; the ultrasound has its machine zone


def test_sql_formats(demo: Path, tmp_path: Path) -> None:
    db = str(demo / "project.db")
    r = CliRunner().invoke(
        cli,
        [
            "sql",
            "SELECT Modality, count(*) AS n FROM instances GROUP BY 1 ORDER BY 1",
            "--db",
            db,
            "--format",
            "json",
        ],
    )
    assert r.exit_code == 0, r.output
    rows = json.loads(r.output)
    assert {row["Modality"] for row in rows} >= {"CT", "MR"}
    r = CliRunner().invoke(
        cli,
        [
            "sql",
            "SELECT PixelSpacing FROM instances WHERE PixelSpacing IS NOT NULL LIMIT 1",
            "--db",
            db,
            "--format",
            "csv",
        ],
    )
    assert r.exit_code == 0 and "\\" in r.output  # lists joined DICOM-style
    out = tmp_path / "x.parquet"
    r = CliRunner().invoke(
        cli, ["sql", "SELECT * FROM series", "--db", db, "--format", "parquet", "--out", str(out)]
    )
    assert r.exit_code == 0 and out.stat().st_size > 0


def test_bad_sql_is_one_clear_line(demo: Path) -> None:
    r = CliRunner().invoke(cli, ["sql", "SELEC 1", "--db", str(demo / "project.db")])
    assert r.exit_code == 2
    assert r.output.startswith("error: the query could not be run")
    assert "Traceback" not in r.output


def test_info_and_plan(demo: Path) -> None:
    db = str(demo / "project.db")
    r = CliRunner().invoke(cli, ["info", "--db", db])
    assert r.exit_code == 0 and "By modality" in r.output and "Skipped files by reason" in r.output
    r = CliRunner().invoke(cli, ["info", "--db", db, "--json"])
    assert r.exit_code == 0, r.output
    doc = json.loads(r.output)
    assert doc["gantry_version"] == gantry.__version__
    assert doc["totals"]["patients"] >= 2 and doc["totals"]["instances"] > 0
    assert sum(row["instances"] for row in doc["by_modality"]) == doc["totals"]["instances"]
    assert {row["Modality"] for row in doc["by_modality"]} >= {"CT", "MR"}
    assert sum(row["files"] for row in doc["skipped_by_reason"]) == doc["totals"]["skipped"]
    r = CliRunner().invoke(
        cli, ["plan", "--db", db, "--where", "action = 'U'", "--limit", "5", "--format", "csv"]
    )
    assert r.exit_code == 0
    lines = r.stdout.strip().splitlines()  # the deprecation note of --where is on stderr
    assert lines[0].startswith("file_id,path,tag") and len(lines) == 6


def test_ingest_anonymize_export_maps(tmp_path: Path) -> None:
    from gantry.testing import make_corpus

    make_corpus(
        tmp_path / "dicom",
        patients=1,
        studies_per_patient=1,
        series_per_study=1,
        modalities=("CT",),
    )
    db = str(tmp_path / "s.db")
    runner = CliRunner()
    r = runner.invoke(cli, ["ingest", str(tmp_path / "dicom"), "--db", db, "-q", "-j", "1"])
    assert r.exit_code == 0 and "indexed 3 instances" in r.output
    r = runner.invoke(cli, ["anonymize", "--db", db])
    assert r.exit_code == 0 and "plan:" in r.output
    r = runner.invoke(
        cli,
        [
            "export",
            str(tmp_path / "out"),
            "--db",
            db,
            "-q",
            "-j",
            "1",
            "--query",
            "Modality = 'CT'",
        ],
    )
    assert r.exit_code == 0, r.output
    assert "exported 3 files" in r.output
    r = runner.invoke(cli, ["maps", str(tmp_path / "maps"), "--db", db])
    assert r.exit_code == 0 and (tmp_path / "maps" / "uid_map.csv").exists()


def test_main_entry_point_help(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["--help"])
    assert info.value.code == 0
    assert "ingest" in capsys.readouterr().out
