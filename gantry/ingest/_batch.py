"""Read a batch of files into the three ingest tables.

:func:`read_batch` is the per-file end of ingest: it reads each file's header
once (fast walker first, pydicom when the walker declines) and returns
``instances``, ``elements`` and ``skipped`` as Arrow tables with the columns
fixed in ``docs/internals.md``.  It never raises for a bad file.

The typed ``instances`` columns are built per column over the whole batch:
each top-level element's text is collected per keyword, then converted with
one vectorised Polars pass (float / int casts, ``%Y%m%d`` dates, ``\\``
splits for multi-valued keywords).  A value that does not convert is null in
the typed column and kept verbatim in ``<Keyword>__raw``, a column that
exists only when some row needed it.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from typing import Final

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
from pydicom.datadict import tag_for_keyword

from gantry.ingest._ids import file_id
from gantry.ingest._limits import OVER_LIMIT, IngestLimits
from gantry.ingest._readahead import read_ahead
from gantry.ingest._reference import read_reference
from gantry.ingest._values import NeedsPydicom, SkipFile, column_type
from gantry.ingest._walker import HeaderInfo, Rows, read_fast, tag_keyword

__all__ = [
    "ELEMENTS_SCHEMA",
    "INSTANCES_SCHEMA",
    "SKIPPED_SCHEMA",
    "BatchResult",
    "internal_detail",
    "read_batch",
]

#: The fixed leading columns of ``instances``; typed keyword columns follow.
INSTANCES_SCHEMA: Final = pa.schema(
    [
        ("file_id", pa.int64()),
        ("file_path", pa.string()),
        ("file_size", pa.int64()),
        ("file_mtime", pa.float64()),
        ("transfer_syntax", pa.string()),
        ("pixel_offset", pa.int64()),
        ("pixel_length", pa.int64()),
        ("parser", pa.string()),
    ]
)
ELEMENTS_SCHEMA: Final = pa.schema(
    [
        ("file_id", pa.int64()),
        ("path", pa.string()),
        ("tag", pa.string()),
        ("depth", pa.int16()),
        ("keyword", pa.string()),
        ("vr", pa.string()),
        ("private_creator", pa.string()),
        ("value", pa.string()),
        ("length", pa.int64()),
        ("value_hash", pa.string()),
    ]
)
SKIPPED_SCHEMA: Final = pa.schema(
    [
        ("file_path", pa.string()),
        ("file_size", pa.int64()),
        ("file_mtime", pa.float64()),
        ("reason", pa.string()),
        ("detail", pa.string()),
    ]
)


@dataclass(frozen=True)
class BatchResult:
    """The three tables of one ingest batch.

    Attributes
    ----------
    instances : pyarrow.Table
        One row per indexed instance (:data:`INSTANCES_SCHEMA` then typed
        keyword columns in tag order).
    elements : pyarrow.Table
        One row per element at any depth (:data:`ELEMENTS_SCHEMA`).
    skipped : pyarrow.Table
        One row per file not indexed (:data:`SKIPPED_SCHEMA`).
    """

    instances: pa.Table
    elements: pa.Table
    skipped: pa.Table


def read_batch(
    paths: Sequence[str | os.PathLike[str]],
    *,
    fast: bool = True,
    limits: IngestLimits | None = None,
) -> BatchResult:
    """Read the headers of `paths` into ``instances``, ``elements`` and ``skipped``.

    Each file is read once, headers only: pixel data is sought over, never
    read (deflated files excepted, which must be inflated whole).  A file
    that cannot be indexed becomes a ``skipped`` row with a reason -
    ``empty``, ``not_dicom``, ``truncated``, ``dicomdir``, ``unreadable``,
    ``io_error`` or ``over_limit`` - and a short detail that never holds a
    patient's value (nor the file's path, which has its own column).

    Parameters
    ----------
    paths : sequence of str or os.PathLike
        Files to read; relative paths are made absolute, and a path given
        twice is read once.
    fast : bool, default True
        Try the struct-based walker first and fall back to pydicom per file
        when it declines (``parser`` records which one read the file).
        ``False`` reads every file with pydicom.
    limits : IngestLimits, optional
        Nesting depth, element length, inflated size and frame count a file
        may reach (:class:`gantry.ingest.IngestLimits`; defaults when omitted).

    Returns
    -------
    BatchResult

    Notes
    -----
    Where ``docs/internals.md`` leaves room, the tables read as follows.

    - ``pixel_offset`` / ``pixel_length`` describe top-level (7FE0,0010); in a
      deflated file the offset is null and the length is the element's length
      in the inflated stream.
    - ``elements.length`` of undefined-length pixel data is pydicom's value
      length (item headers and fragments, without the sequence delimiter).
      Pixel Data, Float Pixel Data and Double Float Pixel Data are never
      hashed; every other bulk value is, an empty one as ``b""``.
    - An empty non-bulk value has the text ``""``.  In ``instances`` it is
      ``""`` in a string column, ``[]`` in a list column and null otherwise.
    - ``private_creator`` is the value of (gggg,00xx) for elements
      (gggg,xx00)-(gggg,xxFF) with xx >= 0x10, null for the creator elements.
    - ``keyword`` is null for repeating-group tags (60xx, 50xx), as
      pydicom's ``DataElement.keyword`` is; they are not ``instances`` columns.

    Examples
    --------
    >>> from pathlib import Path
    >>> import pydicom
    >>> from gantry.ingest._batch import read_batch
    >>> samples = Path(pydicom.__file__).parent / "data" / "test_files"
    >>> batch = read_batch([samples / "CT_small.dcm", samples / "README.txt"])
    >>> batch.instances.select(["parser", "Modality", "Rows", "PixelSpacing"]).to_pylist()
    [{'parser': 'fast', 'Modality': 'CT', 'Rows': 128, 'PixelSpacing': [0.661468, 0.661468]}]
    >>> batch.skipped.column("reason").to_pylist()
    ['not_dicom']
    >>> batch.elements.num_rows
    270
    """
    limits = limits or IngestLimits()
    rows = Rows()
    counts: list[int] = []  # element rows per indexed file
    files: list[tuple[int, str, int, float, HeaderInfo, str]] = []
    skipped: list[tuple[str, int | None, float | None, str, str]] = []
    seen: set[str] = set()
    for item in read_ahead(paths):
        path = os.path.abspath(os.fspath(item))
        if path in seen:  # the same file twice: one row, one file_id
            continue
        seen.add(path)
        try:
            st = os.stat(path)
        except OSError as exc:
            skipped.append((path, None, None, "io_error", _os_detail(exc)))
            continue
        size, mtime = st.st_size, st.st_mtime
        if not stat.S_ISREG(st.st_mode):  # a folder, a FIFO (which would block), a device
            skipped.append((path, size, mtime, "io_error", "not a regular file"))
            continue
        if size == 0:
            skipped.append((path, size, mtime, "empty", "zero-byte file"))
            continue
        fid = file_id(path)
        mark = len(rows)
        try:
            info, parser = _read_one(path, size, rows, fast, limits)
            _check_frames(info, limits)
        except SkipFile as skip:
            rows.truncate(mark)
            skipped.append((path, size, mtime, skip.reason, skip.detail))
            continue
        except OSError as exc:
            rows.truncate(mark)
            skipped.append((path, size, mtime, "io_error", _os_detail(exc)))
            continue
        except MemoryError:
            rows.truncate(mark)
            skipped.append((path, size, mtime, OVER_LIMIT, "ran out of memory reading the header"))
            continue
        except Exception as exc:  # a reader bug must not sink the batch
            rows.truncate(mark)
            skipped.append((path, size, mtime, "unreadable", internal_detail(exc)))
            continue
        files.append((fid, path, size, mtime, info, parser))
        counts.append(len(rows) - mark)
    return BatchResult(
        _instances(files), _elements(rows, [f[0] for f in files], counts), _skipped(skipped)
    )


def _read_one(
    path: str, size: int, rows: Rows, fast: bool, limits: IngestLimits
) -> tuple[HeaderInfo, str]:
    if fast:
        mark = len(rows)
        try:
            return read_fast(path, size, rows, limits), "fast"
        except NeedsPydicom:
            rows.truncate(mark)
    return read_reference(path, size, rows, limits), "pydicom"


def _check_frames(info: HeaderInfo, limits: IngestLimits) -> None:
    text = info.columns.get("NumberOfFrames", "").strip()
    try:
        frames = int(text) if text else 1
    except ValueError:
        return  # an invalid IS stays as it is (instances keeps it in NumberOfFrames__raw)
    if frames > limits.max_frames:
        raise SkipFile(OVER_LIMIT, limits.detail("max_frames", frames))


def internal_detail(exc: BaseException) -> str:
    """The PHI-free ``skipped.detail`` of an unexpected error: its kind, never its text."""
    return (
        f"the header could not be read ({type(exc).__name__} inside the reader); "
        "the file is probably malformed"
    )


def _os_detail(exc: OSError) -> str:
    return exc.strerror or type(exc).__name__


# ---------------------------------------------------------------------------
# tables


def _elements(rows: Rows, fids: list[int], counts: list[int]) -> pa.Table:
    """Build ``elements``: stored columns as they are, the others computed per column."""
    if not len(rows):
        return ELEMENTS_SCHEMA.empty_table()
    path = pa.array(rows.path, type=pa.string())
    tag = pc.utf8_slice_codeunits(path, -8)
    # keyword is a function of the tag: look it up once per distinct tag
    distinct = tag.dictionary_encode()
    keywords = pa.array([tag_keyword(t) for t in distinct.dictionary.to_pylist()], type=pa.string())
    columns = {
        "file_id": pa.array(np.repeat(np.asarray(fids, dtype=np.int64), counts)),
        "path": path,
        "tag": tag,
        "depth": pc.count_substring(path, "[").cast(pa.int16()),
        "keyword": keywords.take(distinct.indices),
        "vr": pa.array(rows.vr, type=pa.string()),
        "private_creator": pa.array(rows.private_creator, type=pa.string()),
        "value": pa.array(rows.value, type=pa.string()),
        "length": pa.array(rows.length, type=pa.int64()),
        "value_hash": pa.array(rows.value_hash, type=pa.string()),
    }
    return pa.Table.from_arrays(list(columns.values()), schema=ELEMENTS_SCHEMA)


def _skipped(skipped: list[tuple[str, int | None, float | None, str, str]]) -> pa.Table:
    if not skipped:
        return SKIPPED_SCHEMA.empty_table()
    columns = list(zip(*skipped, strict=True))
    arrays = [
        pa.array(column, type=field.type)
        for column, field in zip(columns, SKIPPED_SCHEMA, strict=True)
    ]
    return pa.Table.from_arrays(arrays, schema=SKIPPED_SCHEMA)


@cache
def _tag_order(keyword: str) -> int:
    return tag_for_keyword(keyword) or 0


def _instances(files: list[tuple[int, str, int, float, HeaderInfo, str]]) -> pa.Table:
    fixed = [
        [f[0] for f in files],
        [f[1] for f in files],
        [f[2] for f in files],
        [f[3] for f in files],
        [f[4].transfer_syntax for f in files],
        [f[4].pixel_offset for f in files],
        [f[4].pixel_length for f in files],
        [f[5] for f in files],
    ]
    names = list(INSTANCES_SCHEMA.names)
    arrays: list[pa.Array | pa.ChunkedArray] = [
        pa.array(column, type=field.type)
        for column, field in zip(fixed, INSTANCES_SCHEMA, strict=True)
    ]
    typed = _typed_columns(files)
    for name in typed.column_names:
        names.append(name)
        arrays.append(typed.column(name))
    return pa.Table.from_arrays(arrays, names=names)


_BLANK_SPLIT = pl.lit([], dtype=pl.List(pl.String))


def _as_item(expr: pl.Expr, item: pa.DataType) -> pl.Expr:
    """Convert stripped text to the column's item type; null where it does not convert."""
    if pa.types.is_floating(item):
        return expr.cast(pl.Float64, strict=False)
    if pa.types.is_integer(item):
        return expr.cast(pl.Int64, strict=False)
    # DA: exactly YYYYMMDD (polars alone would accept shorter digit runs)
    return pl.when(expr.str.contains(r"^\d{8}$")).then(
        expr.str.strptime(pl.Date, "%Y%m%d", strict=False)
    )


