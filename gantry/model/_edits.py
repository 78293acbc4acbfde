"""Edits: kept in memory with versioned dirty tracking, persisted in the catalog.

Metadata edits and exclusions are rows of the catalog table ``edits``; pixel edits
are blobs in the sidecar (:mod:`gantry.model._sidecar`) indexed by the catalog
table ``pixel_edits``. Every edit of an instance gets the next value of that
instance's version counter; the effective edit of an element is the one with the
highest version. Nothing here touches an original file.

Catalog tables::

    edits        file_id BIGINT, tag VARCHAR, keyword VARCHAR, vr VARCHAR,
                 op VARCHAR, value VARCHAR (JSON text), version BIGINT, saved_at TIMESTAMP
    pixel_edits  file_id BIGINT, offset BIGINT, nbytes BIGINT, dtype VARCHAR,
                 shape BIGINT[], checksum VARCHAR, version BIGINT, superseded BOOLEAN,
                 saved_at TIMESTAMP

``op`` is ``set``, ``delete`` or ``revert`` (back to the indexed value) for an
element, ``exclude`` or ``restore`` for the whole instance (``tag`` is ``"*"``,
``value`` the JSON reason). ``offset`` is where the payload starts in the
sidecar named by the ``meta`` key ``pixel_sidecar``; it is NULL once a
compaction dropped a superseded blob.
"""

from __future__ import annotations

import json
import os
import threading
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import polars as pl
import pyarrow as pa

from gantry.model._keys import INSTANCE_TAG
from gantry.model._sidecar import BlobRef, append_blobs, copy_blobs, fsync_dir, read_blob
from gantry.store import Store

__all__ = [
    "EditLog",
    "SaveResult",
    "compact",
    "excluded_file_ids",
    "load_edits",
    "pixel_edit_locations",
    "read_pixel_edit",
    "save",
]

SIDECAR_META_KEY = "pixel_sidecar"
CRASH_ENV = "GANTRY_TEST_CRASH_AT"
"""Test hook: when set to a crash point name, the process dies there (``os._exit``)."""

_DDL = """
CREATE TABLE IF NOT EXISTS edits (
    file_id BIGINT NOT NULL,
    tag VARCHAR NOT NULL,
    keyword VARCHAR,
    vr VARCHAR,
    op VARCHAR NOT NULL,
    value VARCHAR,
    version BIGINT NOT NULL,
    saved_at TIMESTAMP NOT NULL
);
CREATE TABLE IF NOT EXISTS pixel_edits (
    file_id BIGINT NOT NULL,
    "offset" BIGINT,
    nbytes BIGINT NOT NULL,
    dtype VARCHAR NOT NULL,
    shape BIGINT[] NOT NULL,
    checksum VARCHAR NOT NULL,
    version BIGINT NOT NULL,
    superseded BOOLEAN NOT NULL,
    saved_at TIMESTAMP NOT NULL
);
"""

EDITS_SCHEMA = pl.Schema(
    {
        "file_id": pl.Int64(),
        "tag": pl.String(),
        "keyword": pl.String(),
        "vr": pl.String(),
        "op": pl.String(),
        "value": pl.String(),
        "version": pl.Int64(),
        "saved_at": pl.Datetime("us"),
    }
)
_ELEMENT_OPS = ("set", "delete", "revert")
_INSTANCE_OPS = ("exclude", "restore")


def _crash_point(name: str) -> None:
    if os.environ.get(CRASH_ENV) == name:
        os._exit(77)


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def _query(store: Store, sql: str, params: list[Any] | None = None) -> pl.DataFrame:
    """Run a catalog query on a cursor of its own.

    DuckDB 2 refuses concurrent calls on one connection, and edits, saves and reads
    may come from several threads: each query here gets a fresh cursor.
    """
    cur = store.con.cursor()
    try:
        frame: pl.DataFrame = cur.sql(sql, params=params).pl()
        return frame
    finally:
        cur.close()


