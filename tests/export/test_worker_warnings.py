"""Warnings raised in export workers come back with the results: masked, counted, reported."""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

import pytest
from click.testing import CliRunner

from gantry import Session
from gantry.cli import cli
from gantry.testing import make_instance

CANARY_DIR = "CANARY_DOE^JANE"
CANARY_UID = "1.2.826.0.1.3680043.55512345"


@pytest.fixture
def source(tmp_path: Path) -> Path:
    root = tmp_path / CANARY_DIR
    root.mkdir()
    # an invalid UID (letters) that pydicom warns about, quoting it, when it reads it
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for i in range(2):
            make_instance(
                root / f"a{i}.dcm", modality="CT", seed=i, FrameOfReferenceUID=CANARY_UID + ".X9"
            )
    return root


@pytest.mark.parametrize("workers", [1, 2])  # in process, and two worker processes
def test_worker_warnings_are_counted_and_logged_masked(
    source: Path, tmp_path: Path, workers: int, caplog: pytest.LogCaptureFixture
) -> None:
    with Session(tmp_path / "s.db") as s:
        s.ingest(source, workers=1, progress=False)
        s.anonymize(None)
        with caplog.at_level(logging.WARNING, logger="gantry"):
            r = s.export(tmp_path / "out", workers=workers, progress=False, compression="rle")
    assert r.exported == 2 and r.warnings == 2 and r.as_dict()["warnings"] == 2
    lines = [rec.getMessage() for rec in caplog.records if rec.name == "gantry"]
    assert lines.count(lines[0]) == 2 and lines[0].startswith(
        "UserWarning: Invalid value for VR UI"
    )
    assert CANARY_UID not in caplog.text and "CANARY" not in caplog.text


def test_the_cli_notes_warnings_from_worker_processes(source: Path, tmp_path: Path) -> None:
    db = str(tmp_path / "s.db")
    runner = CliRunner()
    for args in (["ingest", str(source), "-j", "1", "-q"], ["anonymize"]):
        assert runner.invoke(cli, [*args, "--db", db]).exit_code == 0
    r = runner.invoke(
        cli, ["export", str(tmp_path / "out"), "--db", db, "-j", "2", "--compression", "rle"]
    )
    assert r.exit_code == 0, r.output
    assert "note: 2 warning(s) about the input files" in r.stderr
    assert CANARY_UID not in r.output and "CANARY" not in r.output
