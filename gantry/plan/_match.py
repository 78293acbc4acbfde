"""Precise matching of an original value inside text or bytes.

Letters, digits and ``_`` are word characters: a token only matches as a whole
word.  Digits inside a UID or another number are no match either.

Examples
--------
>>> find(b"KERNEL STANDARD", "STANDARD"), find(b"TOSHIBA_MEC", "TOSHIBA")
(7, -1)
>>> find(b"2.25.11790", "1179"), find(b"UID 2.25.1179", "1179"), find(b"ID 1179", "1179")
(-1, -1, 3)
>>> contains("ANON_000008", "ANON"), contains("CT ABDOMEN PELVIS", "ABDOMEN")
(False, True)
>>> import polars as pl
>>> pl.Series(["LI", "LEE", "山田", "王", "김민"]).to_frame("t").filter(long_enough(pl.col("t")))["t"].to_list()
['LEE', '山田', '김민']
>>> pl.select(joined_names(pl.lit("Wang^Wei=王^伟=ワン^ウェイ"))).item().to_list()
['王伟', 'ワンウェイ']
"""

from __future__ import annotations

from typing import Final

import polars as pl

__all__ = ["contains", "find", "joined_names", "long_enough"]

_WORD: Final = frozenset(b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz_")
_DIGITS: Final = frozenset(b"0123456789")
_DOT: Final = ord(".")
_MIN_TOKEN: Final = 3
# a CJK name part is often two characters (山田, 太郎, 김민): as specific as three letters
_IDEOGRAPHIC: Final = r"[\p{Han}\p{Hiragana}\p{Katakana}\p{Hangul}]"


def _bounded(buf: bytes, at: int, end: int, digit_start: bool, digit_end: bool) -> bool:
    if at > 0:
        before = buf[at - 1]
        if before in _WORD:
            return False
        if digit_start and before == _DOT and at > 1 and buf[at - 2] in _DIGITS:
            return False  # the digits continue a number or a UID
    if end < len(buf):
        after = buf[end]
        if after in _WORD:
            return False
        if digit_end and after == _DOT and end + 1 < len(buf) and buf[end + 1] in _DIGITS:
            return False
    return True


def find(buf: bytes, token: str | bytes, start: int = 0) -> int:
    """The offset of the first precise match of ``token`` in ``buf`` from ``start``, or -1.

    ``buf`` and ``token`` are compared as given: callers upper-case both.
    """
    raw = token.encode("utf-8", "ignore") if isinstance(token, str) else token
    if not raw:
        return -1
    digit_start, digit_end = raw[0] in _DIGITS, raw[-1] in _DIGITS
    n = len(raw)
    at = buf.find(raw, start)
    while at >= 0:
        if _bounded(buf, at, at + n, digit_start, digit_end):
            return at
        at = buf.find(raw, at + 1)
    return -1


def contains(text: str, token: str) -> bool:
    """Whether ``token`` matches precisely inside ``text`` (both upper-case)."""
    return find(text.encode("utf-8", "ignore"), token) >= 0


def long_enough(token: pl.Expr) -> pl.Expr:
    """Whether a name part or identifier is specific enough to search text for.

    Three characters or more, or two when one of them is Han, Kana or Hangul.
    """
    n = token.str.len_chars()
    return (n >= _MIN_TOKEN) | ((n == _MIN_TOKEN - 1) & token.str.contains(_IDEOGRAPHIC))


def joined_names(name: pl.Expr) -> pl.Expr:
    """A list of each Han, Kana or Hangul group of a person name with its parts joined.

    CJK text writes a name without a blank (山田太郎, 王伟), and a one-character
    part (王) is too short to search for alone.
    """
    return name.str.split("=").list.eval(
        pl.element().str.replace_all(r"[\^ ]", "").filter(pl.element().str.contains(_IDEOGRAPHIC))
    )