def _has_tables(store: Store) -> bool:
    names = set(
        _query(
            store,
            "SELECT table_name FROM information_schema.tables "
            "WHERE table_name IN ('edits', 'pixel_edits')",
        )["table_name"].to_list()
    )
    return names == {"edits", "pixel_edits"}


def sidecar_path(store: Store) -> Path:
    """The current sidecar file (named in ``meta``; ``pixels.bin`` before any compaction)."""
    got = _query(store, "SELECT value FROM meta WHERE key = ?", [SIDECAR_META_KEY])
    name = got.item() if got.height else None
    return store.layout.data_dir / name if name else store.layout.sidecar


# -- reading the saved state (also used by the export stage) -------------------------------


def load_edits(store: Store) -> pl.DataFrame:
    """Effective saved metadata edits: the latest version per ``(file_id, tag)``.

    Rows whose latest operation is ``revert`` are left out; exclusions are not
    included (see :func:`excluded_file_ids`). ``value`` is JSON text holding a
    DICOM-ready value.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> store = Store(pathlib.Path(tempfile.mkdtemp()) / "s.db")
    >>> load_edits(store).columns
    ['file_id', 'tag', 'keyword', 'vr', 'op', 'value', 'version', 'saved_at']
    >>> store.close()
    """
    if not _has_tables(store):
        return pl.DataFrame(schema=EDITS_SCHEMA)
    frame = _query(
        store,
        "SELECT * EXCLUDE (rn) FROM ("
        " SELECT *, row_number() OVER (PARTITION BY file_id, tag ORDER BY version DESC) AS rn"
        f" FROM edits WHERE tag <> '{INSTANCE_TAG}') "
        "WHERE rn = 1 AND op <> 'revert' ORDER BY file_id, tag",
    )
    return frame.cast(EDITS_SCHEMA)


def _exclusions(store: Store) -> pl.DataFrame:
    if not _has_tables(store):
        return pl.DataFrame(schema={"file_id": pl.Int64, "value": pl.String})
    return _query(
        store,
        "SELECT file_id, value FROM ("
        " SELECT file_id, op, value,"
        "  row_number() OVER (PARTITION BY file_id ORDER BY version DESC) AS rn"
        f" FROM edits WHERE tag = '{INSTANCE_TAG}') WHERE rn = 1 AND op = 'exclude'",
    )


def excluded_file_ids(store: Store) -> set[int]:
    """``file_id`` of every instance whose saved state is excluded (soft-deleted)."""
    return set(_exclusions(store)["file_id"].to_list())


def _live_pixel_refs(store: Store) -> dict[int, BlobRef]:
    if not _has_tables(store):
        return {}
    rows = _query(
        store,
        'SELECT file_id, version, "offset", nbytes, dtype, shape, checksum FROM pixel_edits '
        'WHERE NOT superseded AND "offset" IS NOT NULL',
    )
    return {
        r[0]: BlobRef(r[0], r[1], r[2], r[3], r[4], tuple(r[5]), r[6]) for r in rows.iter_rows()
    }


def read_pixel_edit(store: Store, file_id: int) -> np.ndarray | None:
    """The saved edited pixel array of ``file_id`` (verified), or None."""
    if not _has_tables(store):
        return None
    rows = _query(
        store,
        'SELECT file_id, version, "offset", nbytes, dtype, shape, checksum FROM pixel_edits '
        'WHERE file_id = ? AND NOT superseded AND "offset" IS NOT NULL '
        "ORDER BY version DESC LIMIT 1",
        [file_id],
    )
    if rows.height == 0:
        return None
    r = rows.row(0)
    return read_blob(sidecar_path(store), BlobRef(r[0], r[1], r[2], r[3], r[4], tuple(r[5]), r[6]))


def pixel_edit_locations(store: Store) -> dict[int, tuple[str, int, int, str, list[int]]]:
    """``{file_id: (sidecar path, payload offset, nbytes, dtype, shape)}`` of live pixel edits."""
    path = str(sidecar_path(store))
    return {
        fid: (path, ref.offset, ref.nbytes, ref.dtype, list(ref.shape))
        for fid, ref in _live_pixel_refs(store).items()
    }


