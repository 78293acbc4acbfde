"""Test folders can be run together: each ``conftest.py`` is imported under its own name.

``tests/`` has no ``__init__.py``; pytest's ``importlib`` import mode (in
``pyproject.toml``) keeps the folders' ``conftest.py`` files from clashing
as one module named ``conftest`` when ``--doctest-modules`` collects them.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_folders_with_their_own_conftest_collect_together() -> None:
    conftests = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "tests").rglob("conftest.py"))
    assert len(conftests) >= 2
    args = [*conftests, "tests/test_collect.py"]
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-p", "no:cacheprovider", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "import file mismatch" not in done.stdout
