"""Readers while a writer works, atomic store creation, workers that die with their parent."""

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
from gantry.errors import StoreError
from gantry.store import Store
from gantry.testing import make_instance


def _files(folder: Path, n: int) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        make_instance(folder / f"ct{i}.dcm", modality="CT", seed=i)
    return folder


def _child(code: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _stop(proc: subprocess.Popen[str]) -> None:
    proc.kill()
    proc.communicate()  # reaps it and closes the pipes


def _wait_for(proc: subprocess.Popen[str], word: str, timeout: float = 120) -> None:
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if word in line:
            return
        if not line and proc.poll() is not None:
            raise AssertionError(f"child ended before {word!r}: {proc.stderr.read()}")  # type: ignore[union-attr]
    raise AssertionError(f"child never printed {word!r}")


def test_an_idle_reader_never_blocks_a_writer(tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    with Session(db) as s:
        s.ingest(_files(tmp_path / "in", 2), workers=1, progress=False)
    with Session(db, read_only=True) as reader:
        with Session(db) as writer:  # opens while the reader is open and idle
            writer.ingest(_files(tmp_path / "more", 1), workers=1, progress=False)
        assert reader.sql("SELECT count(*) AS n FROM instances")["n"][0] == 2


def test_a_reader_in_another_process_opens_while_a_writer_works(tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    with Session(db) as s:
        s.ingest(_files(tmp_path / "in", 2), workers=1, progress=False)
    writer = _child(
        f"""
        import time
        from gantry import Session
        s = Session({str(db)!r})
        print("open", flush=True)
        time.sleep(120)
        """
    )
    try:
        _wait_for(writer, "open")
        with Session(db, read_only=True) as reader:  # no writer lock needed
            assert reader.sql("SELECT count(*) AS n FROM instances")["n"][0] == 2
            assert reader.sql("SELECT count(*) AS n FROM runs WHERE kind = 'ingest'")["n"][0] == 1
            assert reader.store.secret  # the catalog's meta came with the snapshot
    finally:
        _stop(writer)


def test_a_kill_during_store_creation_leaves_no_half_catalog(tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    # killed at a random moment of creation, many times: never a catalog without its schema
    for delay in (0.0, 0.01, 0.03, 0.06, 0.1):
        child = _child(
            f"""
            from gantry.store import Store
            print("go", flush=True)
            Store({str(db)!r})
            print("made", flush=True)
            """
        )
        _wait_for(child, "go")
        time.sleep(delay)
        _stop(child)
        if db.exists():
            with Store(db, read_only=True) as store:
                assert store.get_meta("schema_version") is not None
        else:
            with pytest.raises(StoreError):
                Store(db, read_only=True)
        for leftover in db.parent.glob(f"{db.name}*"):
            if leftover != db:
                leftover.unlink()
        if db.exists():
            db.unlink()
    with Store(db) as store:  # a writer always completes what a killed one began
        assert store.get_meta("schema_version") is not None


def _descendants(pid: int) -> set[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    found: set[int] = set()
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.add(child)
            todo.append(child)
    return found


def _alive(pid: int) -> bool:
    try:
        state = (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="needs /proc (Linux)")
def test_workers_die_with_a_killed_main_process(tmp_path: Path) -> None:
    folder = _files(tmp_path / "in", 8)
    child = _child(
        f"""
        import time
        from gantry import Session

        def stall(done, total):
            print("committed", flush=True)
            time.sleep(120)  # the pool's workers are alive and idle now

        if __name__ == "__main__":
            with Session({str(tmp_path / "s.db")!r}) as s:
                s.ingest({str(folder)!r}, workers=2, progress=False, callback=stall)
        """
    )
    try:
        _wait_for(child, "committed")
        family = _descendants(child.pid)
        assert len(family) >= 3  # the fork server, the resource tracker, workers
        os.kill(child.pid, signal.SIGKILL)
        child.wait()  # reaped: the workers' parent is really gone
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and any(_alive(p) for p in family):
            time.sleep(0.2)
        assert not [p for p in family if _alive(p)]
    finally:
        _stop(child)