def _typed_columns(files: list[tuple[int, str, int, float, HeaderInfo, str]]) -> pa.Table:
    """The keyword columns of ``instances`` (and any ``__raw``), in tag order.

    The per-file texts are scattered into one list per keyword; string
    columns go to Arrow as they are, the others are converted by one Polars
    ``select`` over the whole batch.
    """
    count = len(files)
    texts: dict[str, list[str | None]] = {}
    for index, f in enumerate(files):
        for keyword, text in f[4].columns.items():
            column = texts.get(keyword)
            if column is None:
                column = texts[keyword] = [None] * count
            column[index] = text
    out: dict[str, pa.Array] = {}
    exprs: list[pl.Expr] = []
    targets: dict[str, pa.DataType] = {}
    for keyword, values in texts.items():
        target = column_type(keyword)
        assert target is not None
        is_list = pa.types.is_list(target)
        item = target.value_type if is_list else target
        if not is_list and pa.types.is_string(item):
            out[keyword] = pa.array(values, type=pa.string())
            continue
        targets[keyword] = target
        source = pl.col(keyword)
        if is_list:
            parts = pl.when(source == "").then(_BLANK_SPLIT).otherwise(source.str.split("\\"))
            if pa.types.is_string(item):
                exprs.append(parts.alias(keyword))
                continue
            stripped = pl.element().str.strip_chars()
            value = parts.list.eval(_as_item(stripped, item))
            failed = parts.list.eval(
                (stripped != "") & _as_item(stripped, item).is_null()
            ).list.any()
        else:
            value = _as_item(source.str.strip_chars(), item)
            failed = (source.str.strip_chars() != "") & value.is_null()
        exprs.append(value.alias(keyword))
        exprs.append(pl.when(failed).then(source).alias(f"{keyword}__raw"))
    if exprs:
        frame = pl.DataFrame(
            {keyword: texts[keyword] for keyword in targets},
            schema={keyword: pl.String for keyword in targets},
        ).select(exprs)
        for name, series in zip(frame.columns, frame.get_columns(), strict=True):
            if name.endswith("__raw") and series.null_count() == count:
                continue  # a __raw column exists only when some row needed it
            out[name] = series.to_arrow().cast(targets.get(name, pa.string()))
    names = []
    for keyword in sorted(texts, key=_tag_order):
        names.append(keyword)
        if f"{keyword}__raw" in out:
            names.append(f"{keyword}__raw")
    return pa.Table.from_arrays([out[name] for name in names], names=names)
