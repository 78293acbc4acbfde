"""The DICOM byte layout the byte-level export path reads and writes.

A leaf of ``gantry.export``: :mod:`gantry.export._rewrite` (which writes the
clean header) and :mod:`gantry.export._header_check` (which verifies it) share
these element headers, tags, VR tables and element-path parsing.
"""

from __future__ import annotations

import re
import struct
from typing import Final

from pydicom.datadict import dictionary_VR

_UNDEFINED: Final = 0xFFFFFFFF
_DUMMY_BY_PYDICOM: Final = frozenset({"SQ", "OB", "OW", "OF", "OL", "OD", "OV", "UN"})
_ITEM: Final = 0xFFFEE000
_ITEM_END: Final = 0xFFFEE00D
_SEQ_END: Final = 0xFFFEE0DD
_PIXEL_DATA: Final = 0x7FE00010
_PIXEL_TAG_BYTES: Final = b"\xe0\x7f\x10\x00"
_CHARSET: Final = 0x00080005
_SOP_CLASS: Final = 0x00080016
_SOP_INSTANCE: Final = 0x00080018
_DEFAULT_SOP_CLASS: Final = "1.2.840.10008.5.1.4.1.1.7"
_IMPLICIT_LE: Final = "1.2.840.10008.1.2"

_U16: Final = struct.Struct("<H")
_U32: Final = struct.Struct("<L")
_TAG: Final = struct.Struct("<HH")
_IMPLICIT_HDR: Final = struct.Struct("<HHL")
_EXPLICIT_HDR: Final = struct.Struct("<HH2sH")
_LONG_HDR: Final = struct.Struct("<HH2sHL")

# explicit VR -> header length (8: 2-byte length, 12: reserved + 4-byte length)
_LONG_VRS: Final = frozenset(
    {"OB", "OD", "OF", "OL", "OV", "OW", "SQ", "SV", "UC", "UN", "UR", "UT", "UV"}
)
_SHORT_VRS: Final = frozenset(
    {"AE", "AS", "AT", "CS", "DA", "DS", "DT", "FD", "FL", "IS", "LO", "LT", "PN", "SH", "SL"}
    | {"SS", "ST", "TM", "UI", "UL", "US"}
)
# explicit VR bytes -> (VR, True for a 4-byte length)
_VR_INFO: Final[dict[bytes, tuple[str, bool]]] = {
    **{vr.encode(): (vr, True) for vr in _LONG_VRS},
    **{vr.encode(): (vr, False) for vr in _SHORT_VRS},
}
_HEADER_LEN: Final[dict[bytes, int]] = {
    **{vr.encode(): 12 for vr in _LONG_VRS},
    **{vr.encode(): 8 for vr in _SHORT_VRS},
}
_TEXT_VRS: Final = frozenset(
    {"AE", "AS", "CS", "DA", "DS", "DT", "IS", "LO", "LT", "PN", "SH", "ST", "TM", "UC"}
    | {"UI", "UR", "UT"}
)
_NUMBER_FORMAT: Final = {
    "US": "H", "SS": "h", "UL": "L", "SL": "l", "FL": "f", "FD": "d", "SV": "q", "UV": "Q",
}  # fmt: skip
_DS: Final = re.compile(r"[ ]*[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?[ ]*")
_IS: Final = re.compile(r"[ ]*[+-]?\d+[ ]*")
_PATH_PART: Final = re.compile(r"([0-9A-Fa-f]{8})\[(\d+)\]")
_TAG_TEXT: Final = re.compile(r"[0-9A-Fa-f]{8}")
_UID_TEXT: Final = re.compile(rb"[0-9.]+")

# top-level elements whose final value the caller needs: outcome field -> (tag, VR)
_FIELDS: Final = {
    "patient_id": (0x00100020, "LO"),
    "study_uid": (0x0020000D, "UI"),
    "series_uid": (0x0020000E, "UI"),
    "sop_uid": (_SOP_INSTANCE, "UI"),
    "modality": (0x00080060, "CS"),
    "series_description": (0x0008103E, "LO"),
}
_WATCH: Final = frozenset({_CHARSET, _SOP_CLASS} | {tag for tag, _ in _FIELDS.values()})
_CODECS: Final = {"": "latin_1", "ISO_IR 100": "latin_1", "ISO_IR 192": "utf_8"}

_REMOVED: Final = "removed"


class _Unsupported(Exception):
    """Something the fast path does not reproduce exactly: use the pydicom path."""


_PATHS: dict[str, tuple[tuple[tuple[int, int], ...], int]] = {}


def _parse_path(path: str) -> tuple[tuple[tuple[int, int], ...], int]:
    """``((sequence tag, item index), ...), tag`` of an element path (cached)."""
    try:
        return _PATHS[path]
    except KeyError:
        pass
    parts = path.split(".")
    steps = []
    for part in parts[:-1]:
        m = _PATH_PART.fullmatch(part)
        if m is None:
            raise _Unsupported(f"path {path!r}")
        steps.append((int(m.group(1), 16), int(m.group(2))))
    if _TAG_TEXT.fullmatch(parts[-1]) is None:
        raise _Unsupported(f"path {path!r}")
    parsed = (tuple(steps), int(parts[-1], 16))
    if len(_PATHS) < 100_000:
        _PATHS[path] = parsed
    return parsed


_DICT_VR: dict[int, str | None] = {}


def _dict_vr(tag: int) -> str | None:
    """The dictionary VR of a public tag; None for private and unknown tags."""
    try:
        return _DICT_VR[tag]
    except KeyError:
        pass
    vr: str | None = None
    if (tag >> 16) % 2 == 0:
        try:
            vr = dictionary_VR(tag)
        except KeyError:
            vr = None
    _DICT_VR[tag] = vr
    return vr
