"""Find original values in a written file: the matching rules of verification.

Two kinds of original values are searched for (:class:`Token`):

* *identity* values — the patient's name parts, IDs (other IDs and issuers
  included), accession number, birth date, address, phone numbers, and every
  value the plan pseudonymises — must occur nowhere in the file's bytes or path;
* every *other* original value of an element the plan removes, empties or
  replaces may occur only inside elements the plan keeps (whose value is then
  their own, unchanged original value).

Matching is precise and case-insensitive: letters, digits and ``_`` are word
characters, so a token only matches as a whole word (``TOSHIBA`` is not in
``TOSHIBA_MEC``, ``ANON`` is not in ``ANON_000008``); digits inside a UID or
another number are no match (``1179`` is not in ``2.25.1179…``).  A value with
letters beyond ASCII is searched for as the file encodes it (its Specific
Character Set, and UTF-8), written in upper, lower and title case.  A failure
names the output element path and the source attribute, never the value; its
keyed hash lets a user acknowledge a known false alarm in the config.
"""

from __future__ import annotations

import struct
from bisect import bisect_right
from collections.abc import Iterable
from typing import Any, Final, NamedTuple

from gantry.plan._match import contains, find

__all__ = [
    "Leak",
    "Token",
    "contains",
    "find",
    "first_leak",
    "open_ranges",
    "plan_tree",
]


class Token(NamedTuple):
    """One original value to search for (upper-case text)."""

    text: str
    identity: bool
    tag: str  # 8 hex digits of the source attribute
    keyword: str
    digest: str  # keyed hash of the value: what an acknowledgement names

    def source(self) -> str:
        """``(gggg,eeee) Keyword`` of the source attribute."""
        return f"({self.tag[:4]},{self.tag[4:]}) {self.keyword or 'private or unknown'}"

    def reason(self, where: str | None) -> str:
        """The failure reason for a hit at output element path ``where`` (None: the file's path).

        Examples
        --------
        >>> Token("DOE", True, "00100010", "PatientName", "ab" * 8).reason("00204000")
        'an original identifying value of (0010,0010) PatientName is in 00204000 (value hash abababababababab)'
        >>> Token("STANDARD", False, "00181030", "ProtocolName", "cd" * 8).reason(None)
        "an original value of (0018,1030) ProtocolName is in the file's path (value hash cdcdcdcdcdcdcdcd)"
        """
        kind = "an original identifying value" if self.identity else "an original value"
        if where is None:
            place = "the file's path"
        elif self.identity or where == "the file meta":
            place = where
        else:
            place = f"{where}, which the plan does not keep"
        return f"{kind} of {self.source()} is in {place} (value hash {self.digest})"


# ---------------------------------------------------------------- the plan as a tree
def plan_tree(paths: Iterable[str]) -> dict[int, Any]:
    """Paths the plan writes, as nested dicts: ``tag -> True`` or ``{index: subtree}``.

    ``True`` marks an element whose whole value the plan wrote (or that it left
    for removal); a dict marks a sequence with plan rows inside some items.
    """
    root: dict[int, Any] = {}
    for path in paths:
        level = root
        parts = path.split(".")
        try:
            for part in parts[:-1]:
                tag_hex, _, rest = part.partition("[")
                node = level.get(int(tag_hex, 16))
                if node is True:
                    break  # inside a sequence written whole
                if node is None:
                    node = level[int(tag_hex, 16)] = {}
                level = node.setdefault(int(rest.rstrip("]")), {})
            else:
                level[int(parts[-1], 16)] = True
        except ValueError:
            continue
    return root


# ---------------------------------------------------------------- walking the output
_LONG: Final = frozenset(
    {b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"SV", b"UC", b"UN", b"UR", b"UT", b"UV"}
)
_UNDEFINED: Final = 0xFFFFFFFF
_ITEM: Final = 0xFFFEE000
_ITEM_END: Final = 0xFFFEE00D
_SEQ_END: Final = 0xFFFEE0DD