# -- the in-memory log ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Edit:
    """One element or instance edit (``value`` is JSON text)."""

    file_id: int
    tag: str
    keyword: str | None
    vr: str | None
    op: str
    value: str | None
    version: int


@dataclass(frozen=True, slots=True)
class PixelEdit:
    """A pending pixel edit; ``array`` None reverts to the original pixels."""

    file_id: int
    array: np.ndarray | None
    version: int


@dataclass
class _Saved:
    """The saved state, loaded from the catalog (immutable once built)."""

    fids: np.ndarray  # sorted file_ids of effective element edits
    tags: list[str]
    edits: list[Edit]
    excluded: dict[int, str | None]
    pixels: dict[int, BlobRef]
    sidecar: Path
    version_fids: np.ndarray
    versions: np.ndarray

    @classmethod
    def load(cls, store: Store) -> _Saved:
        frame = load_edits(store)
        edits = [
            Edit(r[0], r[1], r[2], r[3], r[4], r[5], r[6])
            for r in frame.select(
                "file_id", "tag", "keyword", "vr", "op", "value", "version"
            ).iter_rows()
        ]
        excl = _exclusions(store)
        if _has_tables(store):
            vers = _query(
                store,
                "SELECT file_id, max(version) AS v FROM (SELECT file_id, version FROM edits "
                "UNION ALL SELECT file_id, version FROM pixel_edits) GROUP BY 1 ORDER BY 1",
            )
        else:
            vers = pl.DataFrame(schema={"file_id": pl.Int64, "v": pl.Int64})
        return cls(
            fids=frame["file_id"].to_numpy(),
            tags=frame["tag"].to_list(),
            edits=edits,
            excluded={
                fid: (json.loads(v) if v is not None else None) for fid, v in excl.iter_rows()
            },
            pixels=_live_pixel_refs(store),
            sidecar=sidecar_path(store),
            version_fids=vers["file_id"].to_numpy(),
            versions=vers["v"].to_numpy(),
        )

    def of(self, file_id: int) -> list[Edit]:
        lo = int(np.searchsorted(self.fids, file_id, "left"))
        hi = int(np.searchsorted(self.fids, file_id, "right"))
        return self.edits[lo:hi]

    def lookup(self, file_id: int, tag: str) -> Edit | None:
        lo = int(np.searchsorted(self.fids, file_id, "left"))
        n = len(self.tags)
        while lo < n and self.fids[lo] == file_id:
            if self.tags[lo] == tag:
                return self.edits[lo]
            lo += 1
        return None

    def version(self, file_id: int) -> int:
        i = int(np.searchsorted(self.version_fids, file_id))
        if i < len(self.version_fids) and self.version_fids[i] == file_id:
            return int(self.versions[i])
        return 0


@dataclass
class Snapshot:
    """What one save writes: the pending edits at the moment it started."""

    edits: list[Edit] = field(default_factory=list)
    pixels: list[PixelEdit] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.edits or self.pixels)


