"""Encapsulated documents: withheld by default, exported only when checked clean."""

from __future__ import annotations

from pathlib import Path

import pydicom
import pytest

from gantry import Session
from gantry.sr import document_text
from gantry.testing import make_encapsulated_pdf, make_instance
from gantry.testing._canaries import CANARY_BYTES_RE

CLEAN = {"options": ["retain-longitudinal-modified-dates", "clean-structured-content"]}


def _run(tmp_path: Path, config: dict[str, object]) -> tuple[Session, object]:
    src = tmp_path / "dicom"
    make_encapsulated_pdf(src / "names.dcm", seed=1, canaries=True)  # names the patient
    make_encapsulated_pdf(src / "plain.dcm", seed=2, canaries=True, text="No acute findings.")
    make_encapsulated_pdf(src / "phone.dcm", seed=3, text="Call the ward on 555-123-4567.")
    scanned = make_encapsulated_pdf(seed=4, text=" ")  # a page with no text: a scan
    scanned.save_as(src / "scanned.dcm", enforce_file_format=True)
    make_instance(src / "ct.dcm")
    s = Session(tmp_path / "s.db")
    s.ingest(src, workers=1, progress=False)
    s.anonymize(config)
    result = s.export(tmp_path / "out", safe=False, workers=1, progress=False)
    return s, result


def _status(s: Session) -> dict[str, str]:
    rows = s.sql(
        "SELECT i.file_path, d.status FROM documents d JOIN instances i USING (file_id)"
    ).rows()
    return {Path(path).stem: status for path, status in rows}


def test_documents_are_withheld_and_reported_by_default(tmp_path: Path) -> None:
    s, result = _run(tmp_path, {})
    with s:
        assert set(_status(s).values()) == {"removed"}
        assert result.excluded.height == 4
        assert all("encapsulated document removed" in r for r in result.excluded["reason"])
    written = [pydicom.dcmread(p) for p in (tmp_path / "out").rglob("*.dcm")]
    assert [d.Modality for d in written] == ["CT"]


def test_only_documents_checked_clean_are_exported(tmp_path: Path) -> None:
    s, result = _run(tmp_path, CLEAN)
    with s:
        assert _status(s) == {
            "names": "identity-found",
            "plain": "clean",
            "phone": "identity-found",
            "scanned": "unreadable",
        }
        assert result.excluded.height == 3
    written = {
        d.Modality: d for d in (pydicom.dcmread(p) for p in (tmp_path / "out").rglob("*.dcm"))
    }
    assert set(written) == {"CT", "DOC"}
    pdf = bytes(written["DOC"].EncapsulatedDocument)
    assert document_text(pdf, "application/pdf") == "No acute findings."
    for f in (tmp_path / "out").rglob("*"):
        if f.is_file():
            assert not CANARY_BYTES_RE.search(f.read_bytes()), f.name


def test_cda_text_and_unknown_types() -> None:
    cda = b"<ClinicalDocument><recordTarget>Doe</recordTarget><text>ok</text></ClinicalDocument>"
    assert document_text(cda, "text/XML") == "Doe ok"
    with pytest.raises(ValueError, match="no text extractor"):
        document_text(b"\x00\x01", "model/stl")
