"""Frames rendered as a viewer shows them (no OCR engine needed)."""

from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file

from gantry.ocr import display_frame, frame_count, sample_frames
from gantry.testing._text import make_text_instance


def _text_pixels(img: np.ndarray, box) -> np.ndarray:
    grey = img if img.ndim == 2 else img.mean(axis=-1)
    return grey[box.r1 : box.r2, box.c1 : box.c2]


@pytest.mark.parametrize(
    ("kind", "photometric", "bits"),
    [
        ("us", "MONOCHROME2", 8),
        ("us", "MONOCHROME1", 8),
        ("mr", "MONOCHROME1", 16),
        ("mr", "MONOCHROME2", 16),
        ("ct", "MONOCHROME2", 16),
        ("screen", "RGB", 8),
        ("screen", "YBR_FULL", 8),
        ("us", "PALETTE COLOR", 8),
    ],
)
def test_text_is_bright_whatever_the_encoding(kind: str, photometric: str, bits: int) -> None:
    ds, boxes = make_text_instance(
        kind=kind, rows=96, columns=160, photometric=photometric, bits=bits, size=14
    )
    img = display_frame(ds)
    assert img.dtype == np.uint8
    assert img.shape[:2] == (96, 160)
    assert (img.ndim == 3) == (photometric in ("RGB", "YBR_FULL", "PALETTE COLOR"))
    for box in boxes:
        # the ink of every line is among the brightest pixels shown (MONOCHROME1 inverted)
        assert _text_pixels(img, box).max() >= 200, (photometric, box.text)


def test_monochrome1_and_2_show_the_same_image() -> None:
    one, _ = make_text_instance(kind="us", rows=64, columns=96, photometric="MONOCHROME1")
    two, _ = make_text_instance(kind="us", rows=64, columns=96, photometric="MONOCHROME2")
    assert np.array_equal(display_frame(one), display_frame(two))
    assert not np.array_equal(one.pixel_array, two.pixel_array)


def test_ct_window_is_applied() -> None:
    ds, _ = make_text_instance(kind="ct", rows=64, columns=64, texts=[])
    img = display_frame(ds)
    hu = ds.pixel_array.astype(float) - 1024
    assert img[hu < -160].max() == 0  # below the 40/400 window: black
    assert img[hu > 240].min() == 255  # above it: white
    del ds.WindowCenter, ds.WindowWidth
    assert display_frame(ds)[hu < -900].max() < 40  # no window: min–max, air near black


def test_overlay_is_burned_in() -> None:
    ds, _ = make_text_instance(kind="ct", rows=32, columns=32, texts=[])
    plane = np.zeros((32, 32), np.uint8)
    plane[4:8, 2:30] = 1
    ds.add_new(0x60000010, "US", 32)
    ds.add_new(0x60000011, "US", 32)
    ds.add_new(0x60000040, "CS", "G")
    ds.add_new(0x60000050, "SS", [1, 1])
    ds.add_new(0x60000100, "US", 1)
    ds.add_new(0x60000102, "US", 0)
    ds.add_new(0x60003000, "OW", np.packbits(plane.ravel(), bitorder="little").tobytes())
    img = display_frame(ds)
    assert (img[4:8, 2:30] == 255).all()
    assert img[20:28, 2:30].min() < 255


@pytest.mark.parametrize("syntax", ["1.2.840.10008.1.2.5", "1.2.840.10008.1.2.4.90"])
def test_compressed_multiframe_frames(syntax: str) -> None:
    ds, boxes = make_text_instance(
        kind="us", rows=64, columns=128, frames=4, transfer_syntax=syntax, text_frames=[3]
    )
    assert frame_count(ds) == 4
    assert _text_pixels(display_frame(ds, 3), boxes[0]).max() >= 200
    assert _text_pixels(display_frame(ds, 0), boxes[0]).max() < 200


def test_sampling() -> None:
    assert sample_frames(1) == [0]
    assert sample_frames(2) == [0, 1]
    assert sample_frames(9) == [0, 4, 8]
    assert sample_frames(9, "all") == list(range(9))
    assert sample_frames(9, [8, 3, 30]) == [3, 8]
    with pytest.raises(ValueError, match="`frames`"):
        sample_frames(9, "most")


@pytest.mark.parametrize(
    "name", ["US1_J2KR.dcm", "SC_rgb.dcm", "US1_UNCR.dcm", "OBXXXX1A.dcm", "MR-SIEMENS-DICOM-WithOverlays.dcm"]
)
def test_pydicom_samples_render(name: str) -> None:
    path = get_testdata_file(name)
    assert path is not None
    ds = pydicom.dcmread(path)
    img = display_frame(ds, frame_count(ds) - 1, path=Path(path))
    assert img.dtype == np.uint8
    assert img.shape[:2] == (ds.Rows, ds.Columns)
    assert img.max() > img.min()
