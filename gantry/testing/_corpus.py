"""Write a whole synthetic archive: :func:`make_corpus`."""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from pydicom.dataset import Dataset
from pydicom.uid import (
    ExplicitVRLittleEndian,
    HTJ2KLossless,
    ImplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGLSLossless,
    RLELossless,
)

from gantry.errors import ConfigError
from gantry.testing._builders import (
    MODALITIES,
    _pixel_format,
    build_dataset,
    sop_class_for,
    write_dataset,
)
from gantry.testing._canaries import CanaryBook, find_canaries
from gantry.testing._specs import (
    DatePool,
    InstanceSpec,
    PatientSpec,
    SeriesSpec,
    StudySpec,
    make_uid,
    new_patient,
    new_series,
    new_study,
)

COMPRESSED_CYCLE: tuple[str, ...] = (
    ExplicitVRLittleEndian,
    JPEG2000Lossless,
    ImplicitVRLittleEndian,
    RLELossless,
    JPEGLSLossless,
    HTJ2KLossless,
)
NATIVE_CYCLE: tuple[str, ...] = (ExplicitVRLittleEndian, ImplicitVRLittleEndian)


@dataclass
class Corpus:
    """A synthetic archive written by :func:`make_corpus`.

    Attributes
    ----------
    root : Path
        The folder the files were written under.
    paths : list of Path
        Every file written, in patient ▸ study ▸ series ▸ instance order.
    patients : list of PatientSpec
        The identities, with their studies, series and instances (UIDs, paths,
        transfer syntaxes, references).
    canaries : set of str
        Every canary token planted (empty unless ``canaries=True``).
    canary_locations : dict
        Canary token → element path where it was first planted
        (e.g. ``"00100020"`` or ``"00080096[0].00401101[0].00080100"``).
    """

    root: Path
    paths: list[Path]
    patients: list[PatientSpec]
    canaries: set[str] = field(default_factory=set)
    canary_locations: dict[str, str] = field(default_factory=dict)

    @property
    def dates(self) -> set[str]:
        """Every identifying date (``YYYYMMDD``): birth dates and study dates."""
        return {d for p in self.patients for d in p.dates}

    def identity_needles(self) -> set[str]:
        """What no de-identified byte may hold: the canaries and each patient's identity.

        That is every canary, every birth and study date, every patient ID, and
        every part of a patient's name of three letters or more.
        """
        found = set(self.canaries)
        for patient in self.patients:
            found.update(patient.dates)
            found.add(patient.patient_id)
            found.update(part for part in patient.name.split("^") if len(part) >= 3)
        return found

    def leaks(
        self,
        files: Iterable[Path] | Mapping[str, bytes],
        *,
        planned_dates: Mapping[str, Iterable[str]] | None = None,
    ) -> list[tuple[str, str]]:
        """Every ``(name, where the needle was planted)`` found in the bytes of ``files``.

        ``files`` are paths, or a mapping of names (e.g. object keys) to bytes.

        A date shift can land exactly on another real date of the corpus (a study
        shifted by 200 days onto another patient's study day).  ``planned_dates``
        maps an output file's stem (its new SOP Instance UID) to the ``YYYYMMDD``
        values the plan itself wrote into that file (see :func:`planned_dates`);
        a date needle is excused only in a file the plan wrote it into.  The digits
        of a new ``2.25.`` UID are not searched: a random number of up to 39 digits
        holds an 8-digit date by chance.  Every other occurrence is a leak.

        Examples
        --------
        >>> import tempfile
        >>> from pathlib import Path
        >>> tmp = Path(tempfile.mkdtemp())
        >>> c = make_corpus(tmp / "in", patients=1, studies_per_patient=1,
        ...                 series_per_study=1, instances_per_series=1)
        >>> day = c.patients[0].studies[0].date
        >>> out = tmp / "1.2.3.dcm"
        >>> _ = out.write_bytes(b"..." + day.encode() + b"...")
        >>> c.leaks([out]) == [("1.2.3.dcm", day)]
        True
        >>> c.leaks([out], planned_dates={"1.2.3": [day]})  # the plan shifted a date onto it
        []
        >>> c.leaks([out], planned_dates={"9.9.9": [day]}) == [("1.2.3.dcm", day)]  # not here
        True
        >>> _ = out.write_bytes(b"2.25.1234" + day.encode() + b"5678901234567")  # chance
        >>> c.leaks([out])
        []
        """
        needles = self.identity_needles()
        dates = self.dates
        planned = planned_dates or {}
        blobs = (
            files.items()
            if isinstance(files, Mapping)
            else ((str(f), Path(f).read_bytes()) for f in files)
        )
        found = []
        for name, data in blobs:
            excused = {d for d in planned.get(PurePosixPath(name).stem, ()) if d in dates}
            # a new 2.25 UID is a random number: an 8-digit date inside it is chance
            data = _NEW_UID.sub(b"2.25.<uid>", data)
            for n in sorted(needles):
                if n not in excused and n.encode() in data:
                    found.append((PurePosixPath(name).name, self.canary_locations.get(n, n)))
        return found

    def studies(self) -> Iterator[StudySpec]:
        """Iterate over every study of every patient."""
        for patient in self.patients:
            yield from patient.studies

    def series(self) -> Iterator[SeriesSpec]:
        """Iterate over every series."""
        for study in self.studies():
            yield from study.series

    def instances(self) -> Iterator[InstanceSpec]:
        """Iterate over every instance."""
        for series in self.series():
            yield from series.instances


