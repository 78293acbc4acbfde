"""A process killed while saving or compacting loses nothing saved before it."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from gantry import Session
from gantry.model import load_edits, pixel_edit_locations, read_pixel_edit
from gantry.model._edits import CRASH_ENV
from gantry.testing import make_instance

SHAPE, DTYPE = (64, 64), np.int16


@pytest.fixture()
def saved_once(tmp_path: Path) -> tuple[Path, str, np.ndarray]:
    """A session with one saved metadata edit and two saved pixel edits (one superseded)."""
    make_instance(tmp_path / "dicom" / "ct.dcm", modality="CT")
    db = tmp_path / "s.db"
    with Session(db) as s:
        s.ingest(tmp_path / "dicom", workers=1, progress=False)
        inst = s.instances()[0]
        assert inst.pixel_array.shape == SHAPE and inst.pixel_array.dtype == DTYPE
        inst.set("PatientName", "FIRST^SAVE")
        inst.pixel_array = np.full(SHAPE, 1, DTYPE)
        s.save()
        first = np.full(SHAPE, 2, DTYPE)
        inst.pixel_array = first
        s.save()
        return db, inst.sop_instance_uid, first


def _run_child(db: Path, sop: str, action: str, crash_at: str) -> int:
    code = textwrap.dedent(
        f"""
        import numpy as np
        from gantry import Session
        s = Session({str(db)!r})
        inst = s.instance({sop!r})
        inst.set("PatientName", "SECOND^SAVE")
        inst.pixel_array = np.full({SHAPE!r}, 3, np.{np.dtype(DTYPE).name})
        if {action!r} == "save":
            s.save()
        else:
            s.save()
            inst.pixel_array = np.full({SHAPE!r}, 4, np.{np.dtype(DTYPE).name})
            s.save()
            s.compact()
        raise SystemExit(0)
        """
    )
    env = {**os.environ, CRASH_ENV: crash_at}
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, timeout=120)
    assert proc.returncode in (0, 77), proc.stderr.decode()
    return proc.returncode


@pytest.mark.parametrize(
    ("crash_at", "committed"),
    [("save:after-sidecar", False), ("save:before-commit", False), ("save:after-commit", True)],
)
def test_killed_save_keeps_the_previous_state(
    saved_once: tuple[Path, str, np.ndarray], crash_at: str, committed: bool
) -> None:
    db, sop, first = saved_once
    assert _run_child(db, sop, "save", crash_at) == 77
    with Session(db) as s:
        inst = s.instance(sop)
        if committed:
            assert inst.patient_name == "SECOND^SAVE"
            np.testing.assert_array_equal(inst.pixel_array, np.full(SHAPE, 3, DTYPE))
        else:
            assert inst.patient_name == "FIRST^SAVE"
            np.testing.assert_array_equal(inst.pixel_array, first)
            # orphan bytes may follow in the sidecar, but no row points at them
            live = pixel_edit_locations(s.store)
            assert len(live) == 1
        assert len(load_edits(s.store)) == 1
        # the session keeps working: save again, compact, read back
        inst.pixel_array = np.full(SHAPE, 5, DTYPE)
        s.save()
        s.compact()
        np.testing.assert_array_equal(
            read_pixel_edit(s.store, inst.file_id), np.full(SHAPE, 5, DTYPE)
        )


@pytest.mark.parametrize("crash_at", ["compact:after-copy", "compact:after-commit"])
def test_killed_compaction_leaves_a_valid_sidecar(
    saved_once: tuple[Path, str, np.ndarray], crash_at: str
) -> None:
    db, sop, _ = saved_once
    assert _run_child(db, sop, "compact", crash_at) == 77
    with Session(db) as s:
        inst = s.instance(sop)
        assert inst.patient_name == "SECOND^SAVE"
        np.testing.assert_array_equal(inst.pixel_array, np.full(SHAPE, 4, DTYPE))
        sidecars = sorted(p.name for p in db.with_suffix(".gantry").glob("pixels*.bin"))
        assert len(sidecars) == 2  # the old or the new one is a leftover
        assert s.compact() > 0  # the leftover is reclaimed
        assert len(list(db.with_suffix(".gantry").glob("pixels*.bin"))) == 1
        np.testing.assert_array_equal(
            read_pixel_edit(s.store, inst.file_id), np.full(SHAPE, 4, DTYPE)
        )
