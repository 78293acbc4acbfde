"""Hostile files: deep nesting, decompression bombs, and the fuzzing mutation families.

Tests and ``benchmarks/fuzz.py`` share these.  Every builder writes bytes
directly (never through pydicom, which could not even build some of them),
and every mutation is a pure function of the sample bytes and a seeded
``random.Random``, so a failing case is reproduced from its seed.

Examples
--------
>>> import random
>>> sorted(MUTATIONS)[:4]
['bad_text', 'bad_vr', 'bit_flip', 'deep_nesting']
>>> data = bytes(128) + b"DICM" + bytes(40)
>>> len(MUTATIONS["truncate"](data, random.Random(1))) < len(data)
True
"""

from __future__ import annotations

import random
import struct
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Final

__all__ = [
    "MUTATIONS",
    "deep_nesting_bytes",
    "deflate_bomb_bytes",
    "write_deep_nesting",
    "write_deflate_bomb",
]

_IMPLICIT: Final = b"1.2.840.10008.1.2\x00"
_EXPLICIT: Final = b"1.2.840.10008.1.2.1\x00"
_DEFLATED: Final = b"1.2.840.10008.1.2.1.99"
_SOP_CLASS: Final = b"1.2.840.10008.5.1.4.1.1.7\x00"  # Secondary Capture


def _explicit(group: int, elem: int, vr: bytes, value: bytes) -> bytes:
    if len(value) % 2:
        value += b"\x00" if vr in (b"UI", b"OB") else b" "
    if vr in (b"OB", b"OW", b"SQ", b"UN", b"UT", b"UC", b"UR"):
        return struct.pack("<HH2sHL", group, elem, vr, 0, len(value)) + value
    return struct.pack("<HH2sH", group, elem, vr, len(value)) + value


def _meta(syntax: bytes) -> bytes:
    body = (
        _explicit(0x0002, 0x0001, b"OB", b"\x00\x01")
        + _explicit(0x0002, 0x0002, b"UI", _SOP_CLASS)
        + _explicit(0x0002, 0x0003, b"UI", b"1.2.3.4.5.6.7.8.9")
        + _explicit(0x0002, 0x0010, b"UI", syntax)
    )
    return (
        bytes(128) + b"DICM" + _explicit(0x0002, 0x0000, b"UL", struct.pack("<L", len(body))) + body
    )


def _header() -> bytes:
    return (
        _explicit(0x0008, 0x0016, b"UI", _SOP_CLASS)
        + _explicit(0x0008, 0x0018, b"UI", b"1.2.3.4.5.6.7.8.9")
        + _explicit(0x0008, 0x0060, b"CS", b"OT")
        + _explicit(0x0010, 0x0020, b"LO", b"HOSTILE")
    )


def deep_nesting_bytes(depth: int) -> bytes:
    """A file whose (0040,A730) Content Sequence nests `depth` levels deep.

    Every sequence and item has undefined length, so the file is
    ``24 * depth`` bytes plus a header: 50,000 levels fit in 1.2 MB.
    """
    opening = struct.pack("<HH2sHL", 0x0040, 0xA730, b"SQ", 0, 0xFFFFFFFF) + struct.pack(
        "<HHL", 0xFFFE, 0xE000, 0xFFFFFFFF
    )
    closing = struct.pack("<HHL", 0xFFFE, 0xE00D, 0) + struct.pack("<HHL", 0xFFFE, 0xE0DD, 0)
    return _meta(_EXPLICIT) + _header() + opening * depth + closing * depth


def write_deep_nesting(path: str | Path, depth: int) -> Path:
    """Write :func:`deep_nesting_bytes` to `path`."""
    target = Path(path)
    target.write_bytes(deep_nesting_bytes(depth))
    return target


def deflate_bomb_bytes(inflated: int) -> bytes:
    """A Deflated Explicit VR Little Endian file whose dataset inflates to about `inflated` bytes.

    The dataset is a short header and one (0009,1010) private OB element of
    zeros; it is compressed in 1 MiB pieces, so building a 1 GiB bomb needs
    no more than a few MiB of memory.
    """
    header = _header() + _explicit(0x0009, 0x0010, b"LO", b"GANTRY FUZZ")
    size = max(0, inflated - len(header) - 12) & ~1
    element = struct.pack("<HH2sHL", 0x0009, 0x1010, b"OB", 0, size)
    packer = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    out = [packer.compress(header + element)]
    zeros = bytes(1 << 20)
    left = size
    while left:
        step = min(left, len(zeros))
        out.append(packer.compress(zeros[:step]))
        left -= step
    out.append(packer.flush())
    return _meta(_DEFLATED + b"\x00") + b"".join(out)


def write_deflate_bomb(path: str | Path, inflated: int) -> Path:
    """Write :func:`deflate_bomb_bytes` to `path`."""
    target = Path(path)
    target.write_bytes(deflate_bomb_bytes(inflated))
    return target


