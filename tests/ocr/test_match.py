"""Which recognised text identifies someone."""

import pytest
from pydicom import Dataset

from gantry.ocr import IdentityTokens, phi_kinds


@pytest.fixture
def identity() -> IdentityTokens:
    ds = Dataset()
    ds.PatientName = "VANDERBILT^MARGARET^A"
    ds.PatientID = "QX774411"
    ds.PatientBirthDate = "19540927"
    ds.InstitutionName = "ST ELSEWHERE CLINIC"
    ds.AccessionNumber = "A55"
    return IdentityTokens.from_dataset(ds)


@pytest.mark.parametrize(
    ("text", "keyword"),
    [
        ("VANDERBILT MARGARET", "PatientName"),
        ("Vanderbilt, M.", "PatientName"),
        ("VANDERB1LT", "PatientName"),  # one OCR slip in a long token
        ("ID:QX774411", "PatientID"),
        ("QX77441l", "PatientID"),
        ("ID 774411", "PatientID"),  # OCR lost the start of the ID (found by the sweep)
        ("QX7744", "PatientID"),  # ... or its end
        ("27.09.1954", "PatientBirthDate"),
        ("09/27/1954", "PatientBirthDate"),
        ("ELSEWHERE", "InstitutionName"),
        ("A55", "AccessionNumber"),
    ],
)
def test_identity_matches(identity: IdentityTokens, text: str, keyword: str) -> None:
    assert identity.match(text) == keyword
    assert f"identity:{keyword}" in phi_kinds(text, identity)


@pytest.mark.parametrize(
    "text", ["GAIN 52", "DEPTH 14", "5 cm", "L", "THI", "A5", "VAN", "VANDER", "7441"]
)
def test_harmless_text(identity: IdentityTokens, text: str) -> None:
    assert identity.match(text) is None
    assert phi_kinds(text, identity) == []


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("2023-04-05", "pattern:date"),
        ("14:22:05", "pattern:time"),
        ("Tel 020 7946 0958", "pattern:phone"),
        ("MRN 4471234", "pattern:id"),
        ("Dr. Smith", "pattern:person-name"),
        ("Name: ", "pattern:label"),
        ("jo@example.org", "pattern:email"),
    ],
)
def test_patterns(text: str, kind: str) -> None:
    assert kind in phi_kinds(text)


def test_short_tokens_match_only_whole_words(identity: IdentityTokens) -> None:
    assert identity.match("XA55Y") is None
    assert identity.match("ACC A55") == "AccessionNumber"
