"""Builders of realistic synthetic DICOM for tests, benchmarks and ``gantry demo``.

- :func:`make_instance` — one instance of any common modality and transfer syntax;
- :func:`make_corpus` — a patients ▸ studies ▸ series ▸ instances archive,
  optionally with canary tokens in every identifying element;
- :func:`make_realistic_corpus` — CT files with the collisions real archives have
  (code meanings repeating descriptions, kernel words, vendor names), for
  end-to-end de-identification tests;
- :func:`make_clutter` — the empty, text, truncated, odd-syntax, DICOMDIR and
  duplicate files a real archive also holds;
- :func:`make_dose_sr` and :func:`make_text_sr` — Structured Reports (a CT
  dose report, a deep report whose content names the patient);
  :func:`make_encapsulated_pdf` — an Encapsulated PDF naming the patient;
- :func:`make_series` — one whole series with known geometry (CT, MR, enhanced
  MR, fMRI, diffusion), for NIfTI conversion;
- :func:`make_head_phantom` and :func:`write_head_series` — a head with a face
  (brain and face ground truth) as a CT or MR series, for defacing;
- :func:`make_ct_files` — thousands of 512×512 CT files in seconds, for benchmarks;
- :func:`decode_pixels` and :func:`find_canaries` — oracles for tests.

Examples
--------
>>> import tempfile
>>> from gantry.testing import make_corpus
>>> corpus = make_corpus(tempfile.mkdtemp(), patients=1, studies_per_patient=1)
>>> len(corpus.paths)
6
"""

from gantry.testing._bench import make_ct_files
from gantry.testing._builders import make_instance
from gantry.testing._canaries import find_canaries
from gantry.testing._clutter import make_clutter
from gantry.testing._corpus import Corpus, make_corpus, planned_dates
from gantry.testing._head import HeadPhantom, make_head_phantom, write_head_series
from gantry.testing._pixels import decode_pixels
from gantry.testing._plugins import make_plugin_distribution
from gantry.testing._realistic import make_realistic_corpus
from gantry.testing._specs import InstanceSpec, PatientSpec, SeriesSpec, StudySpec
from gantry.testing._sr import make_dose_sr, make_encapsulated_pdf, make_text_sr
from gantry.testing._synthetic_index import make_synthetic_index
from gantry.testing._volumes import SeriesFiles, make_series

__all__ = [
    "Corpus",
    "HeadPhantom",
    "InstanceSpec",
    "PatientSpec",
    "SeriesFiles",
    "SeriesSpec",
    "StudySpec",
    "decode_pixels",
    "find_canaries",
    "make_clutter",
    "make_corpus",
    "make_ct_files",
    "make_dose_sr",
    "make_encapsulated_pdf",
    "make_head_phantom",
    "make_instance",
    "make_plugin_distribution",
    "make_realistic_corpus",
    "make_series",
    "make_synthetic_index",
    "make_text_sr",
    "planned_dates",
    "write_head_series",
]
