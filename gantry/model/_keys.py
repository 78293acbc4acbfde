"""Element keys (keyword, tag or path) and edit values (Python ⇄ JSON text).

An edit value is stored as JSON text that is already a valid DICOM value for the
element's VR, so the export stage can write it as is: dates as ``"YYYYMMDD"``,
numbers as JSON numbers, multi-valued elements as JSON lists, ``null`` for an
empty value. Reading it back gives the same Python types as the ``instances``
columns (``datetime.date`` for DA, ``float`` for DS, ``int`` for IS, lists).
"""

from __future__ import annotations

import datetime as dt
import difflib
import functools
import json
import re
from dataclasses import dataclass
from typing import Any

from pydicom.datadict import (
    dictionary_has_tag,
    dictionary_VM,
    dictionary_VR,
    keyword_dict,
    keyword_for_tag,
    tag_for_keyword,
)
from pydicom.tag import BaseTag
from pydicom.valuerep import PersonName, format_number_as_ds

from gantry.errors import ConfigError

__all__ = ["ElementKey", "decode_value", "encode_value", "resolve_key"]

INSTANCE_TAG = "*"
"""The ``tag`` of instance-level edit rows (``exclude`` / ``restore``)."""

_HEX8 = re.compile(r"[0-9A-Fa-f]{8}")
_GROUP_ELEM = re.compile(r"\(?\s*([0-9A-Fa-f]{4})\s*,\s*([0-9A-Fa-f]{4})\s*\)?")
_PATH_PART = re.compile(r"([0-9A-Fa-f]{8})(?:\[(\d+)\])?")

_INT_VRS = frozenset({"IS", "SS", "US", "SL", "UL", "SV", "UV"})
_FLOAT_VRS = frozenset({"DS", "FL", "FD"})
_BULK_VRS = frozenset({"OB", "OW", "OF", "OD", "OL", "OV", "UN", "SQ"})
_STRING_VRS = frozenset(
    {"AE", "AS", "CS", "DA", "DT", "LO", "LT", "PN", "SH", "ST", "TM", "UC", "UI", "UR", "UT", "AT"}
)


@dataclass(frozen=True, slots=True)
class ElementKey:
    """A resolved element key.

    Attributes
    ----------
    tag : str
        8-hex tag of the (last) element, upper case.
    path : str
        Element path; equal to ``tag`` for a top-level element.
    keyword : str or None
        Dictionary keyword of ``tag`` (None for private or unknown tags).
    """

    tag: str
    path: str
    keyword: str | None

    @property
    def top_level(self) -> bool:
        return self.path == self.tag

    @property
    def is_private(self) -> bool:
        return int(self.tag[:4], 16) % 2 == 1


def _keyword_of(tag: str) -> str | None:
    value = int(tag, 16)
    if value >> 16 & 1:  # private group
        return None
    return keyword_for_tag(value) or None


@functools.lru_cache(maxsize=4096)
def _resolve_text(text: str) -> ElementKey:
    s = text.strip()
    if _HEX8.fullmatch(s):
        tag = s.upper()
        return ElementKey(tag, tag, _keyword_of(tag))
    m = _GROUP_ELEM.fullmatch(s)
    if m:
        tag = (m.group(1) + m.group(2)).upper()
        return ElementKey(tag, tag, _keyword_of(tag))
    if "." in s or "[" in s:
        parts = s.split(".")
        for i, part in enumerate(parts):
            pm = _PATH_PART.fullmatch(part)
            if pm is None or (i < len(parts) - 1 and pm.group(2) is None):
                raise ConfigError(
                    "key",
                    expected="an element path such as '0040A730[0].0040A123'",
                    got=text,
                )
        last = parts[-1]
        if "[" in last:
            raise ConfigError("key", expected="a path ending with an element tag", got=text)
        tag = last.upper()
        path = ".".join(p.upper() for p in parts)
        return ElementKey(tag, path, _keyword_of(tag))
    value = tag_for_keyword(s)
    if value is None:
        close = difflib.get_close_matches(s, keyword_dict.keys(), n=1)
        raise ConfigError(
            "key",
            expected="a DICOM keyword, an 8-hex tag or an element path",
            got=text,
            hint=f"did you mean {close[0]!r}?" if close else None,
        )
    tag = f"{value:08X}"
    return ElementKey(tag, tag, s)


def resolve_key(key: str | int | tuple[int, int] | BaseTag) -> ElementKey:
    """Resolve a keyword, a tag (``"00100010"``, ``"0010,0010"``, ``0x00100010``,
    ``(0x0010, 0x0010)``) or an element path (``"0040A730[0].0040A123"``).

    Examples
    --------
    >>> resolve_key("PatientName")
    ElementKey(tag='00100010', path='00100010', keyword='PatientName')
    >>> resolve_key("(0010,0020)").keyword
    'PatientID'
    >>> resolve_key("0040a730[0].0040A123").path
    '0040A730[0].0040A123'
    """
    if isinstance(key, str):
        return _resolve_text(key)
    if isinstance(key, tuple) and len(key) == 2:
        key = (int(key[0]) << 16) | int(key[1])
    if isinstance(key, int) and 0 <= key <= 0xFFFFFFFF:
        tag = f"{int(key):08X}"
        return ElementKey(tag, tag, _keyword_of(tag))
    raise ConfigError("key", expected="a keyword, tag or element path", got=key)