class EditLog:
    """Pending edits of one session, over the saved state of its catalog.

    Thread safe: writers take a lock and bump the instance's version counter;
    readers never block. A save clears only the pending entries it wrote (an
    edit made while a save runs stays pending, with its newer version).
    """

    def __init__(self, store: Store) -> None:
        self._store = store
        self._lock = threading.RLock()
        self._pending: dict[int, dict[str, Edit]] = {}
        self._pixels: dict[int, PixelEdit] = {}
        self._versions: dict[int, int] = {}
        self._saved: _Saved | None = None

    # -- state -------------------------------------------------------------------------------

    @property
    def saved(self) -> _Saved:
        saved = self._saved
        if saved is None:
            with self._lock:
                if self._saved is None:
                    self._saved = _Saved.load(self._store)
                saved = self._saved
        return saved

    def reload(self) -> None:
        """Re-read the saved state from the catalog."""
        fresh = _Saved.load(self._store)
        with self._lock:
            self._saved = fresh

    @property
    def pending_count(self) -> int:
        """Pending (unsaved) edits, pixel edits included."""
        with self._lock:
            return sum(len(d) for d in self._pending.values()) + len(self._pixels)

    def _next_version(self, file_id: int) -> int:
        current = self._versions.get(file_id)
        if current is None:
            current = self.saved.version(file_id)
        self._versions[file_id] = current + 1
        return current + 1

    # -- writes ------------------------------------------------------------------------------

    def record(
        self,
        file_ids: Iterable[int],
        tag: str,
        keyword: str | None,
        vr: str | None,
        op: str,
        value: str | None,
    ) -> int:
        """Record one element or instance operation for every id; return how many."""
        n = 0
        with self._lock:
            _ = self.saved  # versions continue from the catalog
            for fid in file_ids:
                fid = int(fid)
                edit = Edit(fid, tag, keyword, vr, op, value, self._next_version(fid))
                self._pending.setdefault(fid, {})[tag] = edit
                n += 1
        return n

    def record_pixels(self, file_id: int, array: np.ndarray | None) -> None:
        with self._lock:
            _ = self.saved
            self._pixels[file_id] = PixelEdit(file_id, array, self._next_version(file_id))

    # -- reads -------------------------------------------------------------------------------

    def lookup(self, file_id: int, tag: str) -> Edit | None:
        """The effective edit of one element (``revert`` → None, i.e. the indexed value)."""
        pending = self._pending.get(file_id)
        if pending is not None:
            edit = pending.get(tag)
            if edit is not None:
                return None if edit.op == "revert" else edit
        saved = self.saved
        if len(saved.fids) == 0:
            return None
        return saved.lookup(file_id, tag)

    @property
    def active(self) -> bool:
        """Whether any edit exists at all (a fast path for attribute reads)."""
        return bool(self._pending) or len(self.saved.fids) > 0

    def effective(self, file_id: int) -> dict[str, Edit]:
        """Every effective element edit of one instance, by tag."""
        out = {e.tag: e for e in self.saved.of(file_id)}
        for tag, edit in dict(self._pending.get(file_id, {})).items():
            if tag == INSTANCE_TAG:
                continue
            if edit.op == "revert":
                out.pop(tag, None)
            else:
                out[tag] = edit
        return out

    def exclusion(self, file_id: int) -> tuple[bool, str | None]:
        """``(excluded, reason)`` of one instance."""
        pending = self._pending.get(file_id)
        if pending is not None and INSTANCE_TAG in pending:
            edit = pending[INSTANCE_TAG]
            if edit.op == "exclude":
                return True, json.loads(edit.value) if edit.value else None
            return False, None
        saved = self.saved.excluded
        if file_id in saved:
            return True, saved[file_id]
        return False, None

    def pixel_state(self, file_id: int) -> PixelEdit | BlobRef | None:
        """A pending pixel edit, else the saved blob, else None."""
        pending = self._pixels.get(file_id)
        if pending is not None:
            return pending
        return self.saved.pixels.get(file_id)

    def read_saved_pixels(self, ref: BlobRef) -> np.ndarray:
        return read_blob(self.saved.sidecar, ref)

    # -- saving ------------------------------------------------------------------------------

    def snapshot(self) -> Snapshot:
        with self._lock:
            return Snapshot(
                edits=[e for d in self._pending.values() for e in d.values()],
                pixels=list(self._pixels.values()),
            )

    def saved_done(self, snap: Snapshot) -> None:
        """After a save committed ``snap``: load the new saved state, drop what it wrote."""
        fresh = _Saved.load(self._store)
        with self._lock:
            self._saved = fresh  # first, so that a reader never misses an edit
            for e in snap.edits:
                d = self._pending.get(e.file_id)
                if d is not None and d.get(e.tag) is e:
                    del d[e.tag]
                    if not d:
                        del self._pending[e.file_id]
            for p in snap.pixels:
                if self._pixels.get(p.file_id) is p:
                    del self._pixels[p.file_id]


# -- save and compact -----------------------------------------------------------------------


