"""Fast generation of many realistic CT files for benchmarks: :func:`make_ct_files`.

One header is encoded per series with pydicom; each instance is that header
with its SOP Instance UID, instance number and slice position patched in place
(fixed-width values, so no length changes), followed by one of a few
precomputed pixel blocks.  Thousands of 512×512 files take seconds.
"""

from __future__ import annotations

import hashlib
import io
import random
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from pydicom import dcmwrite
from pydicom.uid import ExplicitVRLittleEndian

from gantry.errors import ConfigError
from gantry.testing._builders import CT_IMAGE, build_dataset
from gantry.testing._canaries import CanaryBook
from gantry.testing._pixels import make_pixels
from gantry.testing._specs import (
    DatePool,
    InstanceSpec,
    PatientSpec,
    SeriesSpec,
    StudySpec,
    new_patient,
    new_series,
    new_study,
)

INSTANCES_PER_SERIES = 25
SERIES_PER_STUDY = 2
STUDIES_PER_PATIENT = 2
PIXEL_VARIANTS = 8

_UID_DIGITS = 38
_UID_SLOT = "2.25.1" + "0" * (_UID_DIGITS - 1)  # same length as every fixed_uid
_NUMBER_SLOT = "000000"
_Z_SLOT = "+0000.000"
_XY = "-175.000"


def fixed_uid(seed: int, *key: object) -> str:
    """Return a deterministic ``2.25.`` UID of exactly 43 characters.

    Examples
    --------
    >>> len(fixed_uid(0, "a")), len(fixed_uid(1, "b"))
    (43, 43)
    """
    text = ":".join(str(k) for k in (seed, *key))
    value = int.from_bytes(hashlib.blake2b(text.encode(), digest_size=16).digest(), "big")
    low = 10 ** (_UID_DIGITS - 1)
    return f"2.25.{low + value % (9 * low)}"


@dataclass(slots=True)
class _SeriesTask:
    patient: PatientSpec
    study: StudySpec
    series: SeriesSpec
    first: int  # global index of the first file
    count: int
    folder: Path
    rows: int
    columns: int
    seed: int
    reference: tuple[tuple[str, str], ...]


@lru_cache(maxsize=4)
def _pixel_blocks(rows: int, columns: int, seed: int) -> tuple[bytes, ...]:
    return tuple(
        make_pixels(
            rows=rows, columns=columns, frames=1, samples=1, bits_allocated=16,
            bits_stored=16, signed=True, seed=seed * 31 + v,
        ).tobytes()
        for v in range(PIXEL_VARIANTS)
    )  # fmt: skip


def _slot(raw: bytes, prefix: bytes, value: bytes, skip: int = 0) -> int:
    """Return the offset of ``value`` right after the element header ``prefix``."""
    at = raw.find(prefix + value[:skip] if skip else prefix)
    if at < 0:
        raise RuntimeError(f"template slot {prefix!r} not found")
    return at + len(prefix) + skip


def _template(task: _SeriesTask) -> tuple[bytearray, dict[str, list[int]]]:
    placeholder = InstanceSpec(
        sop_instance_uid=_UID_SLOT,
        sop_class_uid=CT_IMAGE,
        number=1,
        transfer_syntax=ExplicitVRLittleEndian,
        references=task.reference,
    )
    size = task.rows * task.columns * 2
    ds = build_dataset(
        task.patient, task.study, task.series, placeholder, rows=task.rows,
        columns=task.columns, pixel_bytes=b"\0" * size,
    )  # fmt: skip
    ds.InstanceNumber = _NUMBER_SLOT
    ds.ImagePositionPatient = [_XY, _XY, _Z_SLOT]
    ds.SliceLocation = _Z_SLOT
    buf = io.BytesIO()
    dcmwrite(buf, ds, enforce_file_format=True)
    raw = buf.getvalue()[:-size]
    uid = _UID_SLOT.encode()
    ipp = f"{_XY}\\{_XY}\\".encode()
    slots = {
        "uid": [
            _slot(raw, b"\x02\x00\x03\x00UI\x2c\x00", uid),
            _slot(raw, b"\x08\x00\x18\x00UI\x2c\x00", uid),
        ],
        "number": [_slot(raw, b"\x20\x00\x13\x00IS\x06\x00", b"")],
        "z": [
            _slot(raw, b"\x20\x00\x32\x00DS\x1c\x00", ipp, skip=len(ipp)),
            _slot(raw, b"\x20\x00\x41\x10DS\x0a\x00", b""),
        ],
    }
    return bytearray(raw), slots


