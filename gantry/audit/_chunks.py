"""The element rules one bounded chunk of ``elements`` rows at a time.

A whole-table query over a million-instance index (60 million element rows)
holds its joins and its findings at once and slows down as it grows.  Here the
``elements`` table is cut into chunks of about :data:`AUDIT_CHUNK_ROWS` rows,
following each ingest batch's Parquet row groups; a chunk is read once into
memory, joined with its own instances only (from the same batch), and the
element rules run over it (:func:`chunk_queries`).  Memory is bounded by the
chunk and the batch, time grows with the number of rows; the findings are the
ones the whole-table queries give (each element row is judged on its own and
its instance's identity).

A store where a ``file_id`` sits in two batches, or whose ``elements`` are not
Parquet files, is audited in one piece (:func:`element_chunks` returns None).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import polars as pl
import pyarrow.parquet as pq

from gantry.audit._plugins import plugin_findings
from gantry.audit._rules import AuditContext, element_findings

if TYPE_CHECKING:
    from gantry.plugins import AuditRulePlugin
    from gantry.store import Store

__all__ = ["AUDIT_CHUNK_ROWS", "ElementChunk", "chunk_queries", "element_chunks"]

AUDIT_CHUNK_ROWS: Final = 500_000
"""Element rows per chunk by default (about 35 MB read, two chunks in flight: ~0.7 GB peak)."""

#: The instance columns the element rules read (identity tokens, modality, device).
_INSTANCE_COLUMNS: Final = (
    "file_id",
    "Modality",
    "Manufacturer",
    "ManufacturerModelName",
    "PatientID",
    "PatientName",
    "OtherPatientIDs",
    "AccessionNumber",
    "PatientBirthDate",
)


@dataclass(frozen=True)
class ElementChunk:
    """Rows ``[offset, offset + length)`` of one batch's ``elements`` file."""

    elements: Any
    """The ``elements`` file (a path, or a URL for a store in a bucket)."""
    instances: Any
    """The ``instances`` file of the same batch (None if the batch has none)."""
    offset: int
    length: int


def _slices(store: Store, file: Any, chunk_rows: int) -> list[tuple[int, int]]:
    """``(offset, length)`` slices of at most ``chunk_rows`` rows.

    Local files are cut between row groups where they can (a row group is
    decoded once); a larger row group, or a file in a bucket, in equal slices.
    """
    if isinstance(file, Path):
        meta = pq.read_metadata(file)
        groups = [meta.row_group(i).num_rows for i in range(meta.num_row_groups)]
    else:  # a URL: no footer read here
        groups = [store.num_rows(file)]
    sizes = [min(chunk_rows, g - o) for g in groups for o in range(0, g, chunk_rows)]
    out: list[tuple[int, int]] = []
    start = length = 0
    for size in sizes:
        if length and length + size > chunk_rows:
            out.append((start, length))
            start, length = start + length, 0
        length += size
    if length:
        out.append((start, length))
    return out


def element_chunks(store: Store, chunk_rows: int = AUDIT_CHUNK_ROWS) -> list[ElementChunk] | None:
    """The chunks covering every ``elements`` row, or None to audit in one piece.

    None when ``elements`` is not backed by Parquet files, or when a ``file_id``
    sits in two batches (its rows must be judged together).
    """
    files = store.files_of("elements")
    if not files:
        return None
    instances = {store.batch_of(f): f for f in store.files_of("instances")}
    if instances:
        ids = (
            store.scan_files(list(instances.values()), store.schema_of("instances"))
            .select(pl.col("file_id").is_duplicated().any())
            .collect()
            .item()
        )
        if ids:
            return None
    return [
        ElementChunk(f, instances.get(store.batch_of(f)), offset, length)
        for f in files
        for offset, length in _slices(store, f, chunk_rows)
    ]


class _BatchInstances:
    """The identity columns of one batch's instances, read once per batch."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.file: Any = None
        self.frame = pl.DataFrame()

    def of(self, file: Any) -> pl.DataFrame:
        if file is None:
            return pl.DataFrame(schema={"file_id": pl.Int64})
        if file != self.file:
            lf = self.store.scan_files([file], self.store.schema_of("instances"))
            names = lf.collect_schema().names()
            self.frame = lf.select([c for c in _INSTANCE_COLUMNS if c in names]).collect()
            self.file = file
        return self.frame


def chunk_queries(
    store: Store,
    chunks: Sequence[ElementChunk],
    context: AuditContext,
    rules: Sequence[AuditRulePlugin],
    *,
    kept_only: bool = False,
) -> Iterator[list[pl.LazyFrame]]:
    """Per chunk: the element-rule queries (built-in, then plugins) over its rows in memory.

    Each list's queries read one chunk's element rows (read once) and its
    instances' identity columns; collect them before asking for the next chunk.
    """
    schema = store.schema_of("elements")
    batch = _BatchInstances(store)
    for chunk in chunks:
        rows = store.scan_files([chunk.elements], schema).slice(chunk.offset, chunk.length)
        elements = rows.collect()
        ids = elements.get_column("file_id").unique().implode()
        inst = batch.of(chunk.instances).filter(pl.col("file_id").is_in(ids)).lazy()
        lf = elements.lazy()
        yield [
            *element_findings(lf, inst, context, kept_only=kept_only),
            *plugin_findings(lf, inst, context, rules, kept_only=kept_only),
        ]
