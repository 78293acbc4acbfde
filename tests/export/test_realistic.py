"""A realistic corpus (real data's collisions) exports whole with the default config."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from gantry import Session
from gantry.testing import make_realistic_corpus

CANARY = re.compile(rb"CNRY[0-9A-F]{8}")


@pytest.mark.slow
def test_default_export_of_a_realistic_corpus_completes_without_leaks(tmp_path: Path) -> None:
    corpus = make_realistic_corpus(tmp_path / "dicom", files=200)
    assert len(corpus.paths) == 200 and corpus.canaries
    with Session(tmp_path / "s.db") as s:
        config = s.create_config(tmp_path / "gantry.yaml")
        s.ingest(tmp_path / "dicom", workers=2, progress=False)
        s.anonymize(config)
        r = s.export(tmp_path / "out", config=config, workers=2, progress=False)
    # >= 99.9% of 200 is all of them
    assert r.exported == 200, r.failed["reason"].to_list()[:5]
    assert r.excluded.height == 0 and r.failed.height == 0
    written = [p for p in (tmp_path / "out").rglob("*") if p.is_file()]
    assert len([p for p in written if p.suffix == ".dcm"]) == 200
    for p in written:  # every byte and every path
        assert not CANARY.search(p.read_bytes()), p.name
        assert "CNRY" not in str(p.relative_to(tmp_path / "out"))
