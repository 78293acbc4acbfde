"""The earlier home of the CTP converters, now :mod:`gantry.ctp`.

These names, and ``python -m gantry.utils.ctp_parser``, keep working: they
are the objects of :mod:`gantry.ctp`.

Examples
--------
>>> from gantry.utils import convert_pixel_script
>>> cfg, report = convert_pixel_script('{ Manufacturer.equals("X") } (0,0,8,8)')
>>> report.entries_out
1
"""

from __future__ import annotations

from gantry.ctp import (
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
