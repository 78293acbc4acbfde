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


def test_nifti_public_names() -> None:
    from gantry import nifti

    assert nifti.__all__ == [
        "CONVERSIONS_TABLE",
        "DEFAULT_BIDS_RULES",
        "BidsRule",
        "NiftiResult",
        "load_bids_rules",
        "run_nifti_export",
    ]
