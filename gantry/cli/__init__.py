"""The ``gantry`` command: a thin shell over :class:`gantry.Session`.

Each verb lives in a module named for its stage; importing the module registers it.
"""

from __future__ import annotations

from collections.abc import Sequence

from gantry.cli import (  # noqa: F401  (registers verbs)
    _audit,
    _ctp,
    _deface,
    _deid,
    _index,
    _net,
    _nifti,
    _ocr,
    _plugins,
    _report,
    _review,
    _vault,
)
from gantry.cli._app import cli

__all__ = ["cli", "main"]


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of the ``gantry`` console script."""
    cli.main(args=list(argv) if argv is not None else None, prog_name="gantry")
