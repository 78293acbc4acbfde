"""``import gantry`` stays light: heavy libraries load with the verb that needs them."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

HEAVY = ("duckdb", "numpy", "polars", "pyarrow", "pydicom", "importlib.metadata")


def _loaded_after(code: str) -> set[str]:
    """The top-level modules of HEAVY loaded in a fresh interpreter after ``code``."""
    probe = f"{code}\nimport json, sys\nprint(json.dumps(sorted(sys.modules)))"
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    ).stdout
    return set(json.loads(out.splitlines()[-1])) & set(HEAVY)


@pytest.mark.parametrize(
    "code",
    [
        "import gantry",
        "from gantry import Session",
        "from gantry import Session\nSession('never-made.db')",
    ],
)
def test_import_loads_no_heavy_library(code: str) -> None:
    assert _loaded_after(code) == set()


def test_first_verb_loads_what_it_needs(tmp_path) -> None:
    code = (
        "from gantry import Session\n"
        f"s = Session({str(tmp_path / 'p.db')!r})\n"
        "s.store\n"
        "s.sql('SELECT 1')"
    )
    assert {"duckdb", "polars"} <= _loaded_after(code)


def test_version_is_read_on_access() -> None:
    code = "import gantry\nv = gantry.__version__\nassert isinstance(v, str) and v"
    assert "importlib.metadata" in _loaded_after(code)


def test_progress_bars_come_from_one_place() -> None:
    """``tqdm.auto`` warns in every notebook kernel without ipywidgets: only
    ``gantry._progress`` may choose it."""
    package = Path(__file__).resolve().parents[1] / "gantry"
    direct = [
        str(p.relative_to(package))
        for p in package.rglob("*.py")
        if p.name != "_progress.py" and "tqdm.auto" in p.read_text()
    ]
    assert direct == []
