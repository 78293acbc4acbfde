"""The fast path of export: rewrite a DICOM header at the byte level.

:func:`rewrite_header` walks the raw elements of one file's header with
:mod:`struct` — no pydicom ``Dataset`` is built — and produces the clean
header: a fresh file meta group behind a zero preamble, unchanged elements
copied verbatim, removed elements (and whole sequences) dropped, changed ones
re-encoded with their VR, sequences that hold actions rewritten item by item,
and added elements merged in tag order.  :func:`verify_header` reads the
result back with its own walker.  :func:`export_fast` ties both to reading the
original, copying the pixel element bytes and writing the output atomically.

It must produce what the pydicom path of :mod:`gantry.export._apply` produces
(the same dataset at every depth once parsed, the same file meta, the same
pixel bytes) or nothing: whatever it does not reproduce exactly makes it
return ``None`` and the caller uses the pydicom path.  That covers transfer
syntaxes other than little endian non-deflated ones; files without a preamble
and file meta; saved edits, pixel edits, redaction and transcoding; datasets
whose VR encoding contradicts the transfer syntax (an implicit first element in
an explicit dataset or item, an explicit-looking one in an implicit dataset);
unknown VRs; elements out of order or repeated, group lengths or delimiters
inside sequence items that pydicom would re-serialise; undefined lengths other
than sequences (and explicit ``UN`` of undefined length); value actions on
elements whose VR pydicom would decide otherwise (``UN``, ambiguous VRs,
private elements of implicit VR files), on bulk and ``AT`` elements, with
non-ASCII values, or with numbers pydicom would reject; actions below an
element that is not walked as a sequence; actions on the character set;
malformed paths; and any truncation or malformed length.

Examples
--------
>>> from pathlib import Path
>>> import pydicom
>>> from gantry.export._work import ExportItem
>>> ct = Path(pydicom.__file__).parent / "data" / "test_files" / "CT_small.dcm"
>>> raw = ct.read_bytes()
>>> item = ExportItem(1, str(ct), "out.dcm", actions=[
...     ("00100010", "PN", "P", "ANON_0001"), ("00100020", "LO", "X", None),
...     ("00120062", "CS", "A", "YES")])
>>> new = rewrite_header(raw[:6288], item)
>>> ds = pydicom.dcmread(pydicom.filebase.DicomBytesIO(new.header + raw[6288:]))
>>> str(ds.PatientName), "PatientID" in ds, ds.PatientIdentityRemoved
('ANON_0001', False, 'YES')
>>> new.fields["sop_uid"] == ds.file_meta.MediaStorageSOPInstanceUID
True
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
import time
from pathlib import Path
from typing import BinaryIO, Final, NamedTuple

from pydicom.uid import PYDICOM_IMPLEMENTATION_UID, AllTransferSyntaxes

from gantry.export._header_check import verify_header
from gantry.export._items import has_item_rows
from gantry.export._wire import (
    _CHARSET,
    _CODECS,
    _DEFAULT_SOP_CLASS,
    _DS,
    _DUMMY_BY_PYDICOM,
    _EXPLICIT_HDR,
    _FIELDS,
    _HEADER_LEN,
    _IMPLICIT_HDR,
    _IMPLICIT_LE,
    _IS,
    _ITEM,
    _ITEM_END,
    _LONG_HDR,
    _LONG_VRS,
    _NUMBER_FORMAT,
    _PIXEL_DATA,
    _PIXEL_TAG_BYTES,
    _REMOVED,
    _SEQ_END,
    _SOP_CLASS,
    _SOP_INSTANCE,
    _TEXT_VRS,
    _U32,
    _UID_TEXT,
    _UNDEFINED,
    _VR_INFO,
    _WATCH,
    _dict_vr,
    _parse_path,
    _Unsupported,
)
from gantry.export._work import (
    ExportItem,
    ExportOutcome,
    VerificationError,
    staging_file,
)

__all__ = ["Rewritten", "export_fast", "rewrite_header", "verify_header"]


class _Node:
    """The actions on one element path: its own, and those inside its items."""

    __slots__ = ("ops", "items")

    def __init__(self) -> None:
        self.ops: list[tuple[str, str, str | None]] = []  # (action, plan VR, new value)
        self.items: dict[int, dict[int, _Node]] = {}


class Rewritten(NamedTuple):
    """The clean header and what the caller reports about it."""

    #: preamble, file meta and dataset, up to (not including) the pixel element
    header: bytes
    transfer_syntax: str
    implicit: bool
    #: ExportOutcome field -> text, as ``str(ds.get(keyword, ""))`` gives it
    fields: dict[str, str]


# -- the action tree --------------------------------------------------------------------


def _action_tree(
    actions: list[tuple[str, str, str, str | None]],
) -> tuple[dict[int, _Node], list[int]]:
    """Nodes by tag at the top level (each path's actions in their given order), and
    the sorted tags that ``A`` actions add.

    The pydicom path applies actions deepest first, keeping the given order among
    equal depths; an element's own actions therefore come after those inside it,
    which is how :meth:`_Rewriter._element` applies them.
    """
    root: dict[int, _Node] = {}
    added = set()
    for path, vr, action, new_value in actions:
        if action in ("REDACT", "DEFACE"):
            continue
        steps, tag = _parse_path(path)
        if action == "A":
            if steps:
                raise _Unsupported("added element inside a sequence")
            added.add(tag)
        if tag == _CHARSET:
            raise _Unsupported("action on the character set")
        level = root
        for seq_tag, index in steps:
            node = level.get(seq_tag)
            if node is None:
                node = level[seq_tag] = _Node()
            level = node.items.setdefault(index, {})
        node = level.get(tag)
        if node is None:
            node = level[tag] = _Node()
        node.ops.append((action, vr, new_value))
    return root, sorted(added)


# -- value encoding ---------------------------------------------------------------------


def _encode_text(vr: str, value: str) -> bytes:
    try:
        raw = value.encode("ascii")
    except UnicodeEncodeError:
        raise _Unsupported("non-ASCII value") from None
    if vr == "DS" or vr == "IS":
        pattern = _DS if vr == "DS" else _IS
        for part in value.split("\\"):
            if pattern.fullmatch(part) is None or len(part) > (16 if vr == "DS" else 12):
                raise _Unsupported(f"{vr} value pydicom may reject")
            if vr == "IS" and not -(2**31) <= int(part) < 2**31:
                raise _Unsupported("IS value out of range")
    if len(raw) % 2:
        raw += b"\x00" if vr == "UI" else b" "
    return raw


def _encode_value(vr: str, value: str) -> bytes:
    """``value`` (the plan's text) encoded as the pydicom path encodes it for ``vr``."""
    if vr in _TEXT_VRS:
        return _encode_text(vr, value)
    fmt = _NUMBER_FORMAT.get(vr)
    if fmt is None:
        raise _Unsupported(f"value action on a {vr} element")
    items = [v for v in value.split("\\") if v != ""]
    conv = float if vr in ("FL", "FD") else int
    try:
        return struct.pack(f"<{len(items)}{fmt}", *(conv(v) for v in items))
    except (ValueError, struct.error):
        raise _Unsupported(f"{vr} value pydicom rejects") from None


#: encoded elements the ``A`` action adds, by (tag text, value, implicit VR)
_ADDED: dict[tuple[str, str | None, bool], bytes] = {}


# -- the rewriter -----------------------------------------------------------------------


class _Rewriter:
    """One header's walk; datasets are rewritten into lists of byte pieces."""

    def __init__(self, buf: bytes, implicit: bool, compressed: bool = False) -> None:
        self.buf = buf
        self.implicit = implicit
        self.compressed = compressed  # encapsulated pixel data expected
        self.values: dict[int, bytes] = {}  # watched top-level tag -> final value

    # element headers

    def _is_sequence(self, tag: int, vr: str | None, length: int, vpos: int) -> bool | None:
        """True for a sequence, False for a plain value, None when pydicom might decide.

        For implicit VR (explicit VR is decided in :meth:`dataset`).
        """
        dvr = _dict_vr(tag)
        if dvr == "SQ":
            return True
        if length == _UNDEFINED:
            if dvr is None and self.buf[vpos : vpos + 4] == b"\xfe\xff\x00\xe0":
                return True
            raise _Unsupported("undefined length value")
        if dvr is None or " or " in dvr:
            return None  # private or ambiguous: pydicom's VR may differ
        return False

    def _pixel_end(self, vpos: int, length: int) -> int:
        """The end of the pixel element, checked as pydicom writes it (whole-file mode)."""
        buf = self.buf
        if length != _UNDEFINED:
            if self.compressed or length % 2 or vpos + length > len(buf):
                raise _Unsupported("pixel data length pydicom would change")
            return vpos + length
        if not self.compressed:
            raise _Unsupported("encapsulated pixel data in a native transfer syntax")
        pos = vpos
        while True:
            g, e, size = _IMPLICIT_HDR.unpack_from(buf, pos)
            tag = g << 16 | e
            if tag == _SEQ_END and size == 0:
                return pos + 8
            if tag != _ITEM or size == _UNDEFINED or pos + 8 + size > len(buf):
                raise _Unsupported("malformed encapsulated pixel data")
            pos += 8 + size

    def _emit(self, out: list[bytes], tag: int, vr: str, value: bytes) -> None:
        g, e = tag >> 16, tag & 0xFFFF
        if self.implicit:
            out.append(_IMPLICIT_HDR.pack(g, e, len(value)))
        elif vr in _LONG_VRS:
            out.append(_LONG_HDR.pack(g, e, vr.encode(), 0, len(value)))
        else:
            if len(value) > 0xFFFF:
                raise _Unsupported("value too long for its VR")
            out.append(_EXPLICIT_HDR.pack(g, e, vr.encode(), len(value)))
        out.append(value)

    # datasets and sequences

    def dataset(
        self,
        pos: int,
        end: int | None,
        tree: dict[int, _Node] | None,
        out: list[bytes] | None,
        *,
        top: bool = False,
        added: list[int] | None = None,
    ) -> int:
        """Walk one dataset from ``pos`` to ``end`` (None: to its item delimiter).

        With ``out``, the rewritten dataset is appended to it; without, the walk only
        checks what pydicom would re-serialise and finds the end.  Returns the position
        after the dataset (after the item delimiter for undefined length).
        """
        buf = self.buf
        implicit = self.implicit
        watch = top
        copy_from = pos
        prev = -1
        limit = len(buf) if end is None else end
        if end is not None and end > len(buf):
            raise _Unsupported("truncated")
        pending = added or []
        while True:
            if pos >= limit:
                if end is None or pos != end:
                    raise _Unsupported("truncated dataset")
                stop = after = pos
                break
            if implicit:
                g, e, length = _IMPLICIT_HDR.unpack_from(buf, pos)
                vr = None
                vpos = pos + 8
            else:
                g, e, vrb, length = _EXPLICIT_HDR.unpack_from(buf, pos)
                if g == 0xFFFE:  # items and delimiters carry no VR
                    vr = None
                    length = _U32.unpack_from(buf, pos + 4)[0]
                    vpos = pos + 8
                else:
                    info = _VR_INFO.get(vrb)
                    if info is None:
                        raise _Unsupported("unknown VR")  # pydicom would guess
                    vr, long_length = info
                    if long_length:
                        length = _U32.unpack_from(buf, pos + 8)[0]
                        vpos = pos + 12
                    else:
                        vpos = pos + 8
            tag = g << 16 | e
            if g == 0xFFFE:
                if tag == _ITEM_END and end is None and length == 0:
                    stop, after = pos, pos + 8
                    break
                raise _Unsupported("delimiter inside a dataset")
            if tag <= prev:
                raise _Unsupported("elements out of order or repeated")
            if top and prev < 0 and implicit:
                b0, b1 = buf[pos + 4], buf[pos + 5]
                if 0x40 < b0 < 0x5B and 0x40 < b1 < 0x5B:
                    raise _Unsupported("implicit VR dataset that looks explicit")
            prev = tag
            if g < 8 or e == 0:
                if not top or g < 8:
                    raise _Unsupported("group length, command or meta element in the dataset")
            while pending and pending[0] <= tag:
                assert out is not None and tree is not None
                if pending[0] == tag:  # present in the original: folded below
                    pending.pop(0)
                    break
                out.append(buf[copy_from:pos])
                copy_from = pos
                self._added(pending.pop(0), tree, out)
            node = tree.get(tag) if tree else None
            if tag == _PIXEL_DATA and top:  # whole-file mode: copied, never parsed
                sq: bool | None = False
                value_end = self._pixel_end(vpos, length)
            else:
                if vr is None:
                    sq = self._is_sequence(tag, vr, length, vpos)
                elif vr == "SQ":
                    sq = True
                elif vr == "UN" or length == _UNDEFINED:
                    sq = None  # UN may be re-read as a sequence (or re-typed)
                else:
                    sq = False
                if length == _UNDEFINED:
                    if not sq:
                        raise _Unsupported("undefined length value")
                    value_end = -1  # found by walking the sequence below
                else:
                    value_end = vpos + length
                    if value_end > limit:
                        raise _Unsupported("value beyond the end of its dataset")
            if e == 0:  # a retired group length: pydicom does not write it
                if value_end < 0:
                    raise _Unsupported("group length of undefined length")
                assert out is not None
                out.append(buf[copy_from:pos])
                pos = copy_from = value_end
                continue
            if node is None:
                if value_end < 0:
                    value_end = self.sequence(vpos, length, None, None, walk=True)
                if watch and tag in _WATCH:
                    self.values[tag] = buf[vpos:value_end]
                pos = value_end
                continue
            assert out is not None
            state = self._fold(node.ops, tag, vr, sq, None)
            if state is None:  # the element itself is unchanged
                if node.items:
                    if sq is None:
                        raise _Unsupported("actions below an element not walked as a sequence")
                    if sq:
                        pieces: list[bytes] = []
                        value_end = self.sequence(vpos, length, node.items, pieces, walk=True)
                        out.append(buf[copy_from:pos])
                        self._emit(out, tag, "SQ", b"".join(pieces))
                        copy_from = value_end
                if value_end < 0:
                    value_end = self.sequence(vpos, length, None, None, walk=True)
                if watch and tag in _WATCH:
                    self.values[tag] = buf[vpos:value_end]
                pos = value_end
                continue
            if value_end < 0:
                value_end = self.sequence(vpos, length, None, None, walk=sq is True)
            out.append(buf[copy_from:pos])
            if isinstance(state, tuple):
                new_vr, value = state
                self._emit(out, tag, new_vr, value)
                if watch and tag in _WATCH:
                    self.values[tag] = value
            elif watch:
                self.values.pop(tag, None)
            pos = copy_from = value_end
        if out is not None:
            out.append(buf[copy_from:stop])
            while pending:
                assert tree is not None
                self._added(pending.pop(0), tree, out)
        return after

    def sequence(
        self,
        vpos: int,
        length: int,
        items: dict[int, dict[int, _Node]] | None,
        out: list[bytes] | None,
        *,
        walk: bool,
    ) -> int:
        """Walk a sequence value; rewrite the items that hold actions into ``out``.

        Items are checked as pydicom re-serialises them: those of a rewritten or
        undefined-length sequence (``walk``).  Returns the position after the value.
        """
        buf = self.buf
        end = None if length == _UNDEFINED else vpos + length
        if end is not None and end > len(buf):
            raise _Unsupported("truncated sequence")
        if end is not None and not walk and not items:
            return end
        pos = vpos
        index = 0
        while True:
            if end is not None and pos >= end:
                if pos != end:
                    raise _Unsupported("item beyond the end of its sequence")
                return pos
            g, e, ilen = _IMPLICIT_HDR.unpack_from(buf, pos)
            tag = g << 16 | e
            if tag == _SEQ_END and end is None:
                if ilen != 0:
                    raise _Unsupported("sequence delimiter with a length")
                return pos + 8
            if tag != _ITEM:
                raise _Unsupported("not an item inside a sequence")
            ipos = pos + 8
            # an explicit item whose first element looks implicit is refused by
            # _header (no VR pydicom and this walker would both read as explicit)
            iend = None if ilen == _UNDEFINED else ipos + ilen
            sub = items.get(index) if items else None
            if sub:
                assert out is not None
                pieces: list[bytes] = []
                after = self.dataset(ipos, iend, sub, pieces)
                body = b"".join(pieces)
                out.append(_IMPLICIT_HDR.pack(0xFFFE, 0xE000, len(body)))
                out.append(body)
            else:
                after = self.dataset(ipos, iend, None, None)
                if out is not None:
                    out.append(buf[pos:after])
            pos = after
            index += 1

    # actions

    def _fold(
        self,
        ops: list[tuple[str, str, str | None]],
        tag: int,
        vr: str | None,
        sq: bool | None,
        start: str | None,
    ) -> tuple[str, bytes] | str | None:
        """The element after its actions: None (unchanged), removed, or (VR, value).

        ``start`` is None for an element of the original, ``_REMOVED`` for one that
        is not there (only an ``A`` action creates it).
        """
        state: tuple[str, bytes] | str | None = start
        cur_vr = vr
        for action, plan_vr, new_value in ops:
            if action == "A":
                state = (plan_vr, self._added_value(plan_vr, new_value))
                cur_vr = plan_vr
                continue
            if state is _REMOVED:
                continue
            if action == "X":
                state = _REMOVED
                continue
            if action == "D" and (sq or plan_vr in _DUMMY_BY_PYDICOM):
                raise _Unsupported("a dummy sequence or bulk value (the pydicom path writes it)")
            empties = action == "Z" or (new_value in (None, "") and action in ("D", "S"))
            if state is None:  # the original element: the VR pydicom gives it
                if sq is None and not empties:
                    raise _Unsupported("value action on an element of uncertain VR")
                cur_vr = "SQ" if sq else (vr if vr is not None else _dict_vr(tag))
            if empties:
                state = (cur_vr or "UN", b"")
            elif cur_vr == "SQ":
                state = ("SQ", b"")
            elif new_value is not None:
                if cur_vr is None:
                    raise _Unsupported("value action on an element of unknown VR")
                state = (cur_vr, _encode_value(cur_vr, new_value))
        return state

    def _added_value(self, vr: str, value: str | None) -> bytes:
        key = (vr, value, self.implicit)
        cached = _ADDED.get(key)
        if cached is None:
            cached = self._encode_added(vr, value)
            if len(_ADDED) < 10_000:
                _ADDED[key] = cached
        return cached

    def _encode_added(self, vr: str, value: str | None) -> bytes:
        if vr != "SQ":
            if vr not in _TEXT_VRS:
                raise _Unsupported(f"added {vr} element")
            return _encode_text(vr, value or "")
        items = []
        for code in json.loads(value or "[]"):
            item: list[bytes] = []
            for tag, vr_, key in (
                (0x00080100, "SH", "value"),
                (0x00080102, "SH", "scheme"),
                (0x00080104, "LO", "meaning"),
            ):
                text = code[key]
                if not isinstance(text, str):
                    raise _Unsupported("code value is not text")
                self._emit(item, tag, vr_, _encode_text(vr_, text))
            body = b"".join(item)
            items.append(_IMPLICIT_HDR.pack(0xFFFE, 0xE000, len(body)) + body)
        return b"".join(items)

    def _added(self, tag: int, tree: dict[int, _Node], out: list[bytes]) -> None:
        """An element that only actions create (it is not in the original)."""
        state = self._fold(tree[tag].ops, tag, None, None, _REMOVED)
        if not isinstance(state, tuple):
            return
        vr, value = state
        self._emit(out, tag, vr, value)
        if tag in _WATCH:
            self.values[tag] = value


# -- file meta --------------------------------------------------------------------------


def _read_meta(buf: bytes) -> tuple[int, str]:
    """``(end of the file meta, transfer syntax)`` of the original; raises when unusual."""
    if len(buf) < 144 or buf[128:132] != b"DICM":
        raise _Unsupported("no preamble and file meta")
    pos = 132
    ts: str | None = None
    while pos + 8 <= len(buf):
        g, e, vrb, length = _EXPLICIT_HDR.unpack_from(buf, pos)
        if g != 2:
            break
        size = _HEADER_LEN.get(vrb)
        if size is None:
            raise _Unsupported("file meta not in explicit VR")
        if size == 12:
            length = _U32.unpack_from(buf, pos + 8)[0]
        vpos = pos + size
        if length == _UNDEFINED or vpos + length > len(buf):
            raise _Unsupported("malformed file meta")
        if e == 0x0010:
            raw = buf[vpos : vpos + length].rstrip(b"\x00 ")
            if _UID_TEXT.fullmatch(raw) is None:
                raise _Unsupported("unusual transfer syntax text")
            ts = raw.decode()
        pos = vpos + length
    if ts is None:
        raise _Unsupported("no transfer syntax in the file meta")
    return pos, ts


# syntaxes pydicom knows whose dataset is little endian and not deflated -> encapsulated
_SYNTAXES: Final[dict[str, bool]] = {
    str(uid): bool(uid.is_compressed)
    for uid in AllTransferSyntaxes
    if uid.is_little_endian and not uid.is_deflated
}


def _meta_element(g: int, e: int, vr: str, value: bytes) -> bytes:
    if len(value) % 2:
        value += b"\x00" if vr == "UI" else b" "
    if vr in _LONG_VRS:
        return _LONG_HDR.pack(g, e, vr.encode(), 0, len(value)) + value
    return _EXPLICIT_HDR.pack(g, e, vr.encode(), len(value)) + value


def _clean_meta(sop_class: bytes, sop_instance: bytes, ts: str) -> bytes:
    """What ``_apply._clean_meta`` + ``dcmwrite(enforce_file_format=True)`` write."""
    body = b"".join(
        (
            _meta_element(2, 0x0001, "OB", b"\x00\x01"),
            _meta_element(2, 0x0002, "UI", sop_class),
            _meta_element(2, 0x0003, "UI", sop_instance),
            _meta_element(2, 0x0010, "UI", ts.encode()),
            _meta_element(2, 0x0012, "UI", PYDICOM_IMPLEMENTATION_UID.encode()),
            _meta_element(2, 0x0013, "SH", b"GANTRY"),
        )
    )
    return (
        b"\x00" * 128 + b"DICM" + _EXPLICIT_HDR.pack(2, 0, b"UL", 4) + _U32.pack(len(body)) + body
    )


def _uid_value(raw: bytes | None) -> bytes:
    """A UID as pydicom reads it back (trailing NUL and spaces stripped)."""
    value = (raw or b"").rstrip(b"\x00 ")
    if not value or b"\\" in value:
        raise _Unsupported("missing, empty or multi-valued SOP UID")
    return value


def _field_text(raw: bytes | None, vr: str, charset: bytes | None) -> str:
    """``str(ds.get(keyword, ""))`` for a single-valued LO / UI / CS element."""
    if raw is None:
        return ""
    if b"\\" in raw:
        raise _Unsupported("multi-valued outcome field")
    if raw.isascii() and b"\x1b" not in raw:
        text = raw.decode("ascii")
    elif vr == "LO":
        codec = _CODECS.get((charset or b"").strip(b"\x00 ").decode("latin_1"))
        if codec is None:
            raise _Unsupported("text in a character set not decoded here")
        try:
            text = raw.decode(codec)
        except UnicodeDecodeError:
            raise _Unsupported("undecodable text") from None
    else:
        text = raw.decode("latin_1")
    return text.rstrip("\x00 ")


# -- entry points -----------------------------------------------------------------------


def rewrite_header(buf: bytes, item: ExportItem, *, whole: bool = False) -> Rewritten | None:
    """The clean header for ``item``, or None when the pydicom path must do it.

    Parameters
    ----------
    buf : bytes
        The original file up to its pixel element (``item.pixel_offset``), or
        with ``whole`` the whole file (its pixel element, if any, is copied).
    item : ExportItem
        The instance's actions; saved edits or an encryption key make this
        return None.
    whole : bool
        ``buf`` is the whole file.

    Returns
    -------
    Rewritten or None
    """
    if item.edits or item.encrypt_key is not None:
        return None
    try:
        start, ts = _read_meta(buf)
        if ts not in _SYNTAXES:
            return None
        implicit = ts == _IMPLICIT_LE
        tree, added = _action_tree(item.actions)
        if added and added[-1] >= _PIXEL_DATA and not whole:
            return None
        rw = _Rewriter(buf, implicit, _SYNTAXES[ts])
        out: list[bytes] = []
        rw.dataset(start, len(buf), tree, out, top=True, added=added)
        values = rw.values
        sop_class = (
            _uid_value(values[_SOP_CLASS]) if _SOP_CLASS in values else _DEFAULT_SOP_CLASS.encode()
        )
        sop_instance = _uid_value(values.get(_SOP_INSTANCE))
        charset = values.get(_CHARSET)
        fields = {
            name: _field_text(values.get(tag), vr, charset) for name, (tag, vr) in _FIELDS.items()
        }
    except (_Unsupported, struct.error, IndexError, KeyError, ValueError, TypeError):
        return None
    header = _clean_meta(sop_class, sop_instance, ts) + b"".join(out)
    return Rewritten(header, ts, implicit, fields)


_STREAM_ABOVE: Final = 64 << 20  # pixel elements larger than this are copied in chunks
_CHUNK: Final = 8 << 20


def _write(
    dest: Path, rel: str, header: bytes, pixels: memoryview | BinaryIO, length: int
) -> hashlib._Hash:
    """Write header + pixels atomically (a staging file, then a rename); their sha256.

    ``pixels`` is the bytes, or the source positioned at them (copied in chunks).
    Folders are created on demand; the temporary file lives in the export's
    staging folder (:func:`gantry.export._work.staging_file`), never beside
    the output.
    """
    digest = hashlib.sha256(header)
    target = dest / rel
    tmp = staging_file(dest)
    target.parent.mkdir(parents=True, exist_ok=True)
    fh = open(tmp, "wb")  # noqa: SIM115 - closed by the with below
    try:
        with fh:
            fh.write(header)
            if isinstance(pixels, memoryview):
                fh.write(pixels)
                digest.update(pixels)
            else:
                left = length
                while left > 0:
                    chunk = pixels.read(min(_CHUNK, left))
                    if not chunk:
                        raise VerificationError("the source file changed since it was indexed")
                    fh.write(chunk)
                    digest.update(chunk)
                    left -= len(chunk)
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return digest


def export_fast(item: ExportItem, dest: Path, *, verify: bool = True) -> ExportOutcome | None:
    """Export one instance without pydicom; None when the pydicom path must do it.

    Only for instances whose pixel element is copied as bytes (or that have none),
    without saved edits, pixel edits, redaction or transcoding (the caller checks
    compression), and without encrypted attributes to carry.  Raises
    VerificationError like the pydicom path.  Pixel elements over 64 MB are copied
    in 8 MB chunks, so memory stays small whatever the file size.
    """
    if (
        item.edits
        or item.redaction is not None
        or item.pixel_edit is not None
        or item.encrypt_key is not None
        or has_item_rows(item.actions)  # whole content items: the pydicom path
    ):
        return None
    offset, plen = item.pixel_offset, item.pixel_length
    copy_pixels = (
        offset is not None
        and plen is not None
        and item.file_size is not None
        and offset + plen == item.file_size
    )
    with open(item.src, "rb") as fh:
        size = os.fstat(fh.fileno()).st_size
        if copy_pixels and size != item.file_size:
            raise VerificationError("the source file changed since it was indexed")
        stream = copy_pixels and size - (offset or 0) > _STREAM_ABOVE
        raw = fh.read(offset + 4) if stream and offset is not None else fh.read()
        view = memoryview(raw)
        if copy_pixels:
            # only the header is rewritten; the pixel element is copied as bytes
            assert offset is not None and plen is not None
            if raw[offset : offset + 4] != _PIXEL_TAG_BYTES:
                return None
            new = rewrite_header(raw[:offset], item)
            length = plen
        else:
            # no pixel element, or elements after it: the whole file is walked
            new = rewrite_header(raw, item, whole=True)
            length = 0
        if new is None:
            return None
        header = new.header
        checked = time.perf_counter()
        if verify:
            verify_header(header, item, implicit=new.implicit)
        checked = time.perf_counter() - checked
        if stream:
            fh.seek(offset or 0)
            pixels: memoryview | BinaryIO = fh
        else:
            pixels = view[offset:] if copy_pixels else view[:0]
        digest = _write(dest, item.out_rel, header, pixels, length)
    fields = new.fields
    return ExportOutcome(
        file_id=item.file_id,
        out_rel=item.out_rel,
        status="ok",
        size=len(header) + length,
        sha256=digest.hexdigest(),
        patient_id=fields["patient_id"],
        study_uid=fields["study_uid"],
        series_uid=fields["series_uid"],
        sop_uid=fields["sop_uid"],
        modality=fields["modality"],
        series_description=fields["series_description"],
        transfer_syntax=new.transfer_syntax,
        pixels_copied=copy_pixels,
        verify_seconds=checked,
    )
