"""DICOMweb against Orthanc's DICOMweb plugin: QIDO-RS + WADO-RS pull, STOW-RS export."""

from __future__ import annotations

from pathlib import Path

import pydicom
import pytest

from gantry import Session
from gantry.errors import NetworkError
from gantry.net._web import web_find
from gantry.testing import make_corpus
from gantry.testing._servers import DICOMWEB_PLUGIN, Orthanc

pytestmark = pytest.mark.skipif(
    not Path(DICOMWEB_PLUGIN).exists(),
    reason="Orthanc's DICOMweb plugin not installed (Debian: apt-get install -y orthanc-dicomweb)",
)


def _uids(paths) -> list[str]:
    return sorted(str(pydicom.dcmread(p, stop_before_pixels=True).SOPInstanceUID) for p in paths)


def test_qido_wado_pull(pacs: Orthanc, tmp_path: Path) -> None:
    corpus = make_corpus(tmp_path / "dicom", patients=2, studies_per_patient=1,
                         series_per_study=2, instances_per_series=2)  # fmt: skip
    for p in corpus.paths:
        pacs.upload(p)
    first = corpus.patients[0].patient_id
    assert len(web_find(pacs.dicomweb, {"PatientID": first}, level="STUDY")) == 1
    assert len(web_find(pacs.dicomweb, {}, level="SERIES")) == 4
    with Session(tmp_path / "s.db") as s:
        r = s.pull(pacs.dicomweb, query={"PatientID": first})
        assert r.ok, r.errors
        assert (r.matched, r.retrieved, r.ingest.indexed) == (1, 4, 4)
        r = s.pull(pacs.dicomweb, query={}, level="SERIES")
        assert (r.matched, r.retrieved, r.duplicates) == (4, 8, 4)
        got = s.sql("SELECT SOPInstanceUID FROM instances ORDER BY 1")["SOPInstanceUID"]
        assert got.to_list() == _uids(corpus.paths)
        with pytest.raises(NetworkError, match="HTTP 404"):
            s.pull(pacs.dicomweb.replace("/dicom-web", "/nothing-here"), query={})


def test_stow_export(pacs: Orthanc, tmp_path: Path) -> None:
    corpus = make_corpus(tmp_path / "dicom", patients=2, studies_per_patient=1,
                         series_per_study=2, instances_per_series=2, canaries=True)  # fmt: skip
    with Session(tmp_path / "s.db") as s:
        s.ingest(tmp_path / "dicom", workers=1, progress=False)
        s.anonymize(None)
        r = s.export(pacs.dicomweb, safe=False, workers=1, progress=False)
        assert r.ok, r.failed
        assert r.exported == len(corpus.paths) == len(pacs.instances())
        rows = s.sql("SELECT SOPInstanceUID FROM exports WHERE dest = ?", [r.destination])
        assert sorted(rows["SOPInstanceUID"].to_list()) == sorted(pacs.sop_uids())
        for f in (pacs.root / "storage").rglob("*"):
            if f.is_file():
                data = f.read_bytes()
                assert not [c for c in corpus.canaries if c.encode() in data]
        again = s.export(pacs.dicomweb, safe=False, workers=1, progress=False)
        assert (again.exported, again.already_done) == (0, len(corpus.paths))
