"""kill -9 at a random point of ingest, save, export and compact; the resume loses nothing,
doubles nothing and leaves nothing behind. Also: a seeded slice of the fuzzing campaign."""

from __future__ import annotations

import json
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pydicom
import pytest

from gantry import Session
from gantry.export._apply import STAGING
from gantry.model import load_edits, pixel_edit_locations, read_pixel_edit
from gantry.store._layout import EXPORT_MARKER
from gantry.testing import make_instance

N = 10
SHAPE = (64, 64)


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("kill") / "in"
    folder.mkdir()
    for i in range(N):
        make_instance(folder / f"ct{i}.dcm", modality="CT", seed=i)
    return folder


def _ready_session(db: Path, inputs: Path, *, with_pixels: bool = False) -> None:
    with Session(db) as s:
        s.ingest(inputs, workers=1, progress=False)
        s.anonymize(None)
        if with_pixels:
            for value in (1, 2):  # two saves: the first blob is superseded
                for inst in s.instances():
                    inst.pixel_array = np.full(SHAPE, value, np.int16)
                s.save()


_BODY = {
    "ingest": "s.ingest({inputs!r}, workers=2, progress=False)",
    "export": "s.export({out!r}, workers=2, progress=False)",
    "save": (
        "for inst in s.instances():\n"
        "    inst.set('PatientName', 'AFTER^KILL')\n"
        "    inst.pixel_array = np.full({shape!r}, 3, np.int16)\n"
        "s.save()"
    ),
    "compact": "s.compact()",
}


def _kill_during(op: str, db: Path, inputs: Path, out: Path, delay: float) -> None:
    body = _BODY[op].format(inputs=str(inputs), out=str(out), shape=SHAPE)
    code = (
        "import numpy as np\nfrom gantry import Session\n"
        f"if __name__ == '__main__':\n    s = Session({str(db)!r})\n"
        "    print('go', flush=True)\n" + textwrap.indent(body, "    ")
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    assert "go" in proc.stdout.readline()
    time.sleep(delay)
    proc.send_signal(signal.SIGKILL)
    proc.communicate()


def _nothing_left_behind(db: Path) -> None:
    with Session(db) as s:  # a writer's open cleans what a killed one was writing
        layout = s.store.layout
        assert list(layout.tmp.iterdir()) == []
        for folder in (layout.batches, layout.tables):
            assert [p.name for p in folder.glob(".*")] == []


@pytest.mark.parametrize("op", ["ingest", "export", "save", "compact"])
@pytest.mark.parametrize("draw", [0, 1])
def test_kill_at_a_random_point_then_resume(
    op: str, draw: int, inputs: Path, tmp_path: Path
) -> None:
    delay = random.Random(f"{op}:{draw}").uniform(0.0, 1.5)
    db, out = tmp_path / "s.db", tmp_path / "out"
    if op != "ingest":
        _ready_session(db, inputs, with_pixels=op == "compact")
    _kill_during(op, db, inputs, out, delay)

    with Session(db) as s:  # the resume: the same operation again
        if op == "ingest":
            s.ingest(inputs, workers=1, progress=False)
        elif op == "export":
            s.export(out, workers=1, progress=False)
        elif op == "save":
            for inst in s.instances():
                inst.set("PatientName", "AFTER^KILL")
                inst.pixel_array = np.full(SHAPE, 3, np.int16)
            s.save()
        else:
            s.compact()

        ids = s.sql("SELECT file_id FROM instances")["file_id"]
        assert len(ids) == N and ids.n_unique() == N  # nothing lost, nothing doubled
        if op == "export":
            files = sorted(out.rglob("*.dcm"))
            assert len(files) == N
            assert len({pydicom.dcmread(f).SOPInstanceUID for f in files}) == N
            manifest = json.loads((out / "manifest.json").read_text())
            assert manifest["count"] == N
            assert not (out / STAGING).exists()
            assert [p.name for p in out.rglob(".*")] == [EXPORT_MARKER]
        if op in ("save", "compact"):
            edits = load_edits(s.store)
            if op == "save":
                names = edits.filter(edits["keyword"] == "PatientName")
                assert names.height == N and set(names["value"]) == {'"AFTER^KILL"'}
            locations = pixel_edit_locations(s.store)
            assert len(locations) == N
            expected = 3 if op == "save" else 2
            for fid in locations:
                pixels = read_pixel_edit(s.store, fid)
                assert pixels is not None and int(pixels.max()) == expected
    _nothing_left_behind(db)


def test_a_seeded_fuzz_slice(tmp_path: Path) -> None:
    """No crash, no hang over 10 CPU-s, peak memory under 1 GB, every bad file with a reason."""
    code = textwrap.dedent(
        f"""
        import json
        from pathlib import Path
        import pydicom
        from gantry.testing._fuzz import run_fuzz

        base = Path(pydicom.__file__).parent / "data" / "test_files"
        samples = [base / n for n in ("CT_small.dcm", "MR_small_RLE.dcm", "rtplan.dcm")]
        if __name__ == "__main__":
            report = run_fuzz(samples, {str(tmp_path)!r}, per_family=1, seed=22)
            # VmHWM, not ru_maxrss: ru_maxrss keeps the forking pytest's peak across exec
            status = Path("/proc/self/status").read_text()
            peak = int(status.split("VmHWM:")[1].split()[0]) / 1024
            print(json.dumps({{"files": report.files, "outcomes": report.outcomes,
                "exports": report.export_outcomes, "slowest_cpu": report.slowest_cpu,
                "problems": report.problems, "peak_mb": peak}}))
        """
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert report["problems"] == []
    assert sum(report["outcomes"].values()) == report["files"] == 33
    assert "crash" not in report["outcomes"]
    assert report["slowest_cpu"] < 10  # CPU seconds: a hang, not a starved machine
    assert report["peak_mb"] < 1024
    assert "CANARY" not in proc.stderr
