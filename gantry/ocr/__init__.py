"""Burned-in text: render frames as a viewer shows them, OCR them, flag identifying text.

Two engines sit behind one interface (:class:`OcrEngine`): ``"rapidocr"``, the
default, whose ONNX models ship inside its PyPI wheel (``pip install
'gantry[ocr]'``), and ``"tesseract"``, used when the ``tesseract-ocr`` program
is installed.  :func:`scan_pixels` writes the ``text_regions`` and
``ocr_scans`` tables that the audit rule ``burned-in-ocr``, the plan's REDACT
actions and the export's second OCR pass read.  ``docs/ocr.md`` has the details.

Examples
--------
>>> from gantry.ocr import TextBox, phi_kinds, sample_frames
>>> sample_frames(30)
[0, 15, 29]
>>> phi_kinds("DOB 1961-03-12")
['pattern:date', 'pattern:label']
>>> TextBox(0, 12, 0, 40, 0.9, "L").padded(2, 100, 100).as_zone()
(0, 14, 0, 42)
"""

from gantry.ocr._display import display_frame, frame_count, sample_frames
from gantry.ocr._engine import ENGINES, OcrEngine, TextBox, available_engines, get_engine
from gantry.ocr._match import IdentityTokens, phi_kinds
from gantry.ocr._scan import (
    REGIONS_SCHEMA,
    SCANS_SCHEMA,
    ScanResult,
    current_regions,
    current_scans,
    scan_file,
    scan_pixels,
)

__all__ = [
    "ENGINES",
    "REGIONS_SCHEMA",
    "SCANS_SCHEMA",
    "IdentityTokens",
    "OcrEngine",
    "ScanResult",
    "TextBox",
    "available_engines",
    "current_regions",
    "current_scans",
    "display_frame",
    "frame_count",
    "get_engine",
    "phi_kinds",
    "sample_frames",
    "scan_file",
    "scan_pixels",
]
