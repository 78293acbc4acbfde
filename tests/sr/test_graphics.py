"""Overlay planes: removed whole, with or without Clean Graphics (never kept by its C)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pydicom
import pytest
from PIL import Image, ImageDraw, ImageFont
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.pixels import pack_bits
from pydicom.sequence import Sequence

from gantry import Session
from gantry.errors import MissingDependencyError
from gantry.ocr import get_engine
from gantry.testing import make_instance
from gantry.testing._canaries import CANARY_BYTES_RE, CanaryBook

OVERLAY = Path(pydicom.__file__).parent / "data" / "test_files" / "examples_overlay.dcm"


def _groups(ds: pydicom.Dataset) -> set[int]:
    return {e.tag.group for e in ds if 0x6000 <= e.tag.group <= 0x601E}


@pytest.mark.parametrize(
    "options",
    [
        ["retain-longitudinal-modified-dates"],
        ["retain-longitudinal-modified-dates", "clean-graphics"],
    ],
    ids=["basic", "clean-graphics"],
)
def test_overlay_planes_are_removed_whole(options: list[str], tmp_path: Path) -> None:
    assert _groups(pydicom.dcmread(OVERLAY)) == {0x6000}
    src = tmp_path / "dicom"
    src.mkdir()
    shutil.copy(OVERLAY, src / "overlay.dcm")
    with Session(tmp_path / "s.db") as s:
        s.ingest(src, workers=1, progress=False)
        s.anonymize({"options": options})
        rules = set(s.sql("SELECT rule FROM plan WHERE tag LIKE '6000%'")["rule"].to_list())
        result = s.export(tmp_path / "out", safe=False, workers=1, progress=False)
        assert result.ok, result.failed
    (out,) = (tmp_path / "out").rglob("*.dcm")
    ds = pydicom.dcmread(out)
    assert _groups(ds) == set()
    assert rules == ({"basic", "overlay"} if len(options) == 1 else {"clean-graphics", "overlay"})
    tool = shutil.which("dciodvfy") or str(Path(sys.executable).parent / "dciodvfy")

    def errors(path: Path) -> set[str]:
        proc = subprocess.run([tool, str(path)], capture_output=True, text=True, timeout=60)
        lines = (proc.stdout + proc.stderr).splitlines()
        return {ln.split(" - ", 1)[-1] for ln in lines if ln.startswith("Error")}

    assert errors(out) <= errors(OVERLAY)


def _canary_image(path: Path, book: CanaryBook) -> tuple[str, str, np.ndarray]:
    """A CT whose overlay draws one canary and whose annotation text names another."""
    drawn, written = book.token("overlay"), book.token("annotation")
    ds = make_instance(modality="CT", rows=96, columns=256, seed=14)
    canvas = Image.new("1", (256, 96), 0)
    ImageDraw.Draw(canvas).text((8, 30), drawn, fill=1, font=ImageFont.load_default(size=28))
    bits = np.array(canvas, dtype=np.uint8)
    for offset, vr, value in [
        (0x0010, "US", 96), (0x0011, "US", 256), (0x0040, "CS", "G"), (0x0050, "SS", [1, 1]),
        (0x0100, "US", 1), (0x0102, "US", 0), (0x0022, "LO", f"drawn for {drawn}"),
        (0x3000, "OW", pack_bits(bits.ravel())),
    ]:  # fmt: skip
        ds[0x60000000 + offset] = DataElement(0x60000000 + offset, vr, value)
    text = Dataset()
    text.UnformattedTextValue = f"Seen by {written}, call 555-123-4567"
    text.AnchorPointAnnotationUnits = "PIXEL"
    text.AnchorPoint = [10.0, 10.0]
    text.AnchorPointVisibility = "N"
    layer = Dataset()
    layer.GraphicLayer = "NOTES"
    layer.TextObjectSequence = Sequence([text])
    ds.GraphicAnnotationSequence = Sequence([layer])
    ds.save_as(path, enforce_file_format=True)
    return drawn, written, bits


@pytest.mark.parametrize("clean_graphics", [False, True], ids=["basic", "clean-graphics"])
def test_canaries_in_overlay_bitmaps_and_annotation_text_never_leave(
    clean_graphics: bool, tmp_path: Path
) -> None:
    src = tmp_path / "dicom"
    src.mkdir()
    drawn, written, bits = _canary_image(src / "ct.dcm", CanaryBook(14, enabled=True))
    options = ["retain-longitudinal-modified-dates"] + (
        ["clean-graphics"] if clean_graphics else []
    )
    with Session(tmp_path / "s.db") as s:
        s.ingest(src, workers=1, progress=False)
        s.anonymize({"options": options})
        result = s.export(tmp_path / "out", safe=False, workers=1, progress=False)
        assert result.ok, result.failed
    (out,) = (tmp_path / "out").rglob("*.dcm")
    assert {drawn.encode(), written.encode()} <= set(CANARY_BYTES_RE.findall(
        (src / "ct.dcm").read_bytes()))  # fmt: skip
    assert CANARY_BYTES_RE.findall(out.read_bytes()) == []
    ds = pydicom.dcmread(out)
    assert _groups(ds) == set()
    if clean_graphics:
        assert "GraphicAnnotationSequence" not in ds
    else:  # the profile's dummy: the layer stays, its free text is a dummy
        (layer,) = ds.GraphicAnnotationSequence
        assert layer.GraphicLayer == "NOTES"
        assert layer.TextObjectSequence[0].UnformattedTextValue == "ANONYMIZED"
    # the overlay's canary is text on the image (an OCR engine reads it): it went whole
    try:
        engine = get_engine("rapidocr")
    except MissingDependencyError as exc:
        pytest.skip(f"{exc} (the overlay check needs an OCR engine)")
    read = "".join(box.text for box in engine.read(bits * 255)).replace(" ", "")
    assert drawn in read


def _overlay_instance(path: Path, text: str, seed: int) -> np.ndarray:
    """A CT whose single overlay plane draws ``text``; returns the overlay bits."""
    ds = make_instance(modality="CT", rows=96, columns=256, seed=seed, PatientID="PID48213")
    canvas = Image.new("1", (256, 96), 0)
    ImageDraw.Draw(canvas).text((8, 30), text, fill=1, font=ImageFont.load_default(size=28))
    bits = np.array(canvas, dtype=bool)
    ds.PixelData = np.zeros((96, 256), dtype=ds.pixel_array.dtype).tobytes()  # a plain field
    for offset, vr, value in [
        (0x0010, "US", 96), (0x0011, "US", 256), (0x0040, "CS", "G"), (0x0050, "SS", [1, 1]),
        (0x0100, "US", 1), (0x0102, "US", 0), (0x3000, "OW", pack_bits(bits.ravel())),
    ]:  # fmt: skip
        ds[0x60000000 + offset] = DataElement(0x60000000 + offset, vr, value)
    ds.save_as(path, enforce_file_format=True)
    return bits


def test_overlays_burned_in_are_read_by_ocr_and_fail_closed(tmp_path: Path) -> None:
    try:
        get_engine("rapidocr")
    except MissingDependencyError as exc:
        pytest.skip(f"{exc} (burning overlays needs an OCR engine)")
    src = tmp_path / "dicom"
    src.mkdir()
    harmless = _overlay_instance(src / "left.dcm", "LEFT", seed=21)
    _overlay_instance(src / "named.dcm", "ID PID48213", seed=22)  # the patient's ID
    with Session(tmp_path / "s.db") as s:
        s.ingest(src, workers=1, progress=False)
        s.anonymize({"options": ["retain-longitudinal-modified-dates"], "overlays": "burn"})
        rules = s.sql("SELECT DISTINCT rule FROM plan WHERE action = 'REDACT'")["rule"]
        result = s.export(tmp_path / "out", safe=False, workers=1, progress=False)
    assert rules.to_list() == ["overlay-burn"]
    (failed,) = result.failed["reason"].to_list()
    assert "identifying text is still burned into frame 0" in failed  # no value named
    (out,) = (tmp_path / "out").rglob("*.dcm")
    ds = pydicom.dcmread(out)
    assert _groups(ds) == set() and ds.BurnedInAnnotation == "YES"
    image = ds.pixel_array
    assert (image[harmless] == (1 << int(ds.BitsStored - 1)) - 1).all()  # drawn at the top
    assert (image[~harmless] == 0).all()
    assert b"PID48213" not in out.read_bytes()


def test_burning_overlays_without_ocr_names_the_extra(tmp_path: Path, monkeypatch) -> None:
    import gantry.ocr

    def missing(name: str = "rapidocr", **_: object) -> None:
        raise MissingDependencyError("rapidocr", extra="ocr")

    monkeypatch.setattr(gantry.ocr, "get_engine", missing)
    src = tmp_path / "dicom"
    src.mkdir()
    _overlay_instance(src / "a.dcm", "LEFT", seed=23)
    with Session(tmp_path / "s.db") as s:
        s.ingest(src, workers=1, progress=False)
        with pytest.raises(MissingDependencyError, match=r"gantry\[ocr\]"):
            s.anonymize({"overlays": "burn"})


def test_compliance_report_on_burned_overlays(tmp_path: Path) -> None:
    try:
        get_engine("rapidocr")
    except MissingDependencyError as exc:
        pytest.skip(f"{exc} (burning overlays needs an OCR engine)")
    src = tmp_path / "dicom"
    src.mkdir()
    _overlay_instance(src / "left.dcm", "LEFT", seed=24)
    config = {"options": ["retain-longitudinal-modified-dates"], "overlays": "burn"}
    with Session(tmp_path / "s.db") as s:
        s.ingest(src, workers=1, progress=False)
        s.anonymize(config)
        assert s.export(tmp_path / "out", safe=False, workers=1, progress=False).ok
        report = s.compliance_report(tmp_path / "out", profile=config)
    # no Clean Pixel Data claim is expected (nothing was redacted); the burned-in overlay
    # is reported for what it is, burned-in content without a redaction zone
    assert set(report.problems["rule"]) <= {"burned-in"}, report.problems
