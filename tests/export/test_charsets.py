"""Identity values written in other scripts and character sets (found by the second sweep)."""

from __future__ import annotations

from pathlib import Path

import pydicom
import pytest
from pydicom.charset import convert_encodings, encode_string

from gantry import Session
from gantry.testing import make_instance

CLEAN = {
    "privacy_profile": "comprehensive",
    "options": ["clean-descriptors", "retain-longitudinal-modified-dates"],
}
# (charset, patient name, a description naming the patient)
JAPANESE = [
    ("ISO_IR 192", "Yamadax^Taroux=山田^太郎=やまだ^たろう", "山田太郎 の検査"),
    (["", "ISO 2022 IR 87"], "Yamadaz^Tarouz=山田^太郎", "山田 太郎 CT"),
]


def _write(root: Path, charset: str | list[str], name: str, description: str, n: int) -> None:
    ds = make_instance(seed=n, PatientName="X^Y", PatientID=f"PIDCS{n:03d}")
    ds.SpecificCharacterSet = charset
    ds.PatientName = name
    ds.StudyDescription = description
    ds.save_as(root / f"{n}.dcm", enforce_file_format=True)


def _encoded(text: str, charset: str | list[str]) -> bytes:
    """``text`` as the file holds it, without ISO 2022 escape sequences."""
    return (
        encode_string(text, convert_encodings(charset))
        .replace(b"\x1b$B", b"")
        .replace(b"\x1b(B", b"")
    )


@pytest.mark.parametrize(("charset", "name", "description"), JAPANESE, ids=["utf-8", "iso-2022-jp"])
def test_two_character_ideographic_name_parts_clean_free_text(
    tmp_path: Path, charset: str | list[str], name: str, description: str
) -> None:
    (tmp_path / "in").mkdir()
    _write(tmp_path / "in", charset, name, description, 1)
    with Session(tmp_path / "s.db") as s:
        s.ingest(tmp_path / "in", workers=1, progress=False)
        s.anonymize(CLEAN)
        r = s.export(tmp_path / "out", config=CLEAN, safe=False, workers=1, progress=False)
    assert r.exported == 1, r.failed
    (out,) = (tmp_path / "out").rglob("*.dcm")
    assert str(pydicom.dcmread(out).get("StudyDescription", "")) == ""
    raw = out.read_bytes()
    for part in ("山田", "太郎"):
        assert _encoded(part, charset) not in raw
