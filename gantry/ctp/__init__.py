"""CTP converters: RSNA CTP anonymizer scripts (pixel and header) → Gantry config v2.

``gantry ctp convert`` and ``python -m gantry.ctp`` run :func:`convert_file`;
``docs/ctp.md`` describes every mapping.  Inside the package:

* ``_report`` — :class:`ConversionReport`, :class:`ReportItem` and
  :class:`CTPScriptError`, shared by both converters (a leaf module);
* ``_pixel`` — DicomPixelAnonymizer scripts → ``machines`` entries;
* ``_header`` — DicomAnonymizer (XML) scripts → ``phi_tags``, ``keep``, …;
* ``_convert`` — files, kind detection, YAML output and the command line.

``gantry.utils`` and ``gantry.utils.ctp_parser``, the earlier names, re-export
these names and keep working.

Examples
--------
>>> from gantry.ctp import convert_pixel_script
>>> cfg, report = convert_pixel_script('{ Manufacturer.equals("X") } (0,0,8,8)')
>>> report.entries_out
1
"""

from __future__ import annotations

from gantry.ctp._convert import (
    convert_file,
    convert_header_script,
    convert_pixel_script,
    default_report_path,
    detect_kind,
    main,
    write_report,
)
from gantry.ctp._report import ConversionReport, CTPScriptError, ReportItem

__all__ = [
    "CTPScriptError",
    "ConversionReport",
    "ReportItem",
    "convert_file",
    "convert_header_script",
    "convert_pixel_script",
    "default_report_path",
    "detect_kind",
    "main",
    "write_report",
]
