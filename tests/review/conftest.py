"""Small ingested and planned sessions for the review app's tests.

``review_db``: one patient, one study, a CT series and a US series (two
instances each), with canary tokens in every identifying text element; the US
images count as burned-in (no device zone yet, so a safe export leaves them out).

``deface_db``: three synthetic head series (folders ``ct``, ``blank``,
``nogeo``) planned with the ``deface`` config key: a CT the cut defaces, an
empty volume refused because no head is found in it, and one refused for
lacking geometry.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from gantry import Session
from gantry.testing import make_corpus, make_head_phantom, write_head_series

HEAD_SIZE = 48  # voxels per side of the head phantoms (tests read it as ``head_size``)


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


def _copy(template: Path, dest: Path) -> None:
    """A fresh copy of a session (catalog and data folder)."""
    for item in template.iterdir():
        target = dest / item.name
        if item.is_dir():
            shutil.copytree(item, target)
        else:
            shutil.copy2(item, target)


@pytest.fixture
def review_db(_review_template: Path, tmp_path: Path) -> Path:
    """A fresh copy of the planned session; returns the catalog."""
    _copy(_review_template, tmp_path)
    return tmp_path / "p.db"


def _head_series(s: Session) -> dict[str, str]:
    return dict(
        s.sql(
            "SELECT DISTINCT regexp_extract(file_path, '/dicom/([a-z]+)/', 1), "
            "SeriesInstanceUID FROM instances"
        ).rows()
    )


@pytest.fixture(scope="session")
def _deface_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import numpy as np

    pytest.importorskip("scipy", reason="pip install 'gantry[deface]'")
    root = tmp_path_factory.mktemp("review-deface")
    size = HEAD_SIZE
    write_head_series(root / "dicom" / "ct", make_head_phantom(size=size, spacing=5.0), seed=1)
    blank = make_head_phantom(size=size, spacing=5.0, modality="MR")
    blank.volume = np.zeros_like(blank.volume)
    write_head_series(root / "dicom" / "blank", blank, seed=2)
    flat = make_head_phantom(size=size, spacing=5.0, modality="MR", seed=3)
    write_head_series(root / "dicom" / "nogeo", flat, seed=3, ImagePositionPatient=None)
    with Session(root / "s.db") as s:
        s.ingest(root / "dicom", workers=1, progress=False)
        s.anonymize({"deface": {"series": list(_head_series(s).values())}})
    return root


@pytest.fixture
def deface_db(_deface_template: Path, tmp_path: Path) -> Path:
    """A fresh copy of the defaced head session; returns the catalog."""
    _copy(_deface_template, tmp_path)
    return tmp_path / "s.db"


@pytest.fixture
def head_series(deface_db: Path) -> dict[str, str]:
    """``{folder: SeriesInstanceUID}`` of ``deface_db`` (``ct``, ``blank``, ``nogeo``)."""
    with Session(deface_db, read_only=True) as s:
        return _head_series(s)


@pytest.fixture
def head_size() -> int:
    """Voxels per side of ``deface_db``'s phantoms (and of their side views)."""
    return HEAD_SIZE
