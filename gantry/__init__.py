"""Gantry: a columnar toolkit for DICOM indexing, audit and de-identification.

Examples
--------
>>> import gantry
>>> gantry.Session.__name__
'Session'
>>> isinstance(gantry.__version__, str)
True
"""

from __future__ import annotations

from typing import Any

from gantry.session import Session, SessionInfo

__all__ = ["Session", "SessionInfo", "__version__"]


def __getattr__(name: str) -> Any:
    # Reading the package metadata costs as much as the rest of ``import gantry``:
    # done on first access only.
    if name == "__version__":
        from gantry._version import __version__

        return __version__
    raise AttributeError(f"module 'gantry' has no attribute {name!r}")
