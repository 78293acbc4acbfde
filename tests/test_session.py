"""Session lifecycle: close, context manager, re-opening in one process, another process's lock."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from gantry import Session
from gantry.errors import StoreError, StoreLockedError
from gantry.testing import make_instance


@pytest.fixture
def db(tmp_path: Path) -> Path:
    make_instance(tmp_path / "dicom" / "a.dcm", modality="CT")
    with Session(tmp_path / "p.db") as s:
        s.ingest(tmp_path / "dicom", workers=1, progress=False)
    return tmp_path / "p.db"


def _count(s: Session) -> int:
    return int(s.sql("SELECT count(*) AS n FROM instances")["n"][0])


def test_reopening_in_one_process_replaces_the_earlier_handle(db: Path) -> None:
    first = Session(db)
    assert _count(first) == 1
    second = Session(db)  # a re-run notebook cell
    assert _count(second) == 1
    with pytest.raises(StoreError, match="replaced by a newer Session"):
        first.sql("SELECT 1")
    first.close()  # closing the replaced handle leaves the new one working
    assert _count(second) == 1
    second.close()


def test_a_replaced_handle_with_unsaved_edits_warns(db: Path) -> None:
    first = Session(db)
    first.edit(where=None, set={"InstitutionName": "X"})
    with pytest.warns(UserWarning, match="1 unsaved edits"):
        second = Session(db)
    second.close()


def test_close_is_idempotent_and_a_closed_session_says_so(db: Path) -> None:
    s = Session(db)
    s.close()
    s.close()
    with pytest.raises(StoreError, match="was closed"):
        s.sql("SELECT 1")
    with Session(db) as again:  # the lock was released
        assert _count(again) == 1
    with pytest.raises(StoreError, match="was closed"):
        again.sql("SELECT 1")


def test_readers_are_not_replaced(db: Path) -> None:
    with Session(db) as writer, Session(db, read_only=True) as reader:
        assert _count(reader) == 1
        assert _count(writer) == 1


def test_another_process_holding_the_lock_is_named(db: Path) -> None:
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(
                f"""
                import sys
                from gantry import Session
                s = Session({str(db)!r})
                s.sql("SELECT 1")
                print("ready", flush=True)
                sys.stdin.readline()
                """
            ),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "ready"
        with pytest.raises(StoreLockedError) as info:
            Session(db)
        assert info.value.pid == holder.pid
        assert f"process {holder.pid}" in str(info.value)
        assert "read-only" in str(info.value)
    finally:
        assert holder.stdin is not None
        holder.stdin.close()
        holder.wait(timeout=60)
        if holder.stdout is not None:
            holder.stdout.close()
