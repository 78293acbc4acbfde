"""A birth date written in free text the way people write it is cleaned (second sweep)."""

from __future__ import annotations

from pathlib import Path

import pydicom
import pytest

from gantry import Session
from gantry.testing import make_instance

CLEAN = {
    "privacy_profile": "comprehensive",
    "options": ["clean-descriptors", "retain-longitudinal-modified-dates"],
}


def _exported(tmp_path: Path, description: str) -> bytes:
    """Export one instance (born 1961-05-12) whose StudyDescription is ``description``."""
    ds = make_instance(PatientName="BIRTHY^WANDA", PatientID="PIDBD1", PatientBirthDate="19610512")
    ds.StudyDescription = description
    (tmp_path / "in").mkdir()
    ds.save_as(tmp_path / "in" / "1.dcm", enforce_file_format=True)
    with Session(tmp_path / "s.db") as s:
        s.ingest(tmp_path / "in", workers=1, progress=False)
        s.anonymize(CLEAN)
        r = s.export(tmp_path / "out", config=CLEAN, safe=False, workers=1, progress=False)
    assert r.exported == 1, r.failed
    (out,) = (tmp_path / "out").rglob("*.dcm")
    return out.read_bytes()


@pytest.mark.parametrize(
    "text",
    ["DOB 12/05/1961", "born 12.05.1961", "dob 1961-05-12", "DOB 05/12/1961", "12-May-1961"],
)
def test_a_birth_date_in_a_description_empties_it(tmp_path: Path, text: str) -> None:
    raw = _exported(tmp_path, text)
    assert b"1961" not in raw
    assert pydicom.dcmread(pydicom.filebase.DicomBytesIO(raw)).get("StudyDescription", "") == ""


def test_a_description_without_the_birth_date_is_kept(tmp_path: Path) -> None:
    raw = _exported(tmp_path, "CT CHEST 12-May follow-up")
    assert b"CT CHEST 12-May follow-up" in raw
