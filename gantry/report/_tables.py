"""Flat analytic tables of the index: one Parquet file (or hive folder) per level.

``instance`` rows carry every indexed attribute plus the aggregates of their
series, study and patient (from the ``series``, ``studies`` and ``patients``
views, prefixed ``series_``, ``study_``, ``patient_``); the coarser levels are
the views themselves joined with their parents' aggregates.  The SQL runs inside
DuckDB and is written with ``COPY … TO … (FORMAT parquet)``: no row passes
through Python.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final, Literal

import polars as pl
from pydicom.datadict import (
    dictionary_description,
    dictionary_VM,
    dictionary_VR,
    tag_for_keyword,
)

from gantry._version import __version__
from gantry.errors import ConfigError
from gantry.store import Store

__all__ = ["LEVELS", "Level", "level_query", "schema_of_level", "to_parquet", "to_polars"]

Level = Literal["instance", "series", "study", "patient"]
PARTITION_ROWS: Final[int] = 250_000
"""Rows a partitioned ``to_parquet`` writes per ``COPY`` (whole partitions; see ``_copy_partitioned``)."""
LEVELS: Final[tuple[str, ...]] = ("instance", "series", "study", "patient")

# level -> (base relation, its key, [(parent view, key, prefix)])
_PLAN: Final[dict[str, tuple[str, str, list[tuple[str, str, str]]]]] = {
    "instance": (
        "instances",
        "SOPInstanceUID",
        [
            ("series", "SeriesInstanceUID", "series_"),
            ("studies", "StudyInstanceUID", "study_"),
            ("patients", "PatientID", "patient_"),
        ],
    ),
    "series": (
        "series",
        "SeriesInstanceUID",
        [("studies", "StudyInstanceUID", "study_"), ("patients", "PatientID", "patient_")],
    ),
    "study": ("studies", "StudyInstanceUID", [("patients", "PatientID", "patient_")]),
    "patient": ("patients", "PatientID", []),
}

_DESCRIPTIONS: Final[dict[str, str]] = {
    "file_id": "Gantry file key: blake2b-8 of the absolute path (join key of every table)",
    "file_path": "absolute path of the indexed file",
    "file_size": "file size in bytes",
    "file_mtime": "file modification time, seconds since the epoch",
    "transfer_syntax": "Transfer Syntax UID from the file meta",
    "pixel_offset": "byte offset of the PixelData element header",
    "pixel_length": "bytes of the whole PixelData element",
    "parser": "which reader indexed the file",
    "n_instances": "number of instances",
    "n_series": "number of distinct series",
    "n_studies": "number of distinct studies",
    "bytes": "total file size in bytes",
    "modalities": "sorted distinct modalities",
    "first_study_date": "earliest StudyDate",
    "last_study_date": "latest StudyDate",
    "is_homogeneous": "every key attribute has at most one distinct value in the series",
}


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _columns(store: Store, relation: str) -> list[str]:
    rows = store.sql(f"SELECT column_name FROM (DESCRIBE {_quote(relation)})")
    return rows["column_name"].to_list()


def level_query(store: Store, level: str) -> tuple[str, dict[str, str]]:
    """The ``SELECT`` of one level and the source relation of each output column.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> store = Store(pathlib.Path(tempfile.mkdtemp()) / "s.db")
    >>> sql, sources = level_query(store, "study")
    >>> sources["StudyInstanceUID"], sources["patient_n_studies"]
    ('studies', 'patients')
    >>> store.close()
    """
    return _level_query(store, level)


def _level_query(
    store: Store, level: str, relations: Mapping[str, str] | None = None
) -> tuple[str, dict[str, str]]:
    """:func:`level_query`, the parent views read from ``relations[view]`` where given."""
    if level not in _PLAN:
        raise ConfigError("level", expected=f"one of {', '.join(map(repr, LEVELS))}", got=level)
    relations = relations or {}
    base, _key, parents = _PLAN[level]
    base_cols = _columns(store, base)
    sources = {c: base for c in base_cols}
    select = [f"b.{_quote(c)}" for c in base_cols]
    joins = []
    for i, (view, key, prefix) in enumerate(parents):
        alias = f"p{i}"
        for c in _columns(store, view):
            if c in base_cols or c == key:
                continue
            name = prefix + c
            sources[name] = view
            select.append(f"{alias}.{_quote(c)} AS {_quote(name)}")
        left = f"b.{_quote(key)}" if key in base_cols else "NULL"
        joins.append(
            f"LEFT JOIN {_quote(relations.get(view, view))} {alias} "
            f"ON {left} IS NOT DISTINCT FROM {alias}.{_quote(key)}"
        )
    sql = f"SELECT {', '.join(select)} FROM {_quote(base)} b " + " ".join(joins)
    return sql, sources


def _column_doc(name: str, dtype: str, source: str, prefix: str) -> dict[str, Any]:
    bare = name[len(prefix) :] if prefix and name.startswith(prefix) else name
    raw = bare.endswith("__raw")
    keyword = bare.removesuffix("__raw")
    distinct = keyword.startswith("n_distinct_")
    if distinct:
        keyword = keyword.removeprefix("n_distinct_")
    doc: dict[str, Any] = {"name": name, "type": dtype, "source": source}
    tag = tag_for_keyword(keyword)
    if tag is not None:
        doc.update(
            keyword=keyword,
            tag=f"({tag >> 16:04X},{tag & 0xFFFF:04X})",
            vr=dictionary_VR(tag),
            vm=dictionary_VM(tag),
        )
        text = dictionary_description(tag)
        if distinct:
            text = f"number of distinct {keyword} values in the series"
        elif raw:
            text += " (original text where the typed conversion failed)"
        doc["description"] = text
    elif distinct:
        doc["description"] = f"number of distinct {keyword} values in the series"
    else:
        doc["description"] = _DESCRIPTIONS.get(bare, "")
    return doc


def schema_of_level(store: Store, level: str) -> list[dict[str, Any]]:
    """One description per output column of ``level``: name, type, source, DICOM data.

    ``keyword``, ``tag`` (``"(gggg,eeee)"``), ``vr`` and ``vm`` are present when the
    column is a DICOM attribute (pydicom's data dictionary).

    Examples
    --------
    >>> import tempfile, pathlib
    >>> store = Store(pathlib.Path(tempfile.mkdtemp()) / "s.db")
    >>> cols = {c["name"]: c for c in schema_of_level(store, "instance")}
    >>> cols["PatientID"]["tag"], cols["PatientID"]["vr"], cols["series_n_instances"]["source"]
    ('(0010,0020)', 'LO', 'series')
    >>> store.close()
    """
    return _schema(store, *level_query(store, level))


def _schema(store: Store, sql: str, sources: dict[str, str]) -> list[dict[str, Any]]:
    described = store.sql(f"SELECT column_name, column_type FROM (DESCRIBE {sql})")
    prefixes = {view: prefix for _, _, parents in _PLAN.values() for view, _, prefix in parents}
    return [
        _column_doc(name, dtype, sources.get(name, ""), prefixes.get(sources.get(name, ""), ""))
        for name, dtype in described.iter_rows()
    ]


def _partition(store: Store, level: str, partition_by: str | None) -> None:
    if partition_by is None:
        return
    if partition_by not in ("PatientID", "Modality"):
        raise ConfigError(
            "partition_by", expected="None, 'PatientID' or 'Modality'", got=partition_by
        )
    sql, sources = level_query(store, level)
    if partition_by not in sources:
        raise ConfigError(
            "partition_by",
            expected=f"a column of the {level!r} level",
            got=partition_by,
            hint="the study and patient levels have no single Modality",
        )


def _partition_groups(counts: list[tuple[Any, int]], budget: int) -> list[list[Any]]:
    """Pack partition values into groups of at most ``budget`` rows (a bigger value alone).

    Examples
    --------
    >>> _partition_groups([("CT", 5), ("MR", 3), ("US", 2), (None, 1)], budget=4)
    [['CT'], ['MR'], ['US', None]]
    """
    groups: list[list[Any]] = []
    size = budget
    for value, n in counts:
        if size + n > budget:
            groups.append([])
            size = 0
        groups[-1].append(value)
        size += n
    return groups


def _copy_partitioned(store: Store, level: str, column: str, target: str, options: str) -> int:
    """``COPY … PARTITION_BY`` a few partitions at a time; returns the rows written.

    DuckDB holds a partitioned write's rows in memory until the end (about 2 GB per
    million 70-column rows): each ``COPY`` here writes whole partitions of at most
    :data:`PARTITION_ROWS` rows together (a bigger partition alone), into the same
    folder, so the peak follows the largest group, not the table.  Each partition is
    written by one ``COPY``: the layout (``Modality=CT/data_0.parquet``) is unchanged.
    The parent aggregates are computed once, into temporary tables.
    """
    base, _key, parents = _PLAN[level]
    counts = store.sql(
        f"SELECT {_quote(column)}, count(*) FROM {_quote(base)} GROUP BY 1 ORDER BY 2 DESC"
    ).rows()
    Path(target).mkdir(parents=True, exist_ok=True)  # no rows: an empty folder
    groups = _partition_groups(counts, PARTITION_ROWS)
    temp = {view: f"_gantry_{view}_{uuid.uuid4().hex}" for view, _, _ in parents}
    rows = 0
    try:
        if len(groups) > 1:
            for view, name in temp.items():
                store.sql(f"CREATE TEMP TABLE {_quote(name)} AS FROM {_quote(view)}")
        sql, _ = _level_query(store, level, temp if len(groups) > 1 else None)
        for values in groups:
            known = [v for v in values if v is not None]
            where = f"list_contains($values, {_quote(column)})"
            if len(known) < len(values):
                where += f" OR {_quote(column)} IS NULL"
            counted = store.sql(
                f"COPY (SELECT * FROM ({sql}) WHERE {where}) TO '{target}' "
                f"({options}, OVERWRITE_OR_IGNORE true)",
                {"values": known},
            )
            rows += int(counted.item()) if counted.height else 0
    finally:
        for name in temp.values():
            store.sql(f"DROP TABLE IF EXISTS {_quote(name)}")
    return rows


def to_polars(store: Store, level: str = "instance") -> pl.DataFrame:
    """The flattened table of ``level`` as a Polars DataFrame (see :func:`to_parquet`)."""
    sql, _ = level_query(store, level)
    return store.sql(sql)


def to_parquet(
    store: Store,
    path: str | os.PathLike[str],
    *,
    level: str = "instance",
    partition_by: str | None = None,
    storage_options: Mapping[str, Any] | None = None,
) -> Path | str:
    """Write the flattened table of ``level`` to ``path`` and describe it in ``<path>.schema.json``.

    Parameters
    ----------
    store : Store
        The session store.
    path : path
        A Parquet file, or a folder when ``partition_by`` is given (hive layout,
        ``Modality=CT/data_0.parquet``).  Written under a temporary name, then
        renamed: a reader never sees half a file.
    level : {"instance", "series", "study", "patient"}
        One row per instance (with its series, study and patient aggregates), per
        series, per study or per patient.
    partition_by : {None, "PatientID", "Modality"}
        Hive-partition the output by this column.
    storage_options : mapping, optional
        When ``path`` is a URL (``s3://bucket/cohort.parquet``, ``gs://``, ``az://``):
        handed to fsspec (credentials otherwise come from the SDK environment).
        The table is written locally, then each file is published whole, the
        ``.schema.json`` last (docs/storage.md).

    Returns
    -------
    Path or str
        ``path`` (absolute), or the URL as given.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> import polars as pl
    >>> tmp = pathlib.Path(tempfile.mkdtemp())
    >>> store = Store(tmp / "s.db")
    >>> out = to_parquet(store, tmp / "cohort.parquet", level="patient")
    >>> pl.read_parquet(out).columns[:3], out.with_name("cohort.parquet.schema.json").exists()
    (['PatientID', 'PatientName', 'n_studies'], True)
    >>> store.close()
    """
    _partition(store, level, partition_by)
    from gantry.storage._fs import is_url
    from gantry.storage._outputs import publish_output, split_url

    if is_url(path):
        url = os.fspath(path)
        publish_output(
            url,
            lambda local: to_parquet(store, local, level=level, partition_by=partition_by),
            storage_options,
            last=[split_url(url)[1] + ".schema.json"],
            manifest=partition_by is not None,  # the folder is committed by its manifest
        )
        return url
    sql, sources = level_query(store, level)
    dest = Path(path).expanduser().absolute()
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.{uuid.uuid4().hex}.tmp")
    options = "FORMAT parquet, COMPRESSION zstd"
    if partition_by is not None:
        # the column stays in the files too: readers then keep its type ("0012" stays text)
        options += f", PARTITION_BY ({_quote(partition_by)}), WRITE_PARTITION_COLUMNS true"
    target = str(tmp).replace("'", "''")
    try:
        if partition_by is None:
            counted = store.sql(f"COPY ({sql}) TO '{target}' ({options})")
            rows = int(counted.item()) if counted.height else 0
        else:
            rows = _copy_partitioned(store, level, partition_by, target, options)
        if dest.is_dir() and partition_by is not None:
            old = dest.with_name(f".{dest.name}.old-{uuid.uuid4().hex}")
            os.replace(dest, old)
            os.replace(tmp, dest)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, dest)
    finally:
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        elif tmp.exists():
            tmp.unlink()
    doc = {
        "level": level,
        "rows": rows,
        "partition_by": partition_by,
        "format": "parquet (hive-partitioned folder)" if partition_by else "parquet",
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "gantry_version": __version__,
        "columns": _schema(store, sql, sources),
    }
    schema_path = dest.with_name(dest.name + ".schema.json")
    tmp_schema = schema_path.with_name(f".{schema_path.name}.tmp")
    tmp_schema.write_text(json.dumps(doc, indent=1))
    os.replace(tmp_schema, schema_path)
    return dest
