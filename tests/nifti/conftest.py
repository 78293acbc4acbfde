"""Series of every kind, ingested once, exported to NIfTI in both layouts."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest

from gantry import Session
from gantry.testing import SeriesFiles, make_series

pytest.importorskip("nibabel", reason="NIfTI export needs nibabel: pip install 'gantry[nifti]'")

# name -> make_series arguments; every series gets its own (canary) patient
SERIES: dict[str, dict[str, object]] = {
    "ct": {"kind": "ct", "intercept": -1024.0},
    "mr_oblique": {
        "kind": "mr",
        "orientation": (0.0, 0.9848078, -0.1736482, 0.0, 0.1736482, 0.9848078),
    },
    "mr_scaled": {
        "kind": "mr",
        "slope": 2.5,
        "intercept": 3.0,
        "orientation": (0.0, 1.0, 0.0, 0.0, 0.0, -1.0),
    },
    "enhanced": {"kind": "enhanced"},
    "fmri": {"kind": "fmri", "volumes": 4},
    "dwi": {"kind": "dwi"},
    "gap": {"kind": "mr", "gap_after": 2},
    "tilt": {"kind": "ct", "tilt": 15.0},
    "burned": {"kind": "mr", "BurnedInAnnotation": "YES"},
    "pet": {"kind": "pet"},
}


@dataclass
class Converted:
    root: Path
    db: Path
    series: dict[str, SeriesFiles]
    bids: Path
    flat: Path


def tool(name: str, package: str) -> str:
    """Path of a command-line tool, or skip naming the install command."""
    found = shutil.which(name)
    if found is None:
        pytest.skip(f"`{name}` is not installed: pip install {package}")
    return found


@pytest.fixture(scope="package")
def dcm2niix_exe() -> str:
    return tool("dcm2niix", "dcm2niix")


@pytest.fixture(scope="package")
def validator_exe() -> str:
    return tool("bids-validator-deno", "bids-validator-deno")


@pytest.fixture(scope="package")
def converted(tmp_path_factory: pytest.TempPathFactory) -> Converted:
    root = tmp_path_factory.mktemp("nifti")
    # the source folder's name is itself a canary: it must not reach any output name
    src = root / "CNRYF00DF00D_source"
    series = {
        name: make_series(src / name, seed=n + 1, **kwargs)  # type: ignore[arg-type]
        for n, (name, kwargs) in enumerate(SERIES.items())
    }
    db = root / "s.db"
    with Session(db) as s:
        s.ingest(src, workers=1, progress=False)
        s.anonymize(None)
        s.export_nifti(root / "bids", layout="bids", workers=1, progress=False)
        s.export_nifti(root / "flat", layout="flat", workers=2, progress=False)  # a pool
    return Converted(root, db, series, root / "bids", root / "flat")