@dataclass(frozen=True)
class SaveResult:
    """What one :meth:`~gantry.Session.save` wrote."""

    edits: int = 0
    exclusions: int = 0
    pixel_edits: int = 0
    pixel_bytes: int = 0

    def as_dict(self) -> dict[str, int]:
        return {
            "edits": self.edits,
            "exclusions": self.exclusions,
            "pixel_edits": self.pixel_edits,
            "pixel_bytes": self.pixel_bytes,
        }


def ensure_tables(store: Store) -> None:
    """Create ``edits`` and ``pixel_edits`` when missing."""
    cur = store.con.cursor()
    try:
        cur.execute(_DDL).fetchall()
    finally:
        cur.close()


@contextmanager
def _transaction(store: Store) -> Iterator[duckdb.DuckDBPyConnection]:
    """One DuckDB transaction on its own cursor (committed at the end, else rolled back)."""
    cur = store.con.cursor()
    try:
        cur.execute("BEGIN TRANSACTION").fetchall()
        try:
            yield cur
        except BaseException:
            cur.execute("ROLLBACK").fetchall()
            raise
        cur.execute("COMMIT").fetchall()
    finally:
        cur.close()


def _insert(cur: duckdb.DuckDBPyConnection, table: str, rows: pa.Table) -> None:
    name = f"_gantry_rows_{uuid.uuid4().hex[:8]}"
    cur.register(name, rows)
    try:
        cols = ", ".join(f'"{c}"' for c in rows.column_names)
        cur.execute(f"INSERT INTO {table} ({cols}) SELECT {cols} FROM {name}").fetchall()
    finally:
        cur.unregister(name)


def save(store: Store, log: EditLog, lock: threading.Lock) -> SaveResult:
    """Persist the pending edits of ``log``: sidecar blobs first, then one transaction."""
    # store.run writes its row on the shared connection: hold the store's mutex meanwhile
    with lock, store._mutex, store.run("save") as counts:
        snap = log.snapshot()
        if not snap:
            counts.update(SaveResult().as_dict())
            return SaveResult()
        ensure_tables(store)
        now = _now()
        sidecar = sidecar_path(store)
        arrays = [(p.file_id, p.version, p.array) for p in snap.pixels if p.array is not None]
        refs = append_blobs(sidecar, arrays) if arrays else []
        _crash_point("save:after-sidecar")
        edit_rows = pa.table(
            {
                "file_id": pa.array([e.file_id for e in snap.edits], pa.int64()),
                "tag": pa.array([e.tag for e in snap.edits], pa.string()),
                "keyword": pa.array([e.keyword for e in snap.edits], pa.string()),
                "vr": pa.array([e.vr for e in snap.edits], pa.string()),
                "op": pa.array([e.op for e in snap.edits], pa.string()),
                "value": pa.array([e.value for e in snap.edits], pa.string()),
                "version": pa.array([e.version for e in snap.edits], pa.int64()),
                "saved_at": pa.array([now] * len(snap.edits), pa.timestamp("us")),
            }
        )
        pixel_rows = pa.table(
            {
                "file_id": pa.array([r.file_id for r in refs], pa.int64()),
                "offset": pa.array([r.offset for r in refs], pa.int64()),
                "nbytes": pa.array([r.nbytes for r in refs], pa.int64()),
                "dtype": pa.array([r.dtype for r in refs], pa.string()),
                "shape": pa.array([list(r.shape) for r in refs], pa.list_(pa.int64())),
                "checksum": pa.array([r.checksum for r in refs], pa.string()),
                "version": pa.array([r.version for r in refs], pa.int64()),
                "superseded": pa.array([False] * len(refs), pa.bool_()),
                "saved_at": pa.array([now] * len(refs), pa.timestamp("us")),
            }
        )
        touched = pa.table({"file_id": pa.array([p.file_id for p in snap.pixels], pa.int64())})
        with _transaction(store) as cur:
            if edit_rows.num_rows:
                _insert(cur, "edits", edit_rows)
            if touched.num_rows:
                cur.register("_gantry_touched", touched)
                cur.execute(
                    "UPDATE pixel_edits SET superseded = true WHERE NOT superseded "
                    "AND file_id IN (SELECT file_id FROM _gantry_touched)"
                ).fetchall()
                cur.unregister("_gantry_touched")
            if pixel_rows.num_rows:
                _insert(cur, "pixel_edits", pixel_rows)
            cur.execute(
                "INSERT OR REPLACE INTO meta VALUES (?, ?)", [SIDECAR_META_KEY, sidecar.name]
            ).fetchall()
            _crash_point("save:before-commit")
        _crash_point("save:after-commit")
        result = SaveResult(
            edits=sum(1 for e in snap.edits if e.op in _ELEMENT_OPS),
            exclusions=sum(1 for e in snap.edits if e.op in _INSTANCE_OPS),
            pixel_edits=len(snap.pixels),
            pixel_bytes=sum(r.nbytes for r in refs),
        )
        counts.update(result.as_dict())
    log.saved_done(snap)
    return result


