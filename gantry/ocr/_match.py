"""Does a piece of recognised text identify someone?

Two tests, both tolerant of OCR's usual slips (case, punctuation, one wrong
character in a long token):

- **identity**: the text holds one of the instance's own identifying values
  (patient name parts, IDs, accession number, birth date in common layouts,
  institution, physicians, operators, address, phone);
- **patterns**: the text looks like PHI whatever the instance says — the audit's
  free-text patterns (names, IDs, dates, phone numbers, e-mail, addresses)
  plus times of day.

Only kinds are reported (``identity:PatientName``, ``pattern:date``), never the value.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Final

from pydicom.dataset import Dataset

__all__ = ["IdentityTokens", "phi_kinds"]

#: Header attributes whose values count as the instance's identity.
IDENTITY_KEYWORDS: Final = (
    "PatientName",
    "PatientID",
    "OtherPatientIDs",
    "IssuerOfPatientID",
    "AccessionNumber",
    "PatientBirthDate",
    "PatientAddress",
    "PatientTelephoneNumbers",
    "InstitutionName",
    "InstitutionAddress",
    "ReferringPhysicianName",
    "PerformingPhysicianName",
    "OperatorsName",
    "PhysiciansOfRecord",
    "StudyID",
    "MilitaryRank",
    "PatientMotherBirthName",
    "OtherPatientNames",
    "PatientBirthName",
)

_MIN_TOKEN: Final = 3
_FUZZY_MIN: Final = 6  # tokens this long also match with one character wrong
_PART_MIN: Final = 4  # a word this long, with a digit, matches the start or end of a long token


def _norm(text: str) -> str:
    return re.sub(r"[^0-9A-Z]", "", text.upper())


def _words(text: str) -> list[str]:
    return [w for w in (_norm(p) for p in re.split(r"[\s^,;:/\\|()\[\]]+", text)) if w]


def _date_forms(da: str) -> list[str]:
    d = _norm(da)
    if len(d) != 8 or not d.isdigit():
        return [d] if d else []
    y, m, dd = d[:4], d[4:6], d[6:]
    return [d, dd + m + y, m + dd + y, dd + m + y[2:], m + dd + y[2:]]


@dataclass(frozen=True)
class IdentityTokens:
    """The normalised identifying tokens of one instance, by keyword.

    Examples
    --------
    >>> from pydicom import Dataset
    >>> ds = Dataset()
    >>> ds.PatientName, ds.PatientID, ds.PatientBirthDate = "DOE^JOHN", "MRN12345", "19610312"
    >>> ids = IdentityTokens.from_dataset(ds)
    >>> ids.match("Name: Doe, John")
    'PatientName'
    >>> ids.match("ID MRN1Z345"), ids.match("DOB 12/03/1961"), ids.match("LIVER")
    ('PatientID', 'PatientBirthDate', None)

    OCR may lose the start or end of an ID: what it read still identifies.

    >>> ids.match("ID N12345"), ids.match("MRN123")
    ('PatientID', 'PatientID')
    """

    tokens: dict[str, str] = field(default_factory=dict)  # token -> keyword

    @classmethod
    def from_dataset(cls, ds: Dataset) -> IdentityTokens:
        out: dict[str, str] = {}
        for kw in IDENTITY_KEYWORDS:
            value = ds.get(kw)
            if value in (None, ""):
                continue
            values = value if isinstance(value, list | tuple) else getattr(value, "value", value)
            if not isinstance(values, list | tuple) or isinstance(values, str):
                values = [values]
            for v in values:
                out.update(cls._tokens_of(kw, str(v)))
        return cls(out)

    @classmethod
    def from_values(cls, values: Iterable[tuple[str, str]]) -> IdentityTokens:
        """From ``(keyword, value)`` pairs (e.g. the ``elements`` table)."""
        out: dict[str, str] = {}
        for kw, v in values:
            out.update(cls._tokens_of(kw, v))
        return cls(out)

    @staticmethod
    def _tokens_of(keyword: str, value: str) -> dict[str, str]:
        if keyword.endswith("Date"):
            return {t: keyword for t in _date_forms(value) if len(t) >= _MIN_TOKEN}
        whole = _norm(value)
        found = {w: keyword for w in _words(value) if len(w) >= _MIN_TOKEN}
        if len(whole) >= _MIN_TOKEN:
            found[whole] = keyword
        return found

    def match(self, text: str) -> str | None:
        """The keyword whose value ``text`` holds, or None."""
        if not self.tokens:
            return None
        words = _words(text)
        joined = _norm(text)
        for token, kw in self.tokens.items():
            if len(token) >= _FUZZY_MIN and token in joined or token in words:
                return kw
            if len(token) >= _FUZZY_MIN and any(
                _one_off(token, w) or _part(token, w) for w in words
            ):
                return kw
        return None

    def as_list(self) -> list[tuple[str, str]]:
        return sorted(self.tokens.items())


def _part(token: str, word: str) -> bool:
    """Whether ``word`` (with a digit) is the start or end of ``token``: an ID OCR cut short."""
    return (
        _PART_MIN <= len(word) < len(token)
        and any(c.isdigit() for c in word)
        and (token.startswith(word) or token.endswith(word))
    )


def _one_off(a: str, b: str) -> bool:
    """Whether ``a`` and ``b`` differ by at most one substitution, insertion or deletion."""
    if abs(len(a) - len(b)) > 1 or a == b:
        return a == b
    if len(a) == len(b):
        return sum(x != y for x, y in zip(a, b, strict=True)) == 1
    short, long_ = (a, b) if len(a) < len(b) else (b, a)
    i = 0
    while i < len(short) and short[i] == long_[i]:
        i += 1
    return short[i:] == long_[i + 1 :]


def _patterns() -> dict[str, re.Pattern[str]]:
    from gantry.audit._rules import TEXT_PATTERNS

    found = {name.removeprefix("text-"): re.compile(p) for name, p in TEXT_PATTERNS.items()}
    found["time"] = re.compile(r"\b(?:[01]?[0-9]|2[0-3])[:.][0-5][0-9](?:[:.][0-5][0-9])?\b")
    # a month and year, what is left of a date when OCR loses a digit or a separator
    found["date"] = re.compile(
        found["date"].pattern + r"|\b(?:0?[1-9]|1[0-2])[/.-](?:19|20)[0-9]{2}\b"
    )
    # a label OCR reads next to a value on ultrasound and capture screens
    found["label"] = re.compile(
        r"(?i)\b(?:patient|name|pat\.?|birth|mrn|accession|acc\.?)\b\s*[:#]"
        r"|(?i:\bd\.?o\.?b(?![a-z]))"
    )
    return found


_COMPILED: dict[str, re.Pattern[str]] = {}


def phi_kinds(text: str, identity: IdentityTokens | None = None) -> list[str]:
    """What makes ``text`` identifying: ``identity:<keyword>`` and ``pattern:<name>`` kinds.

    Examples
    --------
    >>> phi_kinds("12/03/1961 14:22")
    ['pattern:date', 'pattern:time']
    >>> phi_kinds("5 cm"), phi_kinds("Tel: +44 20 7946 0958")
    ([], ['pattern:phone'])
    """
    if not _COMPILED:
        _COMPILED.update(_patterns())
    kinds = []
    if identity is not None and (kw := identity.match(text)) is not None:
        kinds.append(f"identity:{kw}")
    kinds += [f"pattern:{name}" for name, rx in _COMPILED.items() if rx.search(text)]
    return kinds


def describe(kinds: Any) -> str:
    """``kinds`` as one string for the ``match`` column."""
    return ",".join(kinds)
