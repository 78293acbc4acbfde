"""README's Quick Start runs as written (only ``/data/dicom`` becomes a folder of synthetic files)."""

from __future__ import annotations

import os
import re
import shlex
from pathlib import Path

import pytest

from gantry.cli import main
from gantry.testing import make_corpus

README = Path(__file__).resolve().parents[1] / "README.md"


def _blocks(section: str, lang: str) -> list[str]:
    text = README.read_text()
    body = text.split(f"## {section}\n", 1)[1].split("\n## ", 1)[0]
    return re.findall(rf"```{lang}\n(.*?)```", body, flags=re.S)


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    make_corpus(tmp_path / "data", patients=1, seed=0)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_quick_start_python_runs_as_written(workdir: Path) -> None:
    (code,) = _blocks("Quick start", "python")
    exec(code.replace("/data/dicom", str(workdir / "data")), {"__name__": "readme"})  # noqa: S102
    assert (workdir / "project.db").is_file()


def test_quick_start_shell_runs_as_written(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (script,) = _blocks("Quick start", "bash")
    for line in script.strip().splitlines():
        argv = shlex.split(line.replace("/data/dicom", str(workdir / "data")))
        assert argv[0] == "gantry"
        os.environ.pop("GANTRY_DB", None)
        with pytest.raises(SystemExit) as done:
            main(argv[1:])
        assert done.value.code in (0, None), capsys.readouterr().err
    assert "Manufacturer" in capsys.readouterr().out