def compact(store: Store, log: EditLog, lock: threading.Lock) -> int:
    """Rewrite the sidecar with only the live blobs; return the bytes reclaimed.

    The live blobs are copied into a new file under ``tmp/`` (fsynced), which is
    renamed into the data folder under a new name; then one transaction points
    ``pixel_edits`` at the new offsets and ``meta`` at the new name; only then is
    the old file removed. A crash at any moment leaves the catalog referencing a
    complete sidecar (the old one or the new one); leftovers are removed by the
    next compaction.
    """
    data_dir = store.layout.data_dir
    with lock, store._mutex, store.run("compact") as counts:
        current = sidecar_path(store)
        live = list(_live_pixel_refs(store).values())
        strays = [p for p in data_dir.glob("pixels*.bin") if p.name != current.name and p.is_file()]
        before = (current.stat().st_size if current.exists() else 0) + sum(
            p.stat().st_size for p in strays
        )
        if not live and not strays and not current.exists():
            counts.update({"blobs_kept": 0, "bytes_reclaimed": 0})
            return 0
        ensure_tables(store)
        new_name = f"pixels-{uuid.uuid4().hex[:12]}.bin"
        staged = store.layout.tmp / new_name
        moved = copy_blobs(current, staged, live) if live else _empty(staged)
        os.replace(staged, data_dir / new_name)
        fsync_dir(data_dir)
        _crash_point("compact:after-copy")
        offsets = pa.table(
            {
                "file_id": pa.array([r.file_id for r in moved], pa.int64()),
                "version": pa.array([r.version for r in moved], pa.int64()),
                "new_offset": pa.array([r.offset for r in moved], pa.int64()),
            }
        )
        with _transaction(store) as cur:
            cur.register("_gantry_offsets", offsets)
            cur.execute(
                'UPDATE pixel_edits SET "offset" = o.new_offset FROM _gantry_offsets AS o '
                "WHERE pixel_edits.file_id = o.file_id AND pixel_edits.version = o.version "
                "AND NOT pixel_edits.superseded"
            ).fetchall()
            cur.unregister("_gantry_offsets")
            cur.execute(
                'UPDATE pixel_edits SET "offset" = NULL WHERE superseded AND "offset" IS NOT NULL'
            ).fetchall()
            cur.execute(
                "INSERT OR REPLACE INTO meta VALUES (?, ?)", [SIDECAR_META_KEY, new_name]
            ).fetchall()
        _crash_point("compact:after-commit")
        for old in (current, *strays):
            old.unlink(missing_ok=True)
        fsync_dir(data_dir)
        after = (data_dir / new_name).stat().st_size
        reclaimed = max(0, before - after)
        counts.update(
            {"blobs_kept": len(moved), "bytes_before": before, "bytes_after": after,
             "bytes_reclaimed": reclaimed}
        )  # fmt: skip
    log.reload()
    return reclaimed


def _empty(path: Path) -> list[BlobRef]:
    with open(path, "wb") as fh:
        os.fsync(fh.fileno())
    return []
