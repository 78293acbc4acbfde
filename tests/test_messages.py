"""Masking of values in messages: quoted values go, Gantry's own wording stays."""

from __future__ import annotations

import pytest

from gantry._messages import mask, reason_for
from gantry.errors import ExportError


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ("Invalid value for VR PN: 'DOE^JANE'", "Invalid value for VR PN: '<masked>'"),
        ("Invalid value for VR PN: 'O'BRIEN^PAT'", "Invalid value for VR PN: '<masked>'"),
        ("value b'DOE\\x00' is odd", "value '<masked>' is odd"),
        ('got "DOE^JANE" here', "got '<masked>' here"),
        ("got 'DOE' and 'JANE'", "got '<masked>' and '<masked>'"),
    ],
)
def test_quoted_values_are_masked(text: str, masked: str) -> None:
    assert mask(text) == masked


def test_apostrophes_of_the_wording_are_no_quotes() -> None:
    # an ExportError's reason once read "an element'<masked>'s `plan` rows and `edits`"
    text = (
        "the de-identified header could not be encoded (TypeError); an element's value "
        "does not fit its VR: check this instance's `plan` rows and `edits`"
    )
    assert mask(text) == text
    assert reason_for(ExportError(text)) == f"ExportError: {text}"
