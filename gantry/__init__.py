"""Gantry: a columnar toolkit for DICOM indexing, audit and de-identification.

Examples
--------
>>> import gantry
>>> gantry.Session.__name__
'Session'
"""

from gantry._version import __version__
from gantry.session import Session, SessionInfo

__all__ = ["Session", "SessionInfo", "__version__"]
