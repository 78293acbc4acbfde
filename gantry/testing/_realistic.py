"""A corpus with the collisions real archives have, for end-to-end de-identification tests.

:func:`make_realistic_corpus` starts from :func:`make_corpus` (canaries in every
identifying element) and adds what made exports of real data fail before:

* code meanings that repeat the (removed) study description, in a kept code sequence;
* kernel and protocol words (``STANDARD``) both removed (Protocol Name) and kept
  (Convolution Kernel);
* institution names inside station names, and a removed institution ``TOSHIBA``
  beside the kept manufacturer ``TOSHIBA_MEC``;
* short numeric study IDs, whose digits occur inside generated UIDs;
* date-valued private tags (the study date) and UIDs repeated in private sequences;
* identity text in free-text fields (comments naming the patient and the MRN);
* an implementation UID outside Table E.1-1 (Creator-Version UID).
"""

from __future__ import annotations

import random
from pathlib import Path

from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from gantry.errors import ConfigError
from gantry.testing._corpus import Corpus, make_corpus

__all__ = ["make_realistic_corpus"]

_STUDIES = ("CT ABDOMEN PELVIS", "CT CHEST WITH CONTRAST", "CT HEAD WO CONTRAST")
_KERNELS = ("STANDARD", "SOFT", "BONE", "LUNG")
_SITES = (("TOSHIBA", "TOSHIBA_MEC", "Aquilion"), ("GENERAL", "GE MEDICAL SYSTEMS",
          "LightSpeed VCT"), ("ST MARY", "SIEMENS", "SOMATOM Definition AS"))  # fmt: skip
_CREATOR_UID = "1.2.392.200036.9116.2.6.1.48"


def _code(value: str, meaning: str, scheme: str = "99LOCAL") -> Dataset:
    item = Dataset()
    item.CodeValue, item.CodingSchemeDesignator, item.CodeMeaning = value, scheme, meaning
    return item


def _collide(ds: Dataset, rnd: random.Random, study_no: int) -> None:
    """Add the real-world collisions to one instance (in place)."""
    site, manufacturer, model = _SITES[study_no % len(_SITES)]
    description = _STUDIES[study_no % len(_STUDIES)]
    kernel = _KERNELS[int(ds.get("SeriesNumber", 1) or 1) % len(_KERNELS)]
    name = str(ds.get("PatientName", ""))
    words = " ".join(p for p in name.replace("^", " ").split() if p)
    ds.StudyDescription = description
    ds.ProcedureCodeSequence = Sequence([_code(f"P{study_no % 90 + 10}", description)])
    ds.RequestAttributesSequence[0].RequestedProcedureDescription = description
    ds.SeriesDescription = f"AXIAL {kernel} 5MM"
    ds.ProtocolName = kernel
    ds.ConvolutionKernel = kernel
    ds.PerformedProtocolCodeSequence = Sequence([_code(kernel[:4], kernel)])
    ds.InstitutionName = site
    ds.StationName = f"{site} CT{1 + study_no % 3}"
    ds.Manufacturer = manufacturer
    ds.ManufacturerModelName = model
    ds.StudyID = str(1000 + study_no * 37 % 9000)
    ds.CreatorVersionUID = _CREATOR_UID
    ds.BodyPartExamined = description.split()[1]
    ds.AnatomicRegionSequence = Sequence([_code("R1", description.split()[1], "99LOCAL")])
    ds.ImageComments = f"FOLLOW UP {words} MRN {ds.PatientID}"
    ds.PatientComments = f"{words} allergic to contrast"
    # date-valued private tags and UIDs repeated in a private sequence
    gems = ds.private_block(0x0019, "GEMS_ACQU_01", create=True)
    gems.add_new(0x10, "DA", ds.StudyDate)
    gems.add_new(0x11, "LO", name)
    gems.add_new(0x12, "DS", str(rnd.randint(1, 400)))
    ref = Dataset()
    ref.ReferencedSOPInstanceUID = ds.SOPInstanceUID
    ref.StudyInstanceUID = ds.StudyInstanceUID
    parm = ds.private_block(0x0043, "GEMS_PARM_01", create=True)
    parm.add_new(0x10, "SQ", Sequence([ref]))
    parm.add_new(0x11, "UI", ds.SeriesInstanceUID)


def make_realistic_corpus(
    root: str | Path, *, files: int = 200, seed: int = 0, rows: int = 16, columns: int = 16
) -> Corpus:
    """Write ``files`` CT instances with real data's collisions and a canary in every
    identifying element.

    Parameters
    ----------
    root : str or Path
        Folder to write into.
    files : int
        How many instances (patients of 2 studies × 2 series).
    seed : int
        Every UID, identity, date and pixel derives from it.
    rows, columns : int
        Image size (small by default: the header is what this corpus is about).

    Returns
    -------
    Corpus
        ``canaries`` are the tokens that must not reach any output byte.

    Examples
    --------
    >>> import tempfile, pydicom
    >>> corpus = make_realistic_corpus(tempfile.mkdtemp(), files=8)
    >>> ds = pydicom.dcmread(corpus.paths[0])
    >>> len(corpus.paths), ds.ConvolutionKernel == ds.ProtocolName
    (8, True)
    >>> ds.ProcedureCodeSequence[0].CodeMeaning == ds.StudyDescription
    True
    """
    if files < 1:
        raise ConfigError("files", expected="a positive integer", got=files)
    rnd = random.Random(f"gantry-realistic:{seed}")
    studies: dict[str, int] = {}

    def collide(ds: Dataset) -> None:
        study_no = studies.setdefault(str(ds.StudyInstanceUID), len(studies))
        _collide(ds, rnd, study_no)

    per_series = 5
    return make_corpus(
        root,
        patients=max(1, -(-files // (4 * per_series))),
        studies_per_patient=2,
        series_per_study=2,
        instances_per_series=per_series,
        modalities=("CT",),
        compressed=False,
        multiframe=False,
        seed=seed,
        rows=rows,
        columns=columns,
        canaries=True,
        limit=files,
        transform=collide,
    )
