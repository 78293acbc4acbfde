"""Identity values in free text: other scripts, character sets, birth date layouts.

All found by the second sweep (collisions, charsets, pixels).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pydicom
import pytest
from pydicom.charset import convert_encodings, encode_string

from gantry import Session
from gantry.export import ExportResult
from gantry.testing import make_instance

CLEAN = {
    "privacy_profile": "comprehensive",
    "options": ["clean-descriptors", "retain-longitudinal-modified-dates"],
}
# (charset, patient name, a description naming the patient)
JAPANESE = [
    ("ISO_IR 192", "Yamadax^Taroux=山田^太郎=やまだ^たろう", "山田太郎 の検査"),
    (["", "ISO 2022 IR 87"], "Yamadaz^Tarouz=山田^太郎", "山田 太郎 CT"),
    ("GB18030", "Wang^Wei=王^伟", "王伟 复查"),  # one-character parts, written joined
]


def _export(
    tmp_path: Path, config: dict[str, Any], charset: str | list[str], name: str, description: str
) -> ExportResult:
    """Write one instance in ``charset`` naming its patient in StudyDescription; export it."""
    ds = make_instance(PatientName="X^Y", PatientID="PIDCS001", PatientBirthDate="19610512")
    ds.SpecificCharacterSet = charset
    ds.PatientName = name
    ds.StudyDescription = description
    (tmp_path / "in").mkdir()
    ds.save_as(tmp_path / "in" / "1.dcm", enforce_file_format=True)
    with Session(tmp_path / "s.db") as s:
        s.ingest(tmp_path / "in", workers=1, progress=False)
        s.anonymize(config)
        return s.export(tmp_path / "out", config=config, safe=False, workers=1, progress=False)


def _encoded(text: str, charset: str | list[str]) -> bytes:
    """``text`` as the file holds it, without ISO 2022 escape sequences."""
    return (
        encode_string(text, convert_encodings(charset))
        .replace(b"\x1b$B", b"")
        .replace(b"\x1b(B", b"")
    )


@pytest.mark.parametrize(
    ("charset", "name", "description"), JAPANESE, ids=["utf-8", "iso-2022-jp", "gb18030"]
)
def test_two_character_ideographic_name_parts_clean_free_text(
    tmp_path: Path, charset: str | list[str], name: str, description: str
) -> None:
    r = _export(tmp_path, CLEAN, charset, name, description)
    assert r.exported == 1, r.failed
    (out,) = (tmp_path / "out").rglob("*.dcm")
    assert str(pydicom.dcmread(out).get("StudyDescription", "")) == ""
    raw = out.read_bytes()
    for part in [p for p in ("山田", "太郎", "王伟") if p in description]:
        assert _encoded(part, charset) not in raw


KEPT = [
    ("ISO_IR 100", "MÜLLER^JÖRG", "Kontrolle Müller"),
    ("ISO_IR 192", "MÜLLER^JÖRG", "Kontrolle Müller"),
    ("ISO_IR 100", "ÅSTRÖM^BJÖRN", "ÅSTRÖM BJÖRN knee"),
    (["", "ISO 2022 IR 87"], "Yamadaz^Tarouz=山田^太郎", "山田 太郎 CT"),
    ("GB18030", "Wang^Wei=王^伟", "王伟 CT"),
]


@pytest.mark.parametrize(
    ("charset", "name", "description"),
    KEPT,
    ids=["latin-1", "utf-8", "upper", "iso-2022-jp", "gb18030"],
)
def test_verification_finds_a_kept_name_in_the_files_own_encoding(
    tmp_path: Path, charset: str | list[str], name: str, description: str
) -> None:
    """A name the config keeps in a description is a leak however the file encodes it."""
    r = _export(tmp_path, {"keep": ["0008,1030"]}, charset, name, description)
    assert r.exported == 0
    (reason,) = r.failed["reason"].to_list()
    assert "PatientName is in 00081030" in reason


@pytest.mark.parametrize(
    "text",
    ["DOB 12/05/1961", "born 12.05.1961", "dob 1961-05-12", "DOB 05/12/1961", "12-May-1961"],
)
def test_a_birth_date_in_a_description_empties_it(tmp_path: Path, text: str) -> None:
    """The patient (born 1961-05-12) is found in the layouts people write a date in."""
    r = _export(tmp_path, CLEAN, "ISO_IR 100", "BIRTHY^WANDA", text)
    assert r.exported == 1, r.failed
    (out,) = (tmp_path / "out").rglob("*.dcm")
    data = out.read_bytes()
    # the date as written and in the other layouts; not a bare "1961", which a random
    # 2.25 UID of the output can hold by chance
    for layout in (text, "12/05/1961", "05/12/1961", "12.05.1961", "1961-05-12", "19610512"):
        assert layout.encode() not in data, layout
    assert str(pydicom.dcmread(out).get("StudyDescription", "")) == ""


def test_a_description_without_the_birth_date_is_kept(tmp_path: Path) -> None:
    r = _export(tmp_path, CLEAN, "ISO_IR 100", "BIRTHY^WANDA", "CT CHEST 12-May follow-up")
    assert r.exported == 1, r.failed
    (out,) = (tmp_path / "out").rglob("*.dcm")
    assert b"CT CHEST 12-May follow-up" in out.read_bytes()