_NEW_UID = re.compile(rb"2\.25\.\d{20,39}")


def planned_dates(session: Any) -> dict[str, set[str]]:
    """New SOP Instance UID → the dates (``YYYYMMDD``) a session's plan shifts into it.

    For :meth:`Corpus.leaks`: those dates are the plan's own output, so one
    equal to a real date of the corpus is a coincidence of the shift, not a leak.
    """
    rows = session.sql(
        "SELECT u.new_value AS sop, left(d.new_value, 8) AS day FROM plan u "
        "JOIN plan d USING (file_id) WHERE u.keyword = 'SOPInstanceUID' "
        "AND u.new_value IS NOT NULL AND d.action = 'S' AND d.new_value IS NOT NULL"
    )
    out: dict[str, set[str]] = {}
    for sop, day in rows.iter_rows():
        out.setdefault(sop, set()).add(day)
    return out


def _file_name(style: int, number: int, sop_uid: str) -> str:
    if style == 0:
        return f"IMG{number:04d}.dcm"
    if style == 1:
        return f"I{number:07d}"  # no extension, as many PACS exports do
    if style == 2:
        return f"{sop_uid}.dcm"
    return f"IM_{number:05d}.DCM"


def make_corpus(
    root: str | Path,
    *,
    patients: int = 3,
    studies_per_patient: int = 2,
    series_per_study: int = 2,
    instances_per_series: int = 3,
    modalities: Sequence[str] = ("CT", "MR", "US", "CR", "SC"),
    compressed: bool = True,
    multiframe: bool = True,
    seed: int = 0,
    nested_dirs: bool = True,
    rows: int = 64,
    columns: int = 64,
    canaries: bool = False,
    limit: int | None = None,
    transform: Callable[[Dataset], None] | None = None,
) -> Corpus:
    """Write a patients ▸ studies ▸ series ▸ instances archive under ``root``.

    Series cycle through ``modalities`` and (when ``compressed``) through
    explicit/implicit VR little endian, RLE, JPEG 2000, JPEG-LS and HTJ2K
    lossless.  A patient's studies fall on distinct dates (unique in the
    corpus); every series after the first of a study references instances of
    the first (``ReferencedImageSequence``, plus ``SourceImageSequence`` for
    SC).  With ``multiframe``, US series are 3-frame cines and the first SC
    instance of a series has 2 frames.  Folder and file names mix styles
    (``IMG0001.dcm``, no extension, SOP Instance UID names).  The same call
    writes byte-identical files.

    Parameters
    ----------
    root : str or Path
        Folder to write into (created if needed).
    patients, studies_per_patient, series_per_study, instances_per_series : int
        Size of the tree.
    modalities : sequence of str
        Cycled over the series; any of ``"CT" "MR" "US" "CR" "DX" "SC"``.
    compressed : bool
        Use encapsulated transfer syntaxes for some series.
    multiframe : bool
        Write multi-frame US and SC instances.
    seed : int
        Every UID, identity, date and pixel derives from it.
    nested_dirs : bool
        One folder per patient / study / series; otherwise all files in ``root``.
    rows, columns : int
        Image size.
    canaries : bool
        Plant a distinct canary token (``CNRY`` + 8 hex) in every identifying
        text element, nested and private ones included.
    limit : int, optional
        Write only the first ``limit`` instances of the tree.
    transform : callable, optional
        Called with each dataset before it is written (to add elements).

    Returns
    -------
    Corpus

    Examples
    --------
    >>> import tempfile
    >>> corpus = make_corpus(tempfile.mkdtemp(), patients=1, series_per_study=1,
    ...                      instances_per_series=2, canaries=True)
    >>> len(corpus.paths), len(corpus.patients[0].studies)
    (4, 2)
    >>> all(c.startswith("CNRY") for c in corpus.canaries)
    True
    """
    for name, value in (
        ("patients", patients), ("studies_per_patient", studies_per_patient),
        ("series_per_study", series_per_study), ("instances_per_series", instances_per_series),
    ):  # fmt: skip
        if value < 1:
            raise ConfigError(name, expected="a positive integer", got=value)
    mods = [m.upper() for m in modalities]
    for m in mods:
        if m not in MODALITIES:
            raise ConfigError("modalities", expected=f"a subset of {MODALITIES}", got=m)
    if not mods:
        raise ConfigError("modalities", expected="at least one modality", got=tuple(modalities))
    root = Path(root)
    rnd = random.Random(f"gantry-corpus:{seed}")
    book = CanaryBook(seed, enabled=canaries)
    dates = DatePool()
    cycle = COMPRESSED_CYCLE if compressed else NATIVE_CYCLE

    # 1. draw every spec, so references are known before anything is written
    specs: list[PatientSpec] = []
    g = 0  # global series index
    for p in range(patients):
        patient = new_patient(rnd, book, dates, p)
        specs.append(patient)
        for s in range(studies_per_patient):
            study = new_study(rnd, book, dates, seed, patient, p, s)
            patient.studies.append(study)
            for se in range(series_per_study):
                modality = mods[g % len(mods)]
                key = f"p{p}.s{s}.se{se}"
                series = new_series(rnd, book, seed, patient, modality, key, se + 1)
                photometric, bits, _, _ = _pixel_format(modality, None, None)
                style = g % 4
                if nested_dirs:
                    folder = root / f"PAT{p + 1:03d}" / f"STUDY{s + 1:02d}"
                    folder = folder / (
                        series.series_instance_uid if style == 2 else f"SE{se + 1:02d}_{modality}"
                    )
                else:
                    folder = root
                for i in range(instances_per_series):
                    frames = 1
                    if multiframe and modality == "US":
                        frames = 3
                    elif multiframe and modality == "SC" and i == 0:
                        frames = 2
                    sop_uid = make_uid(seed, key, f"i{i}", "sop")
                    refs: tuple[tuple[str, str], ...] = ()
                    if se > 0:
                        first = study.series[0].instances
                        target = first[i % len(first)]
                        refs = ((target.sop_class_uid, target.sop_instance_uid),)
                    name = _file_name(style, i + 1, sop_uid)
                    if not nested_dirs:
                        name = f"p{p + 1}s{s + 1}se{se + 1}_{name}"
                    series.instances.append(
                        InstanceSpec(
                            sop_instance_uid=sop_uid,
                            sop_class_uid=sop_class_for(modality, frames, photometric, bits),
                            number=i + 1,
                            transfer_syntax=cycle[g % len(cycle)],
                            frames=frames,
                            path=folder / name,
                            references=refs,
                        )
                    )
                study.series.append(series)
                g += 1

    # 2. build and write
    paths: list[Path] = []
    locations: dict[str, str] = {}
    n = 0
    for patient in specs:
        for study in patient.studies:
            for series in study.series:
                for inst in series.instances:
                    if limit is not None and n >= limit:
                        break
                    ds = build_dataset(
                        patient, study, series, inst, rows=rows, columns=columns,
                        seed=seed * 1_000_003 + n,
                    )  # fmt: skip
                    n += 1
                    if transform is not None:
                        transform(ds)
                    if canaries:
                        for tok, where in find_canaries(ds).items():
                            locations.setdefault(tok, where[0])
                    assert inst.path is not None
                    paths.append(write_dataset(ds, inst.path))
    return Corpus(
        root=root,
        paths=paths,
        patients=specs,
        canaries=set(locations),
        canary_locations=locations,
    )