def dictionary_vr(tag: str) -> str | None:
    """The dictionary VR of a public tag (the first one when several), else None."""
    value = int(tag, 16)
    if not dictionary_has_tag(value):
        return None
    return dictionary_VR(value).split(" or ")[0]


def _multi(tag: str) -> bool:
    value = int(tag, 16)
    return dictionary_has_tag(value) and dictionary_VM(value) != "1"


# -- values ---------------------------------------------------------------------------------


def _date_text(value: Any, keyword: str) -> str:
    if isinstance(value, dt.datetime):
        return value.strftime("%Y%m%d")
    if isinstance(value, dt.date):
        return value.strftime("%Y%m%d")
    if isinstance(value, str):
        s = value.strip()
        for fmt in ("%Y%m%d", "%Y-%m-%d"):
            try:
                return dt.datetime.strptime(s, fmt).strftime("%Y%m%d")
            except ValueError:
                pass
    raise ConfigError(
        keyword, expected="a date (datetime.date, 'YYYYMMDD' or 'YYYY-MM-DD')", got=value
    )


def _one(vr: str, value: Any, keyword: str) -> Any:
    if value is None:
        return None
    if vr == "DA":
        return _date_text(value, keyword)
    if vr == "DT" and isinstance(value, dt.datetime):
        return value.strftime("%Y%m%d%H%M%S.%f")
    if vr == "TM" and isinstance(value, dt.time):
        return value.strftime("%H%M%S.%f")
    if vr in _INT_VRS:
        if isinstance(value, bool) or not isinstance(value, int | str):
            raise ConfigError(keyword, expected=f"an integer ({vr})", got=value)
        try:
            return int(value)
        except ValueError:
            raise ConfigError(keyword, expected=f"an integer ({vr})", got=value) from None
    if vr in _FLOAT_VRS:
        if isinstance(value, bool) or not isinstance(value, int | float | str):
            raise ConfigError(keyword, expected=f"a number ({vr})", got=value)
        try:
            number = float(value)
        except ValueError:
            raise ConfigError(keyword, expected=f"a number ({vr})", got=value) from None
        if vr == "DS" and len(repr(number)) > 16:
            number = float(format_number_as_ds(number))
        return number
    if vr == "AT" and isinstance(value, int):
        return f"{value:08X}"
    if isinstance(value, PersonName):
        return str(value)
    if isinstance(value, str):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    raise ConfigError(keyword, expected=f"a string ({vr})", got=type(value).__name__)


def encode_value(key: ElementKey, vr: str, value: Any) -> str:
    """The JSON text stored for ``value`` in element ``key`` of VR ``vr``.

    Examples
    --------
    >>> import datetime as dt
    >>> k = resolve_key("StudyDate")
    >>> encode_value(k, "DA", dt.date(2020, 1, 2))
    '"20200102"'
    >>> encode_value(resolve_key("PixelSpacing"), "DS", [0.5, "0.5"])
    '[0.5, 0.5]'
    """
    name = key.keyword or key.tag
    if vr in _BULK_VRS:
        raise ConfigError(
            name,
            expected="an element with a text or numeric VR",
            got=vr,
            hint="set pixels with `instance.pixel_array = array`"
            if key.tag == "7FE00010"
            else "binary and sequence elements cannot be edited",
        )
    if vr not in _STRING_VRS | _INT_VRS | _FLOAT_VRS:
        raise ConfigError(name, expected="a known VR", got=vr)
    if isinstance(value, list | tuple):
        if not _multi(key.tag) and not key.is_private:
            raise ConfigError(name, expected="a single value (VM 1)", got=type(value).__name__)
        return json.dumps([_one(vr, v, name) for v in value])
    return json.dumps(_one(vr, value, name))


def decode_value(vr: str | None, text: str | None) -> Any:
    """The Python value of a stored edit (``datetime.date`` for DA).

    Examples
    --------
    >>> decode_value("DA", '"20200102"')
    datetime.date(2020, 1, 2)
    >>> decode_value("DS", "[0.5, 0.5]")
    [0.5, 0.5]
    """
    if text is None:
        return None
    value = json.loads(text)
    if vr == "DA":
        if isinstance(value, list):
            return [_to_date(v) for v in value]
        return _to_date(value)
    return value


def _to_date(text: Any) -> Any:
    if not isinstance(text, str):
        return text
    try:
        return dt.datetime.strptime(text, "%Y%m%d").date()
    except ValueError:
        return text
