"""The canonical text of element values, shared by both header readers.

Ingest has two readers: a fast struct-based walker (``_walker``) that decodes
element bytes itself, and a pydicom-based reference reader (``_reference``).
Both must produce the same ``elements.value`` for the same element, so the
rules live here, written once for each side:

- :func:`render_pydicom` turns a value pydicom produced into text;
- :data:`DECODERS` turn the raw bytes of an element into the same text,
  reproducing pydicom 3's value conversion.  A decoder raises
  :class:`NeedsPydicom` for anything it does not reproduce exactly (an escape
  sequence in text, invalid UTF-8, an invalid DS / IS string, a byte count
  that is not a multiple of the value size); the caller then re-reads the
  whole file with pydicom.

The text rules:

- string VRs as pydicom presents them: ``str`` of each value joined by
  ``\\``, padding stripped the way pydicom strips it for that VR, PN as the
  decoded name with empty trailing component groups dropped, DS / IS as the
  original string;
- binary numbers (US SS UL SL SV UV FL FD) as ``str()`` of the Python number
  joined by ``\\`` (FL goes through float32 to a Python float, as in pydicom);
- AT as 8 upper-case hex digits per tag joined by ``\\``;
- an empty value is ``""``;
- SQ and bulk VRs (OB OW OF OD OL OV UN) have no text; bulk values are
  identified by :func:`value_hash` instead (pixel data: by length only).

This module also decides which top-level elements become typed
``instances`` columns and with which type (:func:`column_type`); the type
depends only on the keyword, so shards written by different batches agree.

Examples
--------
>>> from gantry.ingest._values import DECODERS, column_type
>>> DECODERS["DS"](b" 0.5\\\\-1.25 ", "latin_1", "<")
'0.5\\\\-1.25'
>>> DECODERS["PN"](b"Doe^Jane==", "latin_1", "<")
'Doe^Jane'
>>> DECODERS["FL"](b"\\x00\\x00\\xc0\\x3f", "latin_1", "<")
'1.5'
>>> column_type("PixelSpacing")
ListType(list<item: double>)
>>> column_type("PixelData") is None
True
"""

from __future__ import annotations

import math
import struct
from collections.abc import Callable, Iterable
from functools import cache
from hashlib import blake2b
from typing import Any, Final

import pyarrow as pa
from pydicom.datadict import dictionary_has_tag, dictionary_keyword, dictionary_VM, dictionary_VR

__all__ = [
    "BULK_VRS",
    "DECODERS",
    "DICOMDIR_UID",
    "IMPLICIT_VR_LE",
    "NeedsPydicom",
    "PIXEL_DATA",
    "PIXEL_TAGS",
    "SKIP_REASONS",
    "SkipFile",
    "column_keyword",
    "column_type",
    "render_pydicom",
    "value_hash",
]

#: VRs whose values are bytes: no text, a hash instead.
BULK_VRS: Final = frozenset({"OB", "OW", "OF", "OD", "OL", "OV", "UN"})
#: (7FE0,0010) Pixel Data.
PIXEL_DATA: Final = 0x7FE00010
#: Pixel Data, Float Pixel Data, Double Float Pixel Data: never read, never hashed.
PIXEL_TAGS: Final = frozenset({0x7FE00008, 0x7FE00009, 0x7FE00010})
#: Media Storage Directory Storage (a DICOMDIR).
DICOMDIR_UID: Final = "1.2.840.10008.1.3.10"
#: The transfer syntax assumed when the file meta has none.
IMPLICIT_VR_LE: Final = "1.2.840.10008.1.2"
#: Every value of ``skipped.reason``.
SKIP_REASONS: Final = (
    "empty",
    "not_dicom",
    "truncated",
    "dicomdir",
    "unreadable",
    "io_error",
    "over_limit",
)

_LATIN_1: Final = "latin_1"
_ESC: Final = b"\x1b"


class NeedsPydicom(Exception):
    """The fast path met something only pydicom handles exactly; re-read the file."""


