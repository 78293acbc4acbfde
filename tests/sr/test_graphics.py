"""Overlay planes: removed whole, with or without Clean Graphics (never kept by its C)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pydicom
import pytest

from gantry import Session

OVERLAY = Path(pydicom.__file__).parent / "data" / "test_files" / "examples_overlay.dcm"


def _groups(ds: pydicom.Dataset) -> set[int]:
    return {e.tag.group for e in ds if 0x6000 <= e.tag.group <= 0x601E}


@pytest.mark.parametrize(
    "options",
    [
        ["retain-longitudinal-modified-dates"],
        ["retain-longitudinal-modified-dates", "clean-graphics"],
    ],
    ids=["basic", "clean-graphics"],
)
def test_overlay_planes_are_removed_whole(options: list[str], tmp_path: Path) -> None:
    assert _groups(pydicom.dcmread(OVERLAY)) == {0x6000}
    src = tmp_path / "dicom"
    src.mkdir()
    shutil.copy(OVERLAY, src / "overlay.dcm")
    with Session(tmp_path / "s.db") as s:
        s.ingest(src, workers=1, progress=False)
        s.anonymize({"options": options})
        rules = set(s.sql("SELECT rule FROM plan WHERE tag LIKE '6000%'")["rule"].to_list())
        result = s.export(tmp_path / "out", safe=False, workers=1, progress=False)
        assert result.ok, result.failed
    (out,) = (tmp_path / "out").rglob("*.dcm")
    ds = pydicom.dcmread(out)
    assert _groups(ds) == set()
    assert rules == ({"basic", "overlay"} if len(options) == 1 else {"clean-graphics", "overlay"})
    tool = shutil.which("dciodvfy") or str(Path(sys.executable).parent / "dciodvfy")

    def errors(path: Path) -> set[str]:
        proc = subprocess.run([tool, str(path)], capture_output=True, text=True, timeout=60)
        lines = (proc.stdout + proc.stderr).splitlines()
        return {ln.split(" - ", 1)[-1] for ln in lines if ln.startswith("Error")}

    assert errors(out) <= errors(OVERLAY)
