"""The public surface of ``gantry`` is frozen: change this test on purpose, not by accident."""

import gantry


def test_top_level_all() -> None:
    assert gantry.__all__ == ["Session", "SessionInfo", "__version__"]


def test_error_tree() -> None:
    from gantry import errors

    for name in errors.__all__:
        assert issubclass(getattr(errors, name), errors.GantryError)
    assert issubclass(errors.ConfigError, ValueError)
    assert issubclass(errors.MissingDependencyError, ImportError)
