"""Action codes, profile options and the rule that resolves compound codes.

Everything here is small, dependency-free data: the generator script
(``scripts/gen_profiles.py``) imports it so the resolution rule lives in one
place.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Final

__all__ = [
    "BASIC_PROFILE_CODE",
    "CID7050",
    "Action",
    "ProfileOption",
    "resolve_code",
]


class Action(StrEnum):
    """A PS3.15 Section E.3 action code, resolved to a single letter.

    Members are named by the standard's letters (the ``plan`` table stores the
    same letters); each has a descriptive alias such as ``Action.REMOVE``.
    Strings are accepted wherever an ``Action`` is expected.

    Examples
    --------
    >>> Action("X") is Action.REMOVE
    True
    >>> [str(a) for a in Action]
    ['X', 'Z', 'D', 'K', 'C', 'U']
    >>> Action.U.description
    'replace the UID with a consistent new one (remap)'
    """

    X = "X"
    """Remove the attribute."""
    Z = "Z"
    """Replace with a zero-length (empty) value."""
    D = "D"
    """Replace with a non-zero-length dummy value consistent with the VR."""
    K = "K"
    """Keep the value (for a sequence: keep it and process its items)."""
    C = "C"
    """Clean: replace with values of similar meaning known to hold no identifying
    information (for private attributes: keep the known-safe ones only)."""
    U = "U"
    """Replace the UID with a new one, consistently within the data set, so
    references still resolve."""

    REMOVE = "X"
    EMPTY = "Z"
    DUMMY = "D"
    KEEP = "K"
    CLEAN = "C"
    REMAP_UID = "U"

    @property
    def description(self) -> str:
        """One line saying what the action does."""
        return _DESCRIPTIONS[self]


_DESCRIPTIONS: Final[dict[Action, str]] = {
    Action.X: "remove the attribute",
    Action.Z: "replace with a zero-length (empty) value",
    Action.D: "replace with a non-empty dummy value of the same VR",
    Action.K: "keep the value",
    Action.C: "clean: keep only values known to hold no identifying information",
    Action.U: "replace the UID with a consistent new one (remap)",
}


# The resolution rule (documented in docs/profiles.md): a compound Basic Profile
# code lists the alternatives the standard allows, the choice depending on the
# attribute's Type in the IOD.  Gantry does not know the IOD of every element it
# meets, so it picks the alternative that is valid whatever the Type is while
# still removing the value: a dummy (D) satisfies Type 1, 2 and 3; an empty value
# (Z) satisfies Type 2 and 3.  For the two reference sequences coded X/Z/U* the
# sequence is kept and the UIDs inside it are remapped (U), so references to other
# instances still resolve after de-identification.
_COMPOUND: Final[dict[str, Action]] = {
    "Z/D": Action.D,
    "X/Z": Action.Z,
    "X/D": Action.D,
    "X/Z/D": Action.D,
    "X/Z/U*": Action.U,
    "X/Z/U": Action.U,
}


def resolve_code(code: str) -> Action:
    """Resolve a PS3.15 action code, simple or compound, to one :class:`Action`.

    Parameters
    ----------
    code : str
        A code as printed in Table E.1-1: ``"X"``, ``"Z/D"``, ``"X/Z/U*"``, …

    Returns
    -------
    Action
        The single action Gantry applies.

    Raises
    ------
    ValueError
        If ``code`` is not a code the standard uses.

    Examples
    --------
    >>> [str(resolve_code(c)) for c in ("X", "Z/D", "X/Z", "X/D", "X/Z/D", "X/Z/U*")]
    ['X', 'D', 'Z', 'D', 'D', 'U']
    """
    text = code.strip().upper()
    if text in _COMPOUND:
        return _COMPOUND[text]
    try:
        return Action(text)
    except ValueError:
        raise ValueError(f"unknown PS3.15 action code {code!r}") from None


class ProfileOption(StrEnum):
    """An option of the Basic Application Level Confidentiality Profile.

    Values are the names used in config files and in ``profiles/*.yaml``.

    Examples
    --------
    >>> ProfileOption("retain-uids").code
    '113110'
    >>> ProfileOption.CLEAN_DESCRIPTORS.meaning
    'Clean Descriptors Option'
    >>> ProfileOption.RETAIN_UIDS.column
    'rtnUIDsOpt'
    """

    RETAIN_LONGITUDINAL_FULL_DATES = "retain-longitudinal-full-dates"
    """Keep dates and times unchanged (Retain Longitudinal Temporal Information
    with Full Dates Option)."""
    RETAIN_LONGITUDINAL_MODIFIED_DATES = "retain-longitudinal-modified-dates"
    """Keep temporal relationships by shifting dates per patient (Retain
    Longitudinal Temporal Information with Modified Dates Option)."""
    RETAIN_PATIENT_CHARACTERISTICS = "retain-patient-characteristics"
    """Keep sex, age, size, weight and similar (Retain Patient Characteristics
    Option)."""
    RETAIN_DEVICE_IDENTITY = "retain-device-identity"
    """Keep device serial numbers, station names and similar (Retain Device
    Identity Option)."""
    RETAIN_INSTITUTION_IDENTITY = "retain-institution-identity"
    """Keep institution and department names and addresses (Retain Institution
    Identity Option)."""
    RETAIN_UIDS = "retain-uids"
    """Keep the original UIDs instead of remapping them (Retain UIDs Option)."""
    RETAIN_SAFE_PRIVATE = "retain-safe-private"
    """Keep private attributes known to be safe, remove the others (Retain Safe
    Private Option)."""
    CLEAN_DESCRIPTORS = "clean-descriptors"
    """Clean free-text descriptions instead of removing them (Clean Descriptors
    Option)."""
    CLEAN_STRUCTURED_CONTENT = "clean-structured-content"
    """Clean structured report content instead of removing it (Clean Structured
    Content Option)."""
    CLEAN_GRAPHICS = "clean-graphics"
    """Clean curves, overlays and graphic annotations instead of removing them
    (Clean Graphics Option)."""

    @property
    def column(self) -> str:
        """The option's column in the machine-readable Table E.1-1."""
        return _OPTION_META[self][0]

    @property
    def code(self) -> str:
        """The CID 7050 code value (scheme DCM) recorded in the output."""
        return _OPTION_META[self][1]

    @property
    def meaning(self) -> str:
        """The CID 7050 code meaning."""
        return CID7050[self.code]


_OPTION_META: Final[dict[ProfileOption, tuple[str, str]]] = {
    ProfileOption.RETAIN_LONGITUDINAL_FULL_DATES: ("rtnLongFullDatesOpt", "113106"),
    ProfileOption.RETAIN_LONGITUDINAL_MODIFIED_DATES: ("rtnLongModifDatesOpt", "113107"),
    ProfileOption.RETAIN_PATIENT_CHARACTERISTICS: ("rtnPatCharsOpt", "113108"),
    ProfileOption.RETAIN_DEVICE_IDENTITY: ("rtnDevIdOpt", "113109"),
    ProfileOption.RETAIN_INSTITUTION_IDENTITY: ("rtnInstIdOpt", "113112"),
    ProfileOption.RETAIN_UIDS: ("rtnUIDsOpt", "113110"),
    ProfileOption.RETAIN_SAFE_PRIVATE: ("rtnSafePrivOpt", "113111"),
    ProfileOption.CLEAN_DESCRIPTORS: ("cleanDescOpt", "113105"),
    ProfileOption.CLEAN_STRUCTURED_CONTENT: ("cleanStructContOpt", "113104"),
    ProfileOption.CLEAN_GRAPHICS: ("cleanGraphOpt", "113103"),
}

BASIC_PROFILE_CODE: Final = "113100"

#: CID 7050 "De-identification Method": code value (scheme DCM) → code meaning.
CID7050: Final[dict[str, str]] = {
    "113100": "Basic Application Confidentiality Profile",
    "113101": "Clean Pixel Data Option",
    "113102": "Clean Recognizable Visual Features Option",
    "113103": "Clean Graphics Option",
    "113104": "Clean Structured Content Option",
    "113105": "Clean Descriptors Option",
    "113106": "Retain Longitudinal Temporal Information Full Dates Option",
    "113107": "Retain Longitudinal Temporal Information Modified Dates Option",
    "113108": "Retain Patient Characteristics Option",
    "113109": "Retain Device Identity Option",
    "113110": "Retain UIDs Option",
    "113111": "Retain Safe Private Option",
    "113112": "Retain Institution Identity Option",
}
