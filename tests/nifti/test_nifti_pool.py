"""NIfTI conversion on a pool from a script without the ``__main__`` guard (as ingest and export)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

SCRIPT = """
from pathlib import Path
from gantry import Session
from gantry.testing import make_series
print("MAIN RUN", flush=True)
root = Path({root!r})
for n in range(8):  # enough series for the pool: 4 per worker
    make_series(root / "in" / str(n), kind="ct", slices=3, rows=8, columns=8, seed=n)
with Session(root / "s.db") as s:
    s.ingest(root / "in", workers=1, progress=False)
    s.anonymize()
    print("converted", s.export_nifti(root / "nii", layout="flat", workers=2, progress=False).converted)
"""


def test_export_nifti_workers_never_run_the_callers_script(tmp_path: Path) -> None:
    script = tmp_path / "no_guard.py"
    script.write_text(SCRIPT.format(root=str(tmp_path)))
    run = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stdout.count("MAIN RUN") == 1, run.stdout  # the workers did not re-run it
    assert "converted 8" in run.stdout
