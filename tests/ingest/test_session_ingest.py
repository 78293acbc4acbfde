"""Session-level ingest: folders, clutter, idempotence, resume after a kill, progress."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from gantry import Session
from gantry.testing import make_clutter, make_corpus, make_instance


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    root = tmp_path_factory.mktemp("corpus")
    c = make_corpus(
        root / "dicom",
        patients=2,
        studies_per_patient=2,
        series_per_study=2,
        instances_per_series=2,
    )
    clutter = make_clutter(root / "dicom" / "clutter")
    return c, clutter, root


def test_ingest_indexes_corpus_and_records_clutter(corpus, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    c, clutter, root = corpus
    with Session(tmp_path / "s.db") as s:
        r = s.ingest(root / "dicom", workers=2, progress=False)
        n_inst = s.sql("SELECT count(*) AS n FROM instances")["n"][0]
        skipped = dict(s.sql("SELECT file_path, reason FROM skipped").iter_rows())
        info = s.info()
    # every corpus file is an instance; clutter that is valid DICOM is indexed too
    assert r.indexed == n_inst
    assert n_inst >= len(c.paths)
    assert skipped[str(clutter["empty"])] == "empty"
    assert skipped[str(clutter["text"])] == "not_dicom"
    assert skipped[str(clutter["truncated"])] in {"truncated", "unreadable"}
    assert skipped[str(clutter["dicomdir"])] == "dicomdir"
    assert info.totals["patients"] >= 2
    assert info.totals["duplicate_sop_uids"] >= 1  # the clutter's duplicate copy
    assert r.indexed + r.skipped == r.files_seen


def test_reingest_adds_nothing(corpus, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    _, _, root = corpus
    with Session(tmp_path / "s.db") as s:
        first = s.ingest(root / "dicom", workers=1, progress=False)
        second = s.ingest(root / "dicom", workers=1, progress=False)
        n = s.sql("SELECT count(*) AS n FROM instances")["n"][0]
        runs = s.sql("SELECT kind FROM runs WHERE kind = 'ingest'").height
    assert second.indexed == 0 and second.skipped == 0
    assert second.already_indexed == first.files_seen
    assert n == first.indexed
    assert runs == 2


def test_progress_callback_reaches_total(corpus, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    _, _, root = corpus
    seen: list[tuple[int, int]] = []
    with Session(tmp_path / "s.db") as s:
        s.ingest(
            root / "dicom", workers=1, progress=False, callback=lambda d, t: seen.append((d, t))
        )
    assert seen and seen[-1][0] == seen[-1][1]


def test_instances_join_elements_by_file_id(corpus, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    _, _, root = corpus
    with Session(tmp_path / "s.db") as s:
        s.ingest(root / "dicom", workers=1, progress=False)
        orphans = s.sql(
            "SELECT count(*) AS n FROM elements e ANTI JOIN instances i USING (file_id)"
        )["n"][0]
        nested = s.sql("SELECT count(*) AS n FROM elements WHERE depth > 0")["n"][0]
        private = s.sql("SELECT count(*) AS n FROM elements WHERE private_creator IS NOT NULL")[
            "n"
        ][0]
        series = s.sql("SELECT * FROM series")
    assert orphans == 0
    assert nested > 0 and private > 0
    assert "n_distinct_Rows" in series.columns


def test_missing_path_is_a_clear_error(tmp_path: Path) -> None:
    with Session(tmp_path / "s.db") as s, pytest.raises(FileNotFoundError):
        s.ingest(tmp_path / "nope", progress=False)


def test_killed_ingest_resumes_without_duplicates(tmp_path: Path) -> None:
    src = tmp_path / "many"
    for i in range(240):
        make_instance(
            src / f"d{i // 40}" / f"f{i:04d}.dcm", modality="CT", seed=i, rows=16, columns=16
        )
    db = tmp_path / "s.db"
    script = textwrap.dedent(
        f"""
        import gantry.ingest._runner as r
        r.MAX_BATCH = 10
        from gantry import Session
        with Session({str(db)!r}) as s:
            s.ingest({str(src)!r}, workers=1, progress=False,
                     callback=lambda d, t: print(d, flush=True))
        """
    )
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    # wait until at least one batch is committed, then kill hard
    for line in proc.stdout:
        if int(line.split()[0]) >= 30:
            break
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    proc.stdout.close()
    time.sleep(0.1)
    with Session(db) as s:
        partial = s.sql("SELECT count(*) AS n FROM instances")["n"][0]
        assert 0 < partial < 240
        r = s.ingest(src, workers=2, progress=False)
        total = s.sql("SELECT count(*) AS n, count(DISTINCT file_path) AS d FROM instances").row(0)
    assert r.already_indexed == partial
    assert total == (240, 240)
