"""Verify a header the byte-level path wrote: structure, removals, no original value.

Split from :mod:`gantry.export._rewrite`, which calls :func:`verify_header`
on every header it writes before the file is renamed into place.
"""

from __future__ import annotations

import struct
from typing import Any

from gantry.export._wire import (
    _EXPLICIT_HDR,
    _IMPLICIT_HDR,
    _ITEM,
    _ITEM_END,
    _LONG_VRS,
    _PIXEL_DATA,
    _SEQ_END,
    _SOP_INSTANCE,
    _U32,
    _UNDEFINED,
    _VR_INFO,
    _dict_vr,
    _parse_path,
    _Unsupported,
)
from gantry.export._work import ExportItem, VerificationError

__all__ = ["verify_header"]


class _Open(str):
    """A path the plan writes (not removed): its value is searched for original values."""


def _x_tree(actions: list[tuple[str, str, str, str | None]]) -> dict[int, Any]:
    """Planned paths as nested dicts: tag -> path (a removed leaf, ``str``; an element the
    plan writes, :class:`_Open`) or {index: subtree} for a sequence with rows inside."""
    root: dict[int, Any] = {}
    for path, vr, action, _nv in actions:
        if action in ("REDACT", "DEFACE") or (action == "D" and vr == "SQ"):
            continue  # pixels are scanned whole; a dummy sequence keeps an item of its own
        try:
            steps, tag = _parse_path(path)
        except _Unsupported:
            continue  # the rewriter refused it already
        level = root
        for seq_tag, index in steps:
            node = level.setdefault(seq_tag, {})
            if isinstance(node, str):
                break  # below a removed or rewritten sequence
            level = node.setdefault(index, {})
        else:
            current = level.get(tag)
            if action == "X":
                level[tag] = path
            elif current is None:
                level[tag] = _Open(path)
    return root


def verify_header(header: bytes, item: ExportItem, *, implicit: bool) -> None:
    """Check a rewritten header with an independent walk; raise VerificationError.

    The file meta is well formed and names the dataset's SOP Instance UID, every
    dataset element parses in ascending tag order to the end, no removed path is
    present, and no original value occurs where it must not (:mod:`gantry.export._leaks`).
    """
    try:
        start, ranges = _check_structure(header, item, implicit)
    except (struct.error, IndexError, KeyError) as exc:
        raise VerificationError("the rewritten header does not parse") from exc
    if item.tokens:
        from gantry.export._leaks import first_leak

        leak = first_leak(
            header, start, {}, item.tokens, implicit=implicit, out_rel=item.out_rel, ranges=ranges
        )
        if leak is not None:
            raise VerificationError(leak.reason)


def _check_structure(
    header: bytes, item: ExportItem, implicit: bool
) -> tuple[int, list[tuple[int, int, str]]]:
    """Walk the header once: structure, removals, and the value ranges the plan wrote."""
    if header[:128] != b"\x00" * 128 or header[128:132] != b"DICM":
        raise VerificationError("the rewritten header has no preamble")
    if header[132:140] != b"\x02\x00\x00\x00UL\x04\x00":
        raise VerificationError("the rewritten file meta has no group length")
    pos = 144 + _U32.unpack_from(header, 140)[0]
    meta_sop = b""
    at = 144
    while at < pos:
        g, e, vrb, length = _EXPLICIT_HDR.unpack_from(header, at)
        size = 12 if vrb.decode() in _LONG_VRS else 8
        if size == 12:
            length = _U32.unpack_from(header, at + 8)[0]
        if g != 2:
            raise VerificationError("the rewritten file meta is malformed")
        if e == 3:
            meta_sop = header[at + size : at + size + length].rstrip(b"\x00")
        at += size + length
    if at != pos:
        raise VerificationError("the rewritten file meta length is wrong")
    removed = _x_tree(item.actions)
    ranges: list[tuple[int, int, str]] = []
    _, sop = _verify_dataset(header, pos, len(header), removed, implicit, ranges)
    if sop is None or sop.rstrip(b"\x00 ") != meta_sop:
        raise VerificationError("the file meta does not name the dataset's SOP Instance UID")
    return pos, ranges


