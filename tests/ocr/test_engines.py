"""Both engines on text drawn at known places over modality-like backgrounds."""

from __future__ import annotations

import pydicom
import pytest
from pydicom.data import get_testdata_file

from gantry.errors import ConfigError
from gantry.ocr import IdentityTokens, OcrEngine, display_frame, get_engine, phi_kinds
from gantry.testing._text import box_iou as iou
from gantry.testing._text import font_names, make_text_instance


def found(truth, boxes, threshold: float = 0.3) -> bool:
    return any(iou(b, truth) >= threshold for b in boxes)


FONTS = font_names()

CASES = [
    # kind, photometric, bits, size, font, contrast
    ("us", "MONOCHROME2", 8, 12, FONTS[0], "high"),
    ("us", "PALETTE COLOR", 8, 14, FONTS[-1], "low"),
    ("ct", "MONOCHROME2", 16, 11, FONTS[min(1, len(FONTS) - 1)], "high"),
    ("ct", "MONOCHROME2", 16, 16, FONTS[0], "low"),
    ("mr", "MONOCHROME1", 16, 13, FONTS[-1], "high"),
    ("screen", "RGB", 8, 12, FONTS[min(1, len(FONTS) - 1)], "low"),
    ("screen", "YBR_FULL", 8, 18, FONTS[0], "high"),
]


@pytest.mark.parametrize(("kind", "photometric", "bits", "size", "font", "contrast"), CASES)
def test_rapidocr_finds_every_line(
    kind: str, photometric: str, bits: int, size: int, font: str, contrast: str
) -> None:
    ds, truth = make_text_instance(
        kind=kind, rows=160, columns=256, photometric=photometric, bits=bits, size=size,
        font=font, contrast=contrast, seed=size,
    )  # fmt: skip
    engine = get_engine("rapidocr")
    assert isinstance(engine, OcrEngine)
    boxes = engine.read(display_frame(ds))
    identity = IdentityTokens.from_dataset(ds)
    for t in truth:
        assert found(t, boxes), (t.text, [(b.text, b.r1, b.c1) for b in boxes])
        if t.phi:  # the identifying lines are recognised well enough to be flagged
            hit = max(boxes, key=lambda b: iou(b, t))
            assert phi_kinds(hit.text, identity), (t.text, hit.text)


@pytest.mark.parametrize("kind", ["blank-ct", "blank-mr"])
def test_no_text_no_boxes(kind: str, engine_name: str) -> None:
    ds, truth = make_text_instance(kind=kind, rows=160, columns=160, seed=7)
    assert truth == []
    assert get_engine(engine_name).read(display_frame(ds)) == []


def test_engines_agree_on_burned_in_identity(tesseract: str) -> None:
    ds, truth = make_text_instance(kind="us", rows=128, columns=320, size=16, seed=5)
    image = display_frame(ds)
    rapid = get_engine("rapidocr").read(image)
    tess = get_engine(tesseract).read(image)
    identity = IdentityTokens.from_dataset(ds)
    for t in truth:
        if not t.phi:
            continue
        a = max(rapid, key=lambda b: iou(b, t))
        b = max(tess, key=lambda b: iou(b, t))
        assert iou(a, t) >= 0.3 and iou(b, t) >= 0.3, t.text
        assert iou(a, b) >= 0.3  # the two engines put the line in the same place
        assert phi_kinds(a.text, identity) and phi_kinds(b.text, identity), (a.text, b.text)


def test_real_ultrasound_header_text(engine_name: str) -> None:
    """pydicom's Philips ultrasound: date and time burned into its top banner."""
    path = get_testdata_file("OBXXXX1A.dcm")
    assert path is not None, "pip install pydicom-data"
    ds = pydicom.dcmread(path)
    banner = display_frame(ds)[:64, 560:]
    boxes = get_engine(engine_name).read(banner)
    kinds = {k for b in boxes for k in phi_kinds(b.text)}
    assert "pattern:date" in kinds or "pattern:time" in kinds, [b.text for b in boxes]


def test_unknown_engine() -> None:
    with pytest.raises(ConfigError, match="`engine` must be one of 'rapidocr', 'tesseract'"):
        get_engine("cloud")


def test_a_line_read_before_is_not_recognised_again() -> None:
    """The recogniser remembers crops: the same frame twice costs one recognition."""
    from gantry.ocr._engine import RapidOcrEngine

    engine = RapidOcrEngine()
    real = engine._ocr.text_rec
    batches: list[int] = []

    def counting(crops, *args):  # type: ignore[no-untyped-def]
        batches.append(len(crops))
        return real(crops, *args)

    engine._ocr.text_rec = counting
    ds, truth = make_text_instance(kind="us", rows=96, columns=224, size=14, seed=7)
    image = display_frame(ds)
    first = engine.read(image)
    again = engine.read(image)
    assert first == again and all(found(t, first) for t in truth)
    assert len(batches) == 1  # one batch, on the first read only
    shifted = engine.read(image[4:])  # new crops: recognised
    assert len(batches) == 2 and len(shifted) == len(first)


@pytest.mark.parametrize("threads", [1, 2])
def test_engine_threads_sleep_when_idle(threads: int) -> None:
    from gantry.ocr._engine import RapidOcrEngine

    engine = RapidOcrEngine(threads=threads)
    for wrapper in (engine._ocr.text_det.infer, engine._ocr.text_rec.session):
        opts = wrapper.session.get_session_options()
        assert opts.intra_op_num_threads == threads
        if threads > 1:
            assert opts.get_session_config_entry("session.intra_op.allow_spinning") == "0"
