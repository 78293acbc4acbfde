"""A small ingested and planned session for the review app's tests.

One patient, one study, a CT series and a US series (two instances each), with
canary tokens in every identifying text element; the US images count as
burned-in (no device zone yet, so a safe export leaves them out).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from gantry import Session
from gantry.testing import make_corpus


@pytest.fixture(scope="session")
def _review_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("review-template")
    make_corpus(
        root / "dicom", patients=1, studies_per_patient=1, series_per_study=2,
        instances_per_series=2, modalities=("CT", "US"), compressed=False,
        multiframe=False, canaries=True, seed=11,
    )  # fmt: skip
    with Session(root / "p.db") as s:
        s.ingest(root / "dicom", workers=1, progress=False)
        s.anonymize()
    return root


@pytest.fixture
def review_db(_review_template: Path, tmp_path: Path) -> Path:
    """A fresh copy of the planned session (catalog and data folder); returns the catalog."""
    for item in _review_template.iterdir():
        target = tmp_path / item.name
        if item.is_dir():
            shutil.copytree(item, target)
        else:
            shutil.copy2(item, target)
    return tmp_path / "p.db"
