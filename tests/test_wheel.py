"""The wheel, installed alone in a fresh virtual environment, runs Gantry's main job.

What a packager checks before a release: the sdist and the wheel build and pass
``twine check``; the wheel carries the profiles and the report templates; and
installed with nothing but its own dependencies (no extras, no source tree on
the path) it runs ``gantry demo``, ``gantry info --json`` and a compliance report
of the demo's export. Installing the dependencies needs the package index (or
pip's cache); the test takes about a minute.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tomllib
import venv
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _run(*cmd: str | Path, cwd: Path) -> str:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    done = subprocess.run(
        [str(c) for c in cmd], cwd=cwd, env=env, capture_output=True, text=True, timeout=900
    )
    assert done.returncode == 0, f"{cmd}: {done.stdout[-2000:]}\n{done.stderr[-2000:]}"
    return done.stdout


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    _run(sys.executable, "-m", "build", "--sdist", "--wheel", "--outdir", out, ROOT, cwd=out)
    return out


def test_sdist_and_wheel_pass_twine_check(dist: Path) -> None:
    files = sorted(dist.iterdir())
    assert sorted(f.suffix for f in files) == [".gz", ".whl"], files
    out = _run(sys.executable, "-m", "twine", "check", "--strict", *files, cwd=dist)
    assert out.count("PASSED") == 2


def test_wheel_carries_profiles_and_templates(dist: Path) -> None:
    (wheel,) = dist.glob("*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    profiles = {Path(n).stem for n in names if n.startswith("gantry/profiles/_data/")}
    assert {"basic", "comprehensive", "research"} <= profiles
    templates = {Path(n).name for n in names if n.startswith("gantry/report/templates/")}
    assert {"compliance.html.j2", "manifest.html.j2"} <= templates
    review = {Path(n).name for n in names if n.startswith("gantry/review/templates/")}
    assert {"base.html.j2", "instance.html.j2", "review.css"} <= review
    assert "gantry/py.typed" in names
    assert not any(n.startswith(("tests/", "docs/", "benchmarks/")) for n in names)


@pytest.mark.slow
def test_wheel_alone_runs_the_demo(dist: Path, tmp_path: Path) -> None:
    (wheel,) = dist.glob("*.whl")
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True).create(env_dir)
    bin_dir = env_dir / ("Scripts" if os.name == "nt" else "bin")
    _run(bin_dir / "python", "-m", "pip", "install", "-q", wheel, cwd=tmp_path)
    gantry = bin_dir / "gantry"
    # the installed package, not this checkout, is what runs
    where = _run(bin_dir / "python", "-c", "import gantry; print(gantry.__file__)", cwd=tmp_path)
    assert Path(where.strip()).is_relative_to(env_dir)
    out = _run(gantry, "demo", tmp_path / "demo", "--patients", "2", cwd=tmp_path)
    assert "== export:" in out
    assert "no screen captures: drawing their text needs Pillow" in out  # core only: no extras
    assert list((tmp_path / "demo" / "export").rglob("*.dcm"))
    info = json.loads(
        _run(gantry, "info", "--db", tmp_path / "demo" / "project.db", "--json", cwd=tmp_path)
    )
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert info["totals"]["instances"] > 0 and info["gantry_version"] == version
    _run(
        gantry,
        "report",
        "compliance",
        tmp_path / "demo" / "export",
        "--db",
        tmp_path / "demo" / "project.db",
        "--out",
        tmp_path / "report",
        cwd=tmp_path,
    )
    assert (tmp_path / "report" / "compliance.html").stat().st_size > 0
