"""The plan built a bounded group of instances at a time (bounded memory).

The plan's element frame is about 16 KB per instance while it is built, so a
million instances would need 16 GB at once.  :func:`plan_chunks` cuts the index
into chunks of at most ``chunk_rows`` instances, following the committed ingest
batches (one chunk holds whole batches; a batch larger than ``chunk_rows`` is
cut into ranges of ``file_id``), and :class:`ChunkStore` shows the plan one chunk:
its batch tables (``instances``, ``elements``, ``sr_content``, ...) hold that
chunk's rows only, every other table is the store's own.

What needs every instance is decided before the chunks, from small global
keys (pseudonym numbers, date offsets, the document checks, the redaction zones,
the defacing planes, the UIDs remapped anywhere), so the chunked plan is row
for row the one built in one piece.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import polars as pl

if TYPE_CHECKING:
    from gantry.store import Store

__all__ = ["PLAN_CHUNK_ROWS", "ChunkStore", "PlanChunk", "plan_chunks"]

PLAN_CHUNK_ROWS = 50_000
"""Instances per plan chunk by default: about 1 GB of working memory at 20 elements each."""


@dataclass
class PlanChunk:
    """One chunk: the files of whole batches (per batch table, as :meth:`Store.files_of`
    lists them: paths or URLs), or a ``file_id`` range ``[lo, hi)`` of one batch."""

    files: dict[str, list[Any]]
    file_ids: pl.Series
    lo: int | None = None
    hi: int | None = None
    last: bool = False
    all_ids: pl.Series = field(default_factory=lambda: pl.Series("file_id", [], pl.Int64))

    def in_range(self, col: pl.Expr) -> pl.Expr:
        """Whether a batch row falls in this chunk's ``file_id`` range."""
        cond = pl.lit(True)
        if self.lo is not None:
            cond = cond & (col >= self.lo)
        if self.hi is not None:
            cond = cond & (col < self.hi)
        return cond

    def owns(self, col: pl.Expr) -> pl.Expr:
        """Whether a row of a store-wide table keyed by ``file_id`` belongs here: this
        chunk's instances, and (the last chunk) ids no instance has."""
        mine = col.is_in(self.file_ids.implode())
        if self.last:
            mine = mine | ~col.is_in(self.all_ids.implode())
        return mine


class ChunkStore:
    """A :class:`~gantry.store.Store` whose batch tables hold one chunk's rows.

    Everything but :meth:`scan` of a batch table is the store's own.
    """

    def __init__(self, store: Store, chunk: PlanChunk) -> None:
        self._store = store
        self.chunk = chunk

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    def scan(self, name: str) -> pl.LazyFrame:
        """The chunk's rows of a batch table; any other table whole."""
        from gantry.store import BATCH_TABLES

        schema = self._store.schema_of(name) if name in BATCH_TABLES else None
        if schema is None:
            return self._store.scan(name)
        files = self.chunk.files.get(name, [])
        if not files:
            return self._store.scan(name).filter(pl.lit(False))
        lf = self._store.scan_files(files, schema)
        if "file_id" in schema.names and (self.chunk.lo is not None or self.chunk.hi is not None):
            lf = lf.filter(self.chunk.in_range(pl.col("file_id")))
        return lf


def plan_chunks(store: Store, inst: pl.DataFrame, chunk_rows: int) -> list[PlanChunk]:
    """Chunks of at most about ``chunk_rows`` instances covering every batch.

    One chunk (the whole store) when everything fits, or when a ``file_id`` sits
    in two batches (its rows must be planned together).
    """
    from gantry.store import BATCH_TABLES

    all_ids = inst["file_id"]
    batches: dict[str, dict[str, list[Any]]] = {}
    for table in BATCH_TABLES:
        for f in store.files_of(table):
            batches.setdefault(store.batch_of(f), {})[table] = [f]
    if inst.height <= chunk_rows or all_ids.is_duplicated().any():
        whole: dict[str, list[Any]] = {}
        for tables in batches.values():
            for table, files in tables.items():
                whole.setdefault(table, []).extend(files)
        return [PlanChunk(whole, all_ids, last=True, all_ids=all_ids)]
    chunks: list[PlanChunk] = []
    group: dict[str, list[Any]] = {}
    group_ids: list[pl.Series] = []
    count = 0

    def flush() -> None:
        nonlocal group, group_ids, count
        if group_ids:
            chunks.append(PlanChunk(group, pl.concat(group_ids), all_ids=all_ids))
        group, group_ids, count = {}, [], 0

    for batch in sorted(batches):
        tables = batches[batch]
        ids = (
            store.scan_files(tables["instances"])
            .select(pl.col("file_id").cast(pl.Int64))
            .collect()["file_id"]
            if "instances" in tables
            else pl.Series("file_id", [], pl.Int64)
        )
        if ids.len() > chunk_rows:
            flush()
            ids = ids.sort()
            cuts = ids.gather(list(range(chunk_rows, ids.len(), chunk_rows))).to_list()
            bounds = [None, *cuts, None]
            for lo, hi in zip(bounds[:-1], bounds[1:], strict=True):
                chunk = PlanChunk(tables, ids, lo=lo, hi=hi, all_ids=all_ids)
                chunk.file_ids = ids.to_frame().filter(chunk.in_range(pl.col("file_id")))["file_id"]
                chunks.append(chunk)
            continue
        if count and count + ids.len() > chunk_rows:
            flush()
        for table, files in tables.items():
            group.setdefault(table, []).extend(files)
        group_ids.append(ids)
        count += ids.len()
    flush()
    chunks[-1].last = True
    return chunks
