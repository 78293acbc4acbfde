"""OCR workers keep pydicom's value-quoting warnings off stderr (masked into the log)."""

from __future__ import annotations

import warnings
from pathlib import Path

import pydicom

from gantry.ocr._scan import scan_file
from gantry.testing import make_instance

CANARY = "9CNRY424"  # 8 characters, as the placeholder it replaces


def test_a_warning_quoting_a_value_never_reaches_the_caller(
    tmp_path: Path, engine_name: str
) -> None:
    path = tmp_path / "us.dcm"
    make_instance(path, modality="US", rows=32, columns=32)
    ds = pydicom.dcmread(path)
    ds.NumberOfFrames = "77777777"
    ds.save_as(path)
    # an IS value pydicom cannot read: it warns, quoting the value, when asked for it
    path.write_bytes(path.read_bytes().replace(b"77777777", CANARY.encode()))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        _, row = scan_file(1, str(path), engine=engine_name)
    assert row["status"] in ("ok", "failed")
    assert not [w for w in caught if CANARY in str(w.message)], [str(w.message) for w in caught]