class _Walk:
    """Element value ranges of an encoded data set (little or big endian)."""

    def __init__(self, buf: bytes, *, implicit: bool, big: bool) -> None:
        self.buf = buf
        self.implicit = implicit
        e = ">" if big else "<"
        self.u16 = struct.Struct(e + "H")
        self.u32 = struct.Struct(e + "L")
        self.tag = struct.Struct(e + "HH")
        self.item = struct.Struct(e + "HHL")
        self.out: list[tuple[int, int, str]] = []

    def header(self, pos: int) -> tuple[int, bytes | None, int, int]:
        """``tag, vr, length, value position`` of the element at ``pos``."""
        g, el = self.tag.unpack_from(self.buf, pos)
        tag = g << 16 | el
        if self.implicit or g == 0xFFFE:
            return tag, None, self.u32.unpack_from(self.buf, pos + 4)[0], pos + 8
        vr = bytes(self.buf[pos + 4 : pos + 6])
        if vr in _LONG:
            return tag, vr, self.u32.unpack_from(self.buf, pos + 8)[0], pos + 12
        return tag, vr, self.u16.unpack_from(self.buf, pos + 6)[0], pos + 8

    def dataset(self, pos: int, end: int | None, tree: Any, prefix: str, full: bool) -> int:
        """Walk one data set; record the ranges ``tree`` marks (all leaves when ``full``)."""
        buf = self.buf
        while end is None or pos < end:
            if pos + 8 > len(buf):
                return len(buf)
            tag, vr, length, vpos = self.header(pos)
            if tag == _ITEM_END:
                return vpos
            node = tree.get(tag) if isinstance(tree, dict) else None
            path = f"{prefix}{tag:08X}"
            if vr is None or vr == b"UN":
                is_sq = length == _UNDEFINED or isinstance(node, dict) or (full and _is_sq(tag))
            else:
                is_sq = vr == b"SQ"
            if length == _UNDEFINED and not is_sq:  # encapsulated pixel data
                stop = self.fragments(vpos)
            elif is_sq and (isinstance(node, dict) or full or length == _UNDEFINED):
                stop = self.sequence(
                    vpos, length, node if isinstance(node, dict) else {}, path, full
                )
            else:
                stop = vpos + length
            if node is True or (full and not is_sq):
                self.out.append((vpos, stop, path))
            pos = stop
        return pos

    def sequence(self, pos: int, length: int, node: dict[int, Any], path: str, full: bool) -> int:
        end = None if length == _UNDEFINED else pos + length
        index = 0
        while end is None or pos < end:
            if pos + 8 > len(self.buf):
                return len(self.buf)
            g, el, ilen = self.item.unpack_from(self.buf, pos)
            tag = g << 16 | el
            if tag == _SEQ_END:
                return pos + 8
            sub = node.get(index, {})
            ipos = pos + 8
            item_end = None if ilen == _UNDEFINED else ipos + ilen
            if sub or full or item_end is None:
                pos = self.dataset(ipos, item_end, sub, f"{path}[{index}].", full)
            else:
                pos = item_end
            if item_end is not None:
                pos = item_end
            index += 1
        return pos

    def fragments(self, pos: int) -> int:
        while pos + 8 <= len(self.buf):
            g, el, size = self.item.unpack_from(self.buf, pos)
            if g << 16 | el == _SEQ_END:
                return pos + 8
            pos += 8 + size
        return len(self.buf)


def open_ranges(
    buf: bytes,
    start: int,
    tree: dict[int, Any],
    *,
    implicit: bool,
    big: bool = False,
    full: bool = False,
) -> list[tuple[int, int, str]]:
    """``(start, end, path)`` of the values ``tree`` marks in the data set at ``buf[start:]``.

    With ``full``, every element value at every depth (to name where a hit lies).
    Malformed data ends the walk early (the structure checks report it).
    """
    walk = _Walk(buf, implicit=implicit, big=big)
    try:
        walk.dataset(start, None, tree, "", full)
    except (struct.error, IndexError):
        pass
    return walk.out


def _value_ranges(
    data: bytes, dataset_start: int, *, implicit: bool, big: bool
) -> list[tuple[int, int, str]]:
    """Every value range of the file meta (explicit VR little endian) and the data set."""
    meta = open_ranges(data[:dataset_start], 132, {}, implicit=False, full=True)
    return meta + open_ranges(data, dataset_start, {}, implicit=implicit, big=big, full=True)


def _in_header(ranges: list[tuple[int, int, str]], at: int, size: int) -> bool:
    """Whether ``data[at:at + size]`` lies wholly between values the walk passed (an
    element's tag, VR or length), rather than in a value or where the walk stopped."""
    end = at + size
    if any(s < end and at < e for s, e, _ in ranges):
        return False
    return any(s >= end for s, _, _ in ranges)


def _is_sq(tag: int) -> bool:
    from pydicom.datadict import dictionary_VR

    try:
        return bool(dictionary_VR(tag) == "SQ")
    except KeyError:
        return False


def _where(ranges: list[tuple[int, int, str]], at: int) -> str | None:
    """The path of the (leaf) value range holding offset ``at``."""
    for s, e, path in ranges:
        if s <= at < e:
            return path
    return None


class Leak(NamedTuple):
    """One original value found where the rules forbid it."""

    token: Token
    where: str | None
    """The output element path holding it (``the file meta``…); None: the file's path."""

    @property
    def reason(self) -> str:
        """What the failure says: the place and the source attribute, never the value."""
        return self.token.reason(self.where)


