"""Tag text and tag patterns: ``"(0010,0010)"``, ``"(60xx,3000)"``, private.

A pattern is a tag whose hex digits may be ``x`` (any digit), as in the
standard's repeating groups, or the special *Private Attributes* pattern that
matches every tag in an odd group.  Each pattern becomes a ``(value, mask)``
pair of 32-bit integers so a tag matches when ``tag & mask == value``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

__all__ = ["PRIVATE_PATTERN", "Pattern", "format_tag", "parse_pattern", "parse_tag"]

#: Canonical spelling of the standard's "Private Attributes" row.
PRIVATE_PATTERN: Final = "(gggg,eeee) where gggg is odd"
_PRIVATE_ALIASES: Final = frozenset({PRIVATE_PATTERN, "private", "(gggg,eeee)"})
_PRIVATE_BIT: Final = 0x0001_0000

_TAG_RE: Final = re.compile(r"^\(?\s*([0-9a-fA-F]{4})\s*,?\s*([0-9a-fA-F]{4})\s*\)?$")
_PATTERN_RE: Final = re.compile(r"^\(?\s*([0-9a-fA-Fx]{4})\s*,?\s*([0-9a-fA-Fx]{4})\s*\)?$")


def parse_tag(text: str) -> int:
    """Parse tag text (``"0010,0010"``, ``"(0010,0010)"`` or ``"00100010"``).

    Raises
    ------
    ValueError
        If ``text`` is not a tag.

    Examples
    --------
    >>> hex(parse_tag("(0010,0010)")), hex(parse_tag("0008103e"))
    ('0x100010', '0x8103e')
    """
    m = _TAG_RE.match(text.strip())
    if m is None:
        raise ValueError(f"not a DICOM tag: {text!r}")
    return int(m.group(1) + m.group(2), 16)


def format_tag(tag: int) -> str:
    """Format a tag as Gantry's tag text: 8 upper-case hex digits.

    Examples
    --------
    >>> format_tag(0x0008103E)
    '0008103E'
    """
    return f"{tag:08X}"


@dataclass(frozen=True, slots=True)
class Pattern:
    """A parsed tag pattern.

    Attributes
    ----------
    text : str
        Canonical text: ``"(0010,0010)"``, ``"(50xx,xxxx)"`` or
        :data:`PRIVATE_PATTERN`.
    value, mask : int
        ``tag & mask == value`` for matching tags; ``x`` digits are 0 in both.
    """

    text: str
    value: int
    mask: int

    @property
    def exact(self) -> bool:
        """True when the pattern names one tag."""
        return self.mask == 0xFFFF_FFFF

    @property
    def private(self) -> bool:
        """True for the Private Attributes pattern (every odd group)."""
        return self.text == PRIVATE_PATTERN

    @property
    def match_mask(self) -> int:
        """The mask used for matching.

        Repeating groups (``x`` in the group) are even by definition (PS3.5
        Section 7.6), so such a pattern never matches an odd, private group: the
        group's lowest bit is added to the mask (its value bit is 0).
        """
        if self.private or self.mask & _PRIVATE_BIT:
            return self.mask
        return self.mask | _PRIVATE_BIT

    @property
    def specificity(self) -> int:
        """Number of fixed bits; among matching patterns the highest wins."""
        return self.match_mask.bit_count()

    def matches(self, tag: int) -> bool:
        """Whether ``tag`` matches this pattern.

        Examples
        --------
        >>> p = parse_pattern("(60xx,3000)")
        >>> p.matches(0x60023000), p.matches(0x60013000), p.matches(0x60003001)
        (True, False, False)
        """
        return tag & self.match_mask == self.value


def parse_pattern(text: str) -> Pattern:
    """Parse a pattern as written in Table E.1-1 or in a profile file.

    Hex digits are upper-cased, ``x`` wildcards lower-cased.  The standard's
    ``"(GGGG,EEEE) WHERE GGGG IS ODD"`` row (also spelt ``"private"``) becomes
    :data:`PRIVATE_PATTERN` with value and mask ``0x00010000``.

    Raises
    ------
    ValueError
        If ``text`` is not a pattern.

    Examples
    --------
    >>> p = parse_pattern("(50XX,XXXX)")
    >>> p.text, hex(p.value), hex(p.mask)
    ('(50xx,xxxx)', '0x50000000', '0xff000000')
    >>> parse_pattern("(GGGG,EEEE) WHERE GGGG IS ODD").text
    '(gggg,eeee) where gggg is odd'
    """
    raw = " ".join(text.split()).lower()
    if raw in _PRIVATE_ALIASES:
        return Pattern(PRIVATE_PATTERN, _PRIVATE_BIT, _PRIVATE_BIT)
    m = _PATTERN_RE.match(raw)
    if m is None:
        raise ValueError(f"not a tag pattern: {text!r}")
    digits = m.group(1) + m.group(2)
    value = mask = 0
    for ch in digits:
        value <<= 4
        mask <<= 4
        if ch != "x":
            value |= int(ch, 16)
            mask |= 0xF
    canon = "".join(ch if ch == "x" else ch.upper() for ch in digits)
    return Pattern(f"({canon[:4]},{canon[4:]})", value, mask)
