"""The deprecation helper: a warning that names the replacement, the call still works."""

from __future__ import annotations

import warnings

import pytest

from gantry._deprecation import (
    DEPRECATIONS,
    GantryDeprecationWarning,
    deprecated,
    removal_version,
    warn_deprecated,
)


def test_deprecated_function_warns_and_still_works() -> None:
    before = len(DEPRECATIONS)

    @deprecated(since="0.3", instead="gantry.new_thing")
    def old_thing(x: int, *, scale: int = 2) -> int:
        """Multiply."""
        return x * scale

    assert len(DEPRECATIONS) == before + 1
    note = DEPRECATIONS[-1]
    assert (note.since, note.removed_in, note.instead) == ("0.3", "0.4", "gantry.new_thing")
    assert note.module == __name__
    with pytest.warns(GantryDeprecationWarning, match=r"removed in 0\.4; use `gantry\.new_thing`"):
        assert old_thing(3, scale=5) == 15
    assert old_thing.__name__ == "old_thing"
    assert "Deprecated since 0.3" in (old_thing.__doc__ or "")
    DEPRECATIONS.pop()


def test_warning_points_at_the_caller() -> None:
    @deprecated(since="0.1", instead="y")
    def x() -> None:
        return None

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        x()
    DEPRECATIONS.pop()
    assert caught[0].filename == __file__


def test_is_a_deprecation_warning_and_can_be_made_an_error() -> None:
    assert issubclass(GantryDeprecationWarning, DeprecationWarning)
    with warnings.catch_warnings():
        warnings.simplefilter("error", GantryDeprecationWarning)
        with pytest.raises(GantryDeprecationWarning, match="`old=` is deprecated since 1.2"):
            warn_deprecated("old=", since="1.2", instead="new=")


def test_one_minor_version() -> None:
    assert removal_version("0.1") == "0.2"
    assert removal_version("0.9.3") == "0.10"
    assert removal_version("2.0") == "2.1"
    with pytest.raises(ValueError, match="`since` must be a version"):
        removal_version("soon")
