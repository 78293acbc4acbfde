"""Shared helpers for the OCR tests: engines, box matching."""

from __future__ import annotations

import shutil

import pytest

TESSERACT_SKIP = "tesseract-ocr is not installed (apt-get install -y tesseract-ocr)"


@pytest.fixture(params=["rapidocr", "tesseract"])
def engine_name(request: pytest.FixtureRequest) -> str:
    if request.param == "tesseract" and shutil.which("tesseract") is None:
        pytest.skip(TESSERACT_SKIP)
    return str(request.param)


@pytest.fixture
def tesseract() -> str:
    if shutil.which("tesseract") is None:
        pytest.skip(TESSERACT_SKIP)
    return "tesseract"
