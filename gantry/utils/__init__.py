"""Utilities around Gantry: converters from other tools' formats.

* :mod:`gantry.utils.ctp_parser` converts RSNA CTP anonymizer scripts (pixel
  and header) into Gantry config v2 (``gantry ctp convert``).

Names are imported on first use, so ``python -m gantry.utils.ctp_parser``
runs without importing the module twice.

Examples
--------
>>> from gantry.utils import convert_pixel_script
>>> cfg, report = convert_pixel_script('{ Manufacturer.equals("X") } (0,0,8,8)')
>>> report.entries_out
1
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from gantry.utils.ctp_parser import (
        ConversionReport,
        CTPScriptError,
        ReportItem,
        convert_file,
        convert_header_script,
        convert_pixel_script,
    )

__all__ = [
    "CTPScriptError",
    "ConversionReport",
    "ReportItem",
    "convert_file",
    "convert_header_script",
    "convert_pixel_script",
]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from gantry.utils import ctp_parser

        return getattr(ctp_parser, name)
    raise AttributeError(f"module 'gantry.utils' has no attribute {name!r}")
