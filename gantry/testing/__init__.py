"""Builders of realistic synthetic DICOM for tests, benchmarks and ``gantry demo``."""

from gantry.testing._builders import make_instance
from gantry.testing._corpus import Corpus, make_corpus
from gantry.testing._specs import InstanceSpec, PatientSpec, SeriesSpec, StudySpec

__all__ = [
    "Corpus",
    "InstanceSpec",
    "PatientSpec",
    "SeriesSpec",
    "StudySpec",
    "make_corpus",
    "make_instance",
]
