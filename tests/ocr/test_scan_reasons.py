"""A file the scan cannot read is recorded with a reason a user can act on, and no PHI."""

from __future__ import annotations

from pathlib import Path

import pydicom
import pytest
from pydicom.encaps import encapsulate

from gantry.ocr._scan import scan_file
from gantry.testing._text import make_text_instance

CANARY = "9CNRY424"
UID = "1.2.826.0.1.3680043.9.424242"


def _write(tmp_path: Path, **changes: object) -> Path:
    folder = tmp_path / f"{CANARY}^JANE"
    folder.mkdir()
    ds, _ = make_text_instance(kind="us", rows=32, columns=32, texts=[])
    ds.PatientName = f"{CANARY}^JANE"
    ds.PatientID = CANARY
    ds.StudyInstanceUID = UID
    for key, value in changes.items():
        if value is None:
            del ds[key]
        else:
            setattr(ds, key, value)
    path = folder / f"{CANARY}.dcm"
    ds.save_as(path, enforce_file_format=True)
    return path


def _assert_clean(reason: str) -> None:
    assert CANARY not in reason and UID not in reason and "JANE" not in reason, reason
    assert "/" not in reason, reason


@pytest.mark.parametrize(
    ("missing", "expected"),
    [
        (("Rows",), "the image lacks Rows"),
        (("Rows", "Columns"), "the image lacks Rows, Columns"),
        (("PixelData",), "the image lacks PixelData"),
    ],
)
def test_a_missing_image_attribute_is_named(
    tmp_path: Path, missing: tuple[str, ...], expected: str
) -> None:
    path = _write(tmp_path, **dict.fromkeys(missing))
    regions, row = scan_file(1, str(path))
    assert (regions, row["status"], row["error"]) == ([], "failed", expected)
    _assert_clean(row["error"])


def test_corrupt_compressed_pixel_data_gives_the_codec_reason(tmp_path: Path) -> None:
    path = _write(tmp_path)
    ds = pydicom.dcmread(path)
    ds.file_meta.TransferSyntaxUID = pydicom.uid.JPEGBaseline8Bit
    ds.PixelData = encapsulate([b"\xff\xd8" + CANARY.encode() * 8 + b"\xff\xd9"])
    ds.save_as(path)
    regions, row = scan_file(1, str(path))
    assert (regions, row["status"]) == ([], "failed")
    assert row["error"].startswith("the pixel data could not be decoded"), row["error"]
    _assert_clean(row["error"])


def test_an_unexpected_error_names_its_kind_and_what_to_do(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = _write(tmp_path)

    def boom(*args: object, **kwargs: object) -> None:
        raise ValueError(f"could not convert {CANARY!r} in {path}")

    monkeypatch.setattr("gantry.ocr._display.display_frame", boom)
    _, row = scan_file(1, str(path))
    assert row["error"] == "an internal step failed (ValueError): report this with the scan id"
    _assert_clean(row["error"])