# ---------------------------------------------------------------- mutation families
Mutation = Callable[[bytes, random.Random], bytes]


def _body_start(data: bytes) -> int:
    return 132 if data[128:132] == b"DICM" else 0


def _truncate(data: bytes, rng: random.Random) -> bytes:
    return data[: rng.randrange(1, max(2, len(data)))]


def _bit_flip(data: bytes, rng: random.Random) -> bytes:
    out = bytearray(data)
    for _ in range(rng.randint(1, 16)):
        i = rng.randrange(_body_start(data), len(out))
        out[i] ^= 1 << rng.randrange(8)
    return bytes(out)


def _splice(data: bytes, rng: random.Random) -> bytes:
    """Delete or insert a run of random bytes."""
    i = rng.randrange(_body_start(data), len(data))
    if rng.random() < 0.5:
        return data[:i] + data[i + rng.randint(1, 64) :]
    return data[:i] + rng.randbytes(rng.randint(1, 64)) + data[i:]


def _lengths(data: bytes, rng: random.Random) -> bytes:
    """Overwrite a 2- or 4-byte length field after a VR with an extreme value."""
    out = bytearray(data)
    spots = [i for i in range(_body_start(data), len(out) - 8) if out[i : i + 2].isupper()]
    if not spots:
        return _bit_flip(data, rng)
    for i in rng.sample(spots, min(len(spots), rng.randint(1, 3))):
        if i + 8 <= len(out):
            choice = rng.choice([0xFFFF, 0xFFFFFFFF, 0x7FFFFFFF, 0xFFFFFFF0, 1, 0])
            struct.pack_into("<H", out, i + 2, choice & 0xFFFF)
            struct.pack_into("<L", out, i + 4, choice)
    return bytes(out)


def _bad_vr(data: bytes, rng: random.Random) -> bytes:
    out = bytearray(data)
    spots = [i for i in range(_body_start(data), len(out) - 2) if out[i : i + 2].isupper()]
    for i in rng.sample(spots, min(len(spots), rng.randint(1, 4))):
        out[i : i + 2] = rng.choice([b"ZZ", b"\x00\x00", b"SQ", b"OB", b"UN", b"??"])
    return bytes(out)


def _bad_text(data: bytes, rng: random.Random) -> bytes:
    """Put invalid UTF-8, ISO 2022 escapes and control bytes into text values."""
    out = bytearray(data)
    spots = [i for i in range(_body_start(data), len(out) - 4) if 0x41 <= out[i] <= 0x5A]
    for i in rng.sample(spots, min(len(spots), rng.randint(1, 8))):
        out[i] = rng.choice([0xFF, 0xC3, 0x1B, 0x00, 0x80, 0x5C])
    return bytes(out)


def _deep_nesting(data: bytes, rng: random.Random) -> bytes:
    return deep_nesting_bytes(rng.choice([127, 128, 129, 300, 2_000]))


def _huge_element(data: bytes, rng: random.Random) -> bytes:
    """A header claiming an element far larger than the file."""
    claim = rng.choice([1 << 30, 0xFFFFFFF0, 300 << 20])
    return _meta(_EXPLICIT) + _header() + struct.pack("<HH2sHL", 0x0009, 0x1010, b"OB", 0, claim)


def _deflate_bomb(data: bytes, rng: random.Random) -> bytes:
    return deflate_bomb_bytes(rng.choice([8, 32, 64]) << 20)


def _many_frames(data: bytes, rng: random.Random) -> bytes:
    frames = str(rng.choice([10**6, 2**31 - 1, 10**12])).encode()
    return (
        _meta(_EXPLICIT)
        + _header()
        + _explicit(0x0028, 0x0008, b"IS", frames)
        + _explicit(0x0028, 0x0010, b"US", b"\x04\x00")
        + _explicit(0x0028, 0x0011, b"US", b"\x04\x00")
    )


def _garbage(data: bytes, rng: random.Random) -> bytes:
    """Random bytes behind a valid preamble and prefix (or with none)."""
    noise = rng.randbytes(rng.randint(1, 4096))
    return (bytes(128) + b"DICM" + noise) if rng.random() < 0.7 else noise


#: name -> mutation(sample bytes, rng) -> hostile bytes
MUTATIONS: Final[dict[str, Mutation]] = {
    "bad_text": _bad_text,
    "bad_vr": _bad_vr,
    "bit_flip": _bit_flip,
    "deep_nesting": _deep_nesting,
    "deflate_bomb": _deflate_bomb,
    "garbage": _garbage,
    "huge_element": _huge_element,
    "lengths": _lengths,
    "many_frames": _many_frames,
    "splice": _splice,
    "truncate": _truncate,
}
