"""Gantry: a columnar toolkit for DICOM indexing, audit and de-identification."""

from gantry._version import __version__

__all__ = ["__version__"]