class SkipFile(Exception):
    """A file that is not indexed, with its ``skipped.reason`` and a PHI-free detail."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


def value_hash(data: bytes | bytearray | memoryview | None) -> str:
    """Return the blake2b-16 hex digest identifying a bulk value.

    Examples
    --------
    >>> value_hash(b"")
    'cae66941d9efbd404e4d88758ea67670'
    """
    return blake2b(data or b"", digest_size=16).hexdigest()


# ---------------------------------------------------------------------------
# pydicom value -> text (reference reader)


def render_pydicom(vr: str, value: Any) -> str | None:
    """Return the canonical text of a value as pydicom holds it.

    Parameters
    ----------
    vr : str
        The element's VR after pydicom's corrections.
    value : Any
        ``DataElement.value``.

    Returns
    -------
    str or None
        ``None`` for sequences and byte values (bulk VRs, or a value pydicom
        could not convert), else the text.

    Examples
    --------
    >>> from pydicom.valuerep import DSfloat
    >>> render_pydicom("DS", [DSfloat("1.50"), DSfloat("2")])
    '1.50\\\\2'
    >>> render_pydicom("AT", 0x00100010)
    '00100010'
    >>> render_pydicom("US", None)
    ''
    """
    if vr == "SQ" or vr in BULK_VRS or isinstance(value, bytes | bytearray | memoryview):
        return None
    if value is None:
        return ""
    multiple = isinstance(value, list | tuple) or type(value).__name__ == "MultiValue"
    items: Iterable[Any] = value if multiple else (value,)
    if vr == "AT":
        return "\\".join(f"{int(v):08X}" for v in items)
    if multiple:
        return "\\".join(str(v) for v in items)
    return str(value)


# ---------------------------------------------------------------------------
# raw bytes -> text (fast path), reproducing pydicom.values.convert_value

Decoder = Callable[[bytes | bytearray, str, str], str]


def _decode_text(raw: bytes | bytearray, codec: str) -> str:
    # pydicom decodes with the first encoding unless there is an escape
    # sequence (ISO 2022 code extensions); on a decoding error it warns and
    # substitutes replacement characters.  Both cases go to pydicom.
    if _ESC in raw:
        raise NeedsPydicom("escape sequence in text")
    try:
        return raw.decode(codec)
    except UnicodeDecodeError:
        raise NeedsPydicom("undecodable text") from None


def _string(raw: bytes | bytearray, codec: str, endian: str) -> str:
    # AS CS DA DT TM: default encoding, trailing spaces / NULs stripped once
    return raw.decode(_LATIN_1).rstrip(" \x00")


def _ui(raw: bytes | bytearray, codec: str, endian: str) -> str:
    # UID() also strips whitespace around each value
    text = raw.decode(_LATIN_1).rstrip(" \x00")
    if "\\" not in text:
        return text.strip()
    return "\\".join(v.strip() for v in text.split("\\"))


def _ae(raw: bytes | bytearray, codec: str, endian: str) -> str:
    return "\\".join(v.strip() for v in raw.decode(_LATIN_1).split("\\"))


def _ur(raw: bytes | bytearray, codec: str, endian: str) -> str:
    return raw.decode(_LATIN_1).rstrip()


def _multi_text(raw: bytes | bytearray, codec: str, endian: str) -> str:
    # LO SH UC: each value stripped of trailing spaces / NULs
    text = _decode_text(raw, codec)
    if "\\" not in text:
        return text.rstrip("\x00 ")
    return "\\".join(v.rstrip("\x00 ") for v in text.split("\\"))


def _single_text(raw: bytes | bytearray, codec: str, endian: str) -> str:
    # LT ST UT: one value, backslash is an ordinary character
    return _decode_text(raw, codec).rstrip("\x00 ")


def _person_name(raw: bytes | bytearray, codec: str, endian: str) -> str:
    # PersonName drops empty trailing component groups ("A^B==" -> "A^B")
    text = _decode_text(raw.rstrip(b"\x00 "), codec)
    if "\\" not in text:
        return text.rstrip("=")
    return "\\".join(v.rstrip("=") for v in text.split("\\"))


def _ds(raw: bytes | bytearray, codec: str, endian: str) -> str:
    # DSfloat keeps the stripped original string; a blank value stays as is
    text = raw.decode(_LATIN_1).strip().rstrip(" \x00")
    out = []
    for part in text.split("\\"):
        stripped = part.strip()
        if stripped:
            try:
                float(part)
            except ValueError:
                raise NeedsPydicom("invalid DS") from None
            out.append(stripped)
        else:
            out.append(part)
    return "\\".join(out)


def _is(raw: bytes | bytearray, codec: str, endian: str) -> str:
    # IS keeps the stripped original string, a blank value stays as is, and
    # a non-integral number becomes an ISfloat, whose str() is the float's
    text = raw.decode(_LATIN_1).rstrip(" \x00")
    out = []
    for part in text.split("\\"):
        stripped = part.strip()
        if stripped:
            try:
                int(part)
            except ValueError:
                try:
                    number = float(part)
                except ValueError:
                    raise NeedsPydicom("invalid IS") from None
                if not math.isfinite(number):
                    raise NeedsPydicom("invalid IS") from None
                if number != int(number):
                    stripped = str(number)
            out.append(stripped)
        else:
            out.append(part)
    return "\\".join(out)


def _numbers(code: str) -> Decoder:
    size = struct.calcsize("=" + code)
    singles = {e: struct.Struct(e + code).unpack for e in "<>"}

    def decode(raw: bytes | bytearray, codec: str, endian: str) -> str:
        count, rest = divmod(len(raw), size)
        if rest:
            raise NeedsPydicom("value length is not a multiple of the value size")
        if count == 1:
            return str(singles[endian](raw)[0])
        return "\\".join(map(str, struct.unpack(f"{endian}{count}{code}", raw)))

    return decode


def _at(raw: bytes | bytearray, codec: str, endian: str) -> str:
    count, rest = divmod(len(raw), 4)
    if rest:
        raise NeedsPydicom("AT length is not a multiple of 4")
    words = struct.unpack(f"{endian}{2 * count}H", raw)
    return "\\".join(f"{words[i]:04X}{words[i + 1]:04X}" for i in range(0, len(words), 2))


#: Decoder per VR: ``decoder(raw, codec, endian) -> text``; `codec` is the
#: Python codec of the dataset's character set, `endian` ``"<"`` or ``">"``.
DECODERS: Final[dict[str, Decoder]] = {
    "AE": _ae,
    "AS": _string,
    "AT": _at,
    "CS": _string,
    "DA": _string,
    "DS": _ds,
    "DT": _string,
    "FD": _numbers("d"),
    "FL": _numbers("f"),
    "IS": _is,
    "LO": _multi_text,
    "LT": _single_text,
    "PN": _person_name,
    "SH": _multi_text,
    "SL": _numbers("l"),
    "SS": _numbers("h"),
    "ST": _single_text,
    "SV": _numbers("q"),
    "TM": _string,
    "UC": _multi_text,
    "UI": _ui,
    "UL": _numbers("L"),
    "UR": _ur,
    "US": _numbers("H"),
    "UT": _single_text,
    "UV": _numbers("Q"),
}


# ---------------------------------------------------------------------------
# typed instance columns

_FLOAT_VRS: Final = frozenset({"DS", "FL", "FD"})
_INT_VRS: Final = frozenset({"IS", "SS", "US", "SL", "UL", "SV", "UV", "US or SS"})


@cache
def column_type(keyword: str) -> pa.DataType | None:
    """Return the Arrow type of the ``instances`` column for `keyword`.

    DS, FL, FD become float64; IS, SS, US, SL, UL, SV, UV (and "US or SS")
    int64; DA date32; every other non-bulk VR string.  When the dictionary VM
    is not ``"1"`` the column is a list of that type.  Sequences and bulk
    VRs (including ambiguous VRs that may be bulk) are not columns: ``None``.

    Examples
    --------
    >>> column_type("Rows"), column_type("ImageType"), column_type("StudyDate")
    (DataType(int64), ListType(list<item: string>), DataType(date32[day]))
    """
    try:
        vr = dictionary_VR(keyword)
        vm = dictionary_VM(keyword)
    except KeyError:
        return None
    if vr == "SQ" or vr in BULK_VRS or (" or " in vr and vr != "US or SS"):
        return None
    item: pa.DataType
    if vr in _FLOAT_VRS:
        item = pa.float64()
    elif vr in _INT_VRS:
        item = pa.int64()
    elif vr == "DA":
        item = pa.date32()
    else:
        item = pa.string()
    return item if vm == "1" else pa.list_(item)


@cache
def column_keyword(tag: int) -> str | None:
    """Return the keyword naming the ``instances`` column of a top-level `tag`.

    Only public tags with their own entry in the DICOM dictionary (repeating
    groups such as 60xx are left to ``elements``) and a column type qualify.

    Examples
    --------
    >>> column_keyword(0x00100010), column_keyword(0x7FE00010), column_keyword(0x00091010)
    ('PatientName', None, None)
    """
    if (tag >> 16) & 1 or not dictionary_has_tag(tag):
        return None
    keyword = dictionary_keyword(tag)
    if not keyword or column_type(keyword) is None:
        return None
    return keyword