def _verify_dataset(
    buf: bytes,
    pos: int,
    end: int | None,
    removed: dict[int, Any],
    implicit: bool,
    ranges: list[tuple[int, int, str]],
) -> tuple[int, bytes | None]:
    """Walk one dataset and check removals; return the end and the SOP Instance UID.

    ``end`` None walks an undefined-length item through its delimiter.  The value
    ranges of elements the plan writes are appended to ``ranges``.
    """
    prev = -1
    sop = None
    while end is None or pos < end:
        if implicit:
            g, e, length = _IMPLICIT_HDR.unpack_from(buf, pos)
            vr = None
            vpos = pos + 8
        else:
            g, e, vrb, length = _EXPLICIT_HDR.unpack_from(buf, pos)
            vpos = pos + 8
            if g == 0xFFFE:
                vr = None
                length = _U32.unpack_from(buf, pos + 4)[0]
            else:
                vr, long_length = _VR_INFO[vrb]
                if long_length:
                    length = _U32.unpack_from(buf, pos + 8)[0]
                    vpos = pos + 12
        tag = g << 16 | e
        if tag == _ITEM_END and end is None:
            return pos + 8, sop
        if tag <= prev:
            raise VerificationError("elements of the rewritten header are out of order")
        prev = tag
        target = removed.get(tag)
        if type(target) is str:
            raise VerificationError(f"element {target} should be removed but is present")
        is_sq = vr == "SQ" or (vr is None and (length == _UNDEFINED or _dict_vr(tag) == "SQ"))
        if tag == _PIXEL_DATA and length == _UNDEFINED:
            pos = _fragments_end(buf, vpos)
        elif is_sq and (isinstance(target, dict) or length == _UNDEFINED):
            sub = target if isinstance(target, dict) else {}
            pos = _verify_sequence(buf, vpos, length, sub, implicit, ranges)
        else:  # nothing can be inside an element that is not a sequence
            if length == _UNDEFINED:
                raise VerificationError("undefined length value in the rewritten header")
            pos = vpos + length
        if target is not None and type(target) is _Open:
            ranges.append((vpos, pos, target))
        if tag == _SOP_INSTANCE:
            sop = buf[vpos:pos]
    if pos != end:
        raise VerificationError("the rewritten header ends inside an element")
    return pos, sop


def _fragments_end(buf: bytes, pos: int) -> int:
    """The position after encapsulated pixel data's sequence delimiter."""
    while True:
        g, e, size = _IMPLICIT_HDR.unpack_from(buf, pos)
        if g << 16 | e == _SEQ_END:
            return pos + 8
        if g << 16 | e != _ITEM or size == _UNDEFINED:
            raise VerificationError("malformed encapsulated pixel data in the output")
        pos += 8 + size


def _verify_sequence(
    buf: bytes,
    pos: int,
    length: int,
    removed: dict[int, Any],
    implicit: bool,
    ranges: list[tuple[int, int, str]],
) -> int:
    end = None if length == _UNDEFINED else pos + length
    index = 0
    while end is None or pos < end:
        g, e, ilen = _IMPLICIT_HDR.unpack_from(buf, pos)
        tag = g << 16 | e
        if tag == _SEQ_END and end is None:
            return pos + 8
        if tag != _ITEM:
            raise VerificationError("malformed sequence in the rewritten header")
        ipos = pos + 8
        sub = removed.get(index, {})
        if ilen == _UNDEFINED:
            pos = _verify_dataset(buf, ipos, None, sub, implicit, ranges)[0]
        else:
            if sub:
                _verify_dataset(buf, ipos, ipos + ilen, sub, implicit, ranges)
            pos = ipos + ilen
        index += 1
    if pos != end:
        raise VerificationError("malformed sequence length in the rewritten header")
    return pos
