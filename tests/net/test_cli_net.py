"""``gantry pacs …`` against a real Orthanc, in-process."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

import gantry.net
from gantry import Session
from gantry.cli import cli
from gantry.testing import make_corpus
from gantry.testing._servers import Orthanc


def test_net_public_names() -> None:
    assert gantry.net.__all__ == sorted(gantry.net.__all__, key=lambda n: (not n.isupper(), n))
    assert {"Peer", "PullResult", "echo", "find", "listen", "pull", "send_files"} <= set(
        gantry.net.__all__
    )


def test_pacs_echo_find_move_get(pacs: Orthanc, tmp_path: Path, move_port: int) -> None:
    corpus = make_corpus(tmp_path / "dicom", patients=2, studies_per_patient=1,
                         series_per_study=1, instances_per_series=2)  # fmt: skip
    for p in corpus.paths:
        pacs.upload(p)
    run = CliRunner().invoke
    r = run(cli, ["pacs", "echo", pacs.url])
    assert r.exit_code == 0 and "ok in" in r.output
    r = run(cli, ["pacs", "echo", pacs.url.replace("ORTHANC@", "WRONG@")])
    assert r.exit_code == 2 and "association rejected" in r.output
    r = run(cli, ["pacs", "find", pacs.url, "--level", "patient", "--format", "csv"])
    assert r.exit_code == 0, r.output
    lines = [line for line in r.output.splitlines() if line]
    assert lines[0].startswith("PatientID,PatientName")
    assert sorted(line.split(",")[0] for line in lines[1:]) == sorted(
        p.patient_id for p in corpus.patients
    )
    db = tmp_path / "s.db"
    first = corpus.patients[0].patient_id
    r = run(cli, ["pacs", "move", pacs.url, "--db", str(db), "-q", f"PatientID={first}",
                  "--port", str(move_port)])  # fmt: skip
    assert r.exit_code == 0, r.output
    assert "1 matches; received 2 files" in r.output
    r = run(cli, ["pacs", "get", pacs.url, "--db", str(db), "--level", "SERIES"])
    assert r.exit_code == 0, r.output
    assert "2 matches; received 4 files" in r.output and "(2 already there)" in r.output
    with Session(db, read_only=True) as s:
        assert s.sql("SELECT count(*) FROM instances").item() == 4
    r = run(cli, ["pacs", "find", pacs.url, "-q", "nonsense"])
    assert r.exit_code == 2 and "`--query` must be KEYWORD=VALUE" in r.output