def first_leak(
    data: bytes,
    dataset_start: int,
    tree: dict[int, Any],
    tokens: Iterable[Token],
    *,
    implicit: bool,
    big: bool = False,
    out_rel: str = "",
    ranges: list[tuple[int, int, str]] | None = None,
) -> Leak | None:
    """The first leak in ``data`` (a whole file or its header), or None.

    ``dataset_start`` is where the data set begins (after the file meta, which the
    export writes itself and is searched whole); ``tree`` is :func:`plan_tree` of
    the paths the plan writes: every value outside them is one the plan keeps.
    ``ranges`` gives those values' ``(start, end, path)`` when the caller has
    walked the data already (``tree`` is then not used).
    """
    tokens = list(tokens)
    if not tokens:
        return None
    upper = data.upper()
    path_text = out_rel.upper().encode("utf-8", "ignore")
    codecs = _codecs(data, dataset_start, implicit=implicit, big=big)
    identity = [t for t in tokens if t.identity]
    located: list[tuple[int, int, str]] | None = None
    # ``raw in buf`` first: most tokens occur nowhere, and that test is one C call
    for tok in identity:
        for raw in _forms(tok.text, codecs):
            if raw in path_text and find(path_text, raw) >= 0:
                return Leak(tok, None)
            if raw not in upper:
                continue
            at = find(upper, raw)
            while at >= 0:
                if located is None:
                    located = _value_ranges(data, dataset_start, implicit=implicit, big=big)
                where = _where(located, at)
                if where is None and _in_header(located, at, len(raw)):
                    at = find(upper, raw, at + 1)  # a VR or length (an 'OB' name), no value
                    continue
                where = "the file meta" if at < dataset_start else where
                if where is None or not _coincidence(where, tok.text, data, implicit):
                    return Leak(tok, where or "the file outside any element value")
                at = find(upper, raw, at + 1)
    others = [t for t in tokens if not t.identity]
    if not others:
        return None
    forms = [_forms(t.text, codecs) for t in others]
    for tok, raws in zip(others, forms, strict=True):
        if any(raw in path_text and find(path_text, raw) >= 0 for raw in raws):
            return Leak(tok, None)
    if ranges is None:
        ranges = open_ranges(data, dataset_start, tree, implicit=implicit, big=big)
    pieces = [(0, dataset_start, "the file meta"), *ranges]
    # the values the plan writes, joined (a NUL between two is no word character)
    joined = b"\x00".join(upper[s:e] for s, e, _ in pieces)
    offsets, at = [], 0
    for s, e, _ in pieces:
        offsets.append(at)
        at += e - s + 1
    for tok, raws in zip(others, forms, strict=True):
        for raw in raws:
            hit = find(joined, raw) if raw in joined else -1
            if hit >= 0:
                return Leak(tok, pieces[bisect_right(offsets, hit) - 1][2])
    return None


_CHARSET_TAG: Final = {False: b"\x08\x00\x05\x00", True: b"\x00\x08\x00\x05"}


def _codecs(data: bytes, dataset_start: int, *, implicit: bool, big: bool) -> tuple[str, ...]:
    """Python codecs of the data set's Specific Character Set (0008,0005); UTF-8 first.

    The element is the data set's first or second (after a group length), so only
    the first bytes are looked at.
    """
    at = data.find(_CHARSET_TAG[big], dataset_start, dataset_start + 32)
    if at < 0:
        return ("utf-8",)
    if implicit:
        length, value_at = struct.unpack_from("<L", data, at + 4)[0], at + 8
    else:
        length, value_at = struct.unpack_from(">H" if big else "<H", data, at + 6)[0], at + 8
    terms = data[value_at : value_at + min(length, 256)].decode("ascii", "replace")
    import warnings

    from pydicom.charset import convert_encodings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # an unknown term: searched as UTF-8 only
        try:
            found = convert_encodings([t.strip(" \x00") for t in terms.split("\\")])
        except (LookupError, ValueError):
            found = []
    return tuple(dict.fromkeys(["utf-8", *found]))


def _forms(text: str, codecs: tuple[str, ...]) -> list[bytes]:
    """The byte forms of an upper-case token to search an upper-cased file for.

    ASCII needs one (``bytes.upper`` folds its case); other letters do not fold
    in bytes, so the upper, lower and title case of the text, in every codec.

    >>> _forms("MÜLLER", ("utf-8", "latin_1"))[:3]
    [b'M\\xc3\\x9cLLER', b'M\\xdcLLER', b'M\\xc3\\xbcLLER']
    """
    if text.isascii():
        return [text.encode("ascii")]
    forms: dict[bytes, None] = {}
    for variant in (text, text.lower(), text.title()):
        for codec in codecs:
            try:
                forms[variant.encode(codec).upper()] = None
            except (UnicodeError, LookupError):
                continue
    return list(forms)


_NUMBERS: Final = frozenset({"DS", "IS", "US", "SS", "UL", "SL", "FL", "FD", "SV", "UV", "AT"})
_ENCRYPTED: Final = "04000500"
_PIXELS: Final = frozenset({"7FE00008", "7FE00009", "7FE00010"})  # top-level pixel data


def _coincidence(path: str, token: str, data: bytes, implicit: bool) -> bool:
    """Whether a hit is no leak: ciphertext of encrypted attributes, pixel data, a defined
    term of a coded string (``PERFUSION`` in Image Type of a patient named Perfusion), or a
    number that equals an all-digit identity value inside a numeric element."""
    if path.startswith(_ENCRYPTED) or path in _PIXELS:
        return True  # pixel bytes spell words by chance (burned-in text is OCR's matter)
    from pydicom.datadict import dictionary_VR

    try:
        vr = dictionary_VR(int(path.rsplit(".", 1)[-1], 16))
    except (KeyError, ValueError):
        return False
    return vr == "CS" or (token.isdigit() and vr in _NUMBERS)
