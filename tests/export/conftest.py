"""A canary corpus, ingested and anonymized once per module."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from gantry import Session
from gantry.testing import Corpus, make_corpus


@dataclass
class Exported:
    corpus: Corpus
    db: Path
    dest: Path
    root: Path


@pytest.fixture(scope="package")
def exported(tmp_path_factory: pytest.TempPathFactory) -> Exported:
    root = tmp_path_factory.mktemp("export")
    corpus = make_corpus(
        root / "dicom",
        patients=3,
        studies_per_patient=2,
        series_per_study=2,
        instances_per_series=2,
        canaries=True,
    )
    db = root / "s.db"
    dest = root / "out"
    with Session(db) as s:
        s.ingest(root / "dicom", workers=1, progress=False)
        s.anonymize(None)
        r = s.export(dest, safe=False, workers=2, progress=False)
        assert r.ok, r.failed
    return Exported(corpus, db, dest, root)
