"""A snapshot of the ``instances`` table arranged as a tree, with columns loaded on demand.

Building the tree reads four key columns (plus the ones that order studies,
series and instances) from the Parquet shards in one scan, sorts them once and
records where each patient, study and series starts. A node is then just a
level and a group number: children, parents and counts are array lookups, and
no node object exists until someone asks for it. Any other column is loaded for
the whole index the first time one instance asks for it, then served from memory.
"""

from __future__ import annotations

import bisect
import threading
from pathlib import Path
from typing import Any, Literal

import numpy as np
import polars as pl

from gantry.store import Store

__all__ = ["KEY_COLUMNS", "LEVELS", "IndexView", "Level"]

Level = Literal["patient", "study", "series", "instance"]
LEVELS: tuple[Level, ...] = ("patient", "study", "series", "instance")
KEY_COLUMNS: dict[Level, str] = {
    "patient": "PatientID",
    "study": "StudyInstanceUID",
    "series": "SeriesInstanceUID",
    "instance": "SOPInstanceUID",
}


class IndexView:
    """The tree over one set of ``instances`` shards (a new ingest makes a new view).

    Attributes
    ----------
    files : list of Path
        The shards this view was built from, in scan order.
    n : int
        Number of instances.
    file_ids : numpy.ndarray
        ``file_id`` of each row, in tree order.
    starts : dict
        For ``patient``, ``study`` and ``series``: the first row of each group, then ``n``.
    """

    def __init__(self, store: Store) -> None:
        self.store = store
        self.files: list[Any] = store.files_of("instances")
        schema = store.schema_of("instances")
        self._schema = schema
        self.types: dict[str, pl.DataType] = (
            dict(pl.DataFrame(schema.empty_table()).schema) if schema is not None else {}
        )
        self._lock = threading.Lock()
        self._series_cache: dict[str, pl.Series] = {}
        self._list_cache: dict[str, list[Any]] = {}
        self._group_maps: dict[Level, dict[Any, int]] = {}
        self._sop_order: tuple[list[str], np.ndarray] | None = None
        self._batch_ends: np.ndarray | None = None
        self.keys, self.starts = self._load_keys()
        self.n = self.keys.height
        self.perm: np.ndarray = self.keys["_scan_row"].to_numpy()
        self.file_ids: np.ndarray = self.keys["file_id"].to_numpy()

    # -- building --------------------------------------------------------------------------

    def scan(self) -> pl.LazyFrame:
        """A LazyFrame over this view's shards (scan order)."""
        if not self.files:
            return pl.DataFrame(schema=self.types or {"file_id": pl.Int64}).lazy()
        return self.store.scan_files(self.files, self._schema)

    def _col(self, name: str, dtype: Any = pl.String) -> pl.Expr:
        if name in self.types:
            return pl.col(name)
        return pl.lit(None, dtype=dtype).alias(name)

    def _load_keys(self) -> tuple[pl.DataFrame, dict[Level, np.ndarray]]:
        """The key columns in tree order, and where each patient, study and series starts.

        One group-by over the series (hash, no sort of the million rows), a sort of
        the small series table, then one gather: much faster than sorting every row
        by seven keys.
        """
        keys = [KEY_COLUMNS[lv] for lv in LEVELS]
        p, st, se, sop = keys
        frame = (
            self.scan()
            .select(
                pl.col("file_id"),
                *[self._col(k) for k in keys],
                self._col("StudyDate", pl.Date),
                self._col("SeriesNumber", pl.Int64),
                self._col("InstanceNumber", pl.Int64),
            )
            .with_row_index("_scan_row")
            .collect()
            .rechunk()
        )
        if frame.height == 0:
            zero = np.zeros(1, dtype=np.int64)
            empty = frame.select("_scan_row", "file_id", *keys)
            return empty, {"patient": zero, "study": zero, "series": zero}
        series = (
            frame.group_by([p, st, se])
            .agg(
                rows=pl.col("_scan_row").sort_by(["InstanceNumber", "file_id"], nulls_last=True),
                date=pl.col("StudyDate").min(),
                number=pl.col("SeriesNumber").min(),
            )
            .with_columns(date=pl.col("date").min().over(p, st))
            .sort([p, "date", st, "number", se], nulls_last=True)
        )
        perm = series["rows"].explode().to_numpy()
        sizes = series["rows"].list.len().to_numpy().astype(np.int64)
        series_starts = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
        changes = series.select(
            patient=pl.col(p).ne_missing(pl.col(p).shift(1)),
            study=pl.col(p).ne_missing(pl.col(p).shift(1))
            | pl.col(st).ne_missing(pl.col(st).shift(1)),
        ).with_row_index("_g")
        starts: dict[Level, np.ndarray] = {"series": series_starts}
        for level in ("patient", "study"):
            first = changes.filter(pl.col(level) | (pl.col("_g") == 0))["_g"].to_numpy()
            starts[level] = np.append(series_starts[first], series_starts[-1])
        return frame.select("_scan_row", "file_id", *keys)[perm], starts

    # -- columns ---------------------------------------------------------------------------

    def has(self, name: str) -> bool:
        return name in self.types

    def series(self, name: str) -> pl.Series | None:
        """Column ``name`` in tree order (loaded once for the whole index), or None."""
        if name not in self.types:
            return None
        got = self._series_cache.get(name)
        if got is None:
            if name in self.keys.columns:
                got = self.keys[name]
            else:
                raw = self.scan().select(name).collect().to_series()
                got = raw.gather(pl.Series(self.perm))
            with self._lock:
                got = self._series_cache.setdefault(name, got)
        return got

    def values(self, name: str) -> list[Any] | None:
        """Column ``name`` as a Python list in tree order (for fast scalar access)."""
        got = self._list_cache.get(name)
        if got is None:
            s = self.series(name)
            if s is None:
                return None
            got = s.to_list()
            with self._lock:
                got = self._list_cache.setdefault(name, got)
        return got

    def rows_frame(self, rows: np.ndarray, columns: list[str] | None = None) -> pl.DataFrame:
        """Full ``instances`` rows of ``rows`` (tree order)."""
        fids = pl.Series("file_id", self.file_ids[rows])
        order = pl.DataFrame({"file_id": fids, "_order": np.arange(len(rows))})
        lf = self.scan().filter(pl.col("file_id").is_in(fids.implode()))
        if columns is not None:
            lf = lf.select(columns if "file_id" in columns else ["file_id", *columns])
        got = lf.collect()
        out = order.join(got, on="file_id", how="left").sort("_order").drop("_order")
        return out if columns is None or "file_id" in columns else out.drop("file_id")

    # -- lookups ---------------------------------------------------------------------------

    def group_keys(self, level: Level) -> pl.Series:
        starts = self.starts[level]
        return self.keys[KEY_COLUMNS[level]].gather(pl.Series(starts[:-1]))

    def group_of_key(self, level: Level, key: Any) -> int | None:
        """The first group of ``level`` whose key is ``key``."""
        mapping = self._group_maps.get(level)
        if mapping is None:
            mapping = {}
            for i, k in enumerate(self.group_keys(level).to_list()):
                mapping.setdefault(k, i)
            with self._lock:
                mapping = self._group_maps.setdefault(level, mapping)
        return mapping.get(key)

    def row_of_sop(self, uid: str) -> int | None:
        """The first row (tree order) with ``SOPInstanceUID == uid`` (bisect, O(log n))."""
        if self._sop_order is None:
            col = self.keys["SOPInstanceUID"]
            order = col.arg_sort(nulls_last=True)
            ordered = [v for v in col.gather(order).to_list() if v is not None]
            with self._lock:
                self._sop_order = (ordered, order.to_numpy())
        ordered, rows = self._sop_order
        i = bisect.bisect_left(ordered, uid)
        if i < len(ordered) and ordered[i] == uid:
            return int(rows[i])
        return None

    def parent(self, level: Level, index: int) -> int:
        """The group of the level above ``level`` that holds group (or row) ``index``."""
        if level == "instance":
            row = index
            return int(np.searchsorted(self.starts["series"], row, "right")) - 1
        up: Level = "study" if level == "series" else "patient"
        first = int(self.starts[level][index])
        return int(np.searchsorted(self.starts[up], first, "right")) - 1

    def child_range(self, level: Level, index: int) -> tuple[int, int]:
        """Groups (or rows, below a series) of the level below that ``index`` holds."""
        lo, hi = int(self.starts[level][index]), int(self.starts[level][index + 1])
        if level == "series":
            return lo, hi
        down: Level = "study" if level == "patient" else "series"
        s = self.starts[down]
        return int(np.searchsorted(s, lo, "left")), int(np.searchsorted(s, hi, "left"))

    def row_range(self, level: Level, lo: int, hi: int) -> tuple[int, int]:
        """Rows held by groups ``lo..hi`` of ``level``."""
        s = self.starts[level]
        return int(s[lo]), int(s[hi])

    def elements_file(self, row: int) -> Path | str:
        """The ``elements`` shard of the batch that indexed ``row``."""
        if self._batch_ends is None:
            counts = [self.store.num_rows(f) for f in self.files]
            self._batch_ends = np.cumsum(counts)
        batch = int(np.searchsorted(self._batch_ends, int(self.perm[row]), "right"))
        return self.store.sibling(self.files[batch], "elements")

    def elements_of(self, row: int) -> pl.DataFrame:
        """Every ``elements`` row of the instance at ``row``, sorted by path."""
        fid = int(self.file_ids[row])
        path = self.elements_file(row)
        lazy = self.store.scan_files([path])
        return lazy.filter(pl.col("file_id") == fid).sort("path").collect()