def _write_series(task: _SeriesTask) -> list[Path]:
    header, slots = _template(task)
    blocks = _pixel_blocks(task.rows, task.columns, task.seed)
    thickness = 5.0
    task.folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for j in range(task.count):
        k = task.first + j
        uid = fixed_uid(task.seed, "ct-sop", k).encode()
        for at in slots["uid"]:
            header[at : at + len(uid)] = uid
        number = f"{j + 1:06d}".encode()
        header[slots["number"][0] : slots["number"][0] + 6] = number
        z = f"{-100.0 + thickness * j:+09.3f}".encode()
        for at in slots["z"]:
            header[at : at + 9] = z
        path = task.folder / f"CT{k:06d}.dcm"
        with open(path, "wb") as fh:
            fh.write(header)
            fh.write(blocks[k % PIXEL_VARIANTS])
        paths.append(path)
    return paths


def make_ct_files(
    root: str | Path,
    n: int,
    *,
    rows: int = 512,
    columns: int = 512,
    seed: int = 0,
    workers: int = 1,
) -> list[Path]:
    """Write ``n`` realistic CT files quickly, for benchmarks.

    Each file has about 100 top-level elements (identifying ones included),
    nested sequences, a private block and signed 16-bit pixels, in explicit VR
    little endian.  Files are spread as 25 instances per series, 2 series per
    study, 2 studies per patient (5,000 files → 50 patients), in
    ``root/P0001/ST1/SE1/CT000000.dcm`` folders.  The second series of a
    study references the first instance of the first.  Pixels cycle through
    8 precomputed patterns.  Deterministic given ``seed``.

    Parameters
    ----------
    root : str or Path
        Folder to write into.
    n : int
        Number of files.
    rows, columns : int
        Image size.
    seed : int
        Every UID, identity and pixel derives from it.
    workers : int
        Processes to write with (series are the unit of work).

    Returns
    -------
    list of Path
        In the order the files were generated.

    Examples
    --------
    >>> import tempfile, pydicom
    >>> paths = make_ct_files(tempfile.mkdtemp(), 3, rows=32, columns=32)
    >>> ds = pydicom.dcmread(paths[2])
    >>> int(ds.InstanceNumber), ds.pixel_array.shape, float(ds.ImagePositionPatient[2])
    (3, (32, 32), -90.0)
    """
    if n < 0:
        raise ConfigError("n", expected="a non-negative integer", got=n)
    if workers < 1:
        raise ConfigError("workers", expected="a positive integer", got=workers)
    root = Path(root)
    rnd = random.Random(f"gantry-ct:{seed}")
    book = CanaryBook(seed, enabled=False)
    dates = DatePool()
    tasks: list[_SeriesTask] = []
    k = 0
    p = 0
    while k < n:
        patient = new_patient(rnd, book, dates, p)
        for s in range(STUDIES_PER_PATIENT):
            if k >= n:
                break
            study = new_study(rnd, book, dates, seed, patient, p, s)
            patient.studies.append(study)
            reference: tuple[tuple[str, str], ...] = ()
            for se in range(SERIES_PER_STUDY):
                if k >= n:
                    break
                series = new_series(rnd, book, seed, patient, "CT", f"ct.p{p}.s{s}.se{se}", se + 1)
                study.series.append(series)
                count = min(INSTANCES_PER_SERIES, n - k)
                folder = root / f"P{p + 1:04d}" / f"ST{s + 1}" / f"SE{se + 1}"
                tasks.append(
                    _SeriesTask(patient, study, series, k, count, folder, rows, columns, seed,
                                reference)
                )  # fmt: skip
                if se == 0:
                    reference = ((CT_IMAGE, fixed_uid(seed, "ct-sop", k)),)
                k += count
        p += 1
    if workers == 1 or len(tasks) < 2:
        return [path for task in tasks for path in _write_series(task)]
    with ProcessPoolExecutor(max_workers=workers) as pool:
        chunks = pool.map(_write_series, tasks, chunksize=max(1, len(tasks) // (workers * 4)))
        return [path for chunk in chunks for path in chunk]
