"""The session store: a DuckDB catalog plus Parquet shards in a sibling folder."""

from __future__ import annotations

import fcntl
import json
import os
import secrets
import shutil
import threading
import time
import uuid
from collections.abc import Collection, Iterable, Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import duckdb
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from gantry._version import __version__
from gantry.errors import (
    ConfigError,
    QueryError,
    SchemaVersionError,
    StoreError,
    StoreLockedError,
    StoreNotFoundError,
)
from gantry.store._layout import SCHEMA_VERSION, Layout, replace_dir_atomic, write_parquet_atomic
from gantry.store._remote import PARTS_DDL, RemoteTables, batch_rels, new_part_name
from gantry.store._views import hierarchy_views

BATCH_TABLES = ("instances", "elements", "skipped", "sr_content", "objects")
"""Tables made of the committed ingest batches (one Parquet file per batch).

``objects`` exists only in batches read from object storage: one row per object
read, with its ETag and version, so a changed object is read again."""

_SNAPSHOT = "catalog"
"""The data folder's snapshot of the catalog tables, for readers while a writer works."""
_LOCK_WAIT = 2.0
"""Seconds a writer waits for a reader's momentary copy of the catalog."""

_CATALOG_DDL = """
CREATE TABLE IF NOT EXISTS meta (key VARCHAR PRIMARY KEY, value VARCHAR);
CREATE TABLE IF NOT EXISTS runs (
    run_id VARCHAR PRIMARY KEY,
    started_at TIMESTAMP,
    finished_at TIMESTAMP,
    kind VARCHAR,
    counts JSON,
    details JSON,
    gantry_version VARCHAR
);
"""


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


class Store:
    """One session store: a DuckDB catalog file and its data folder.

    Nothing but this class writes inside the store. Big tables are Parquet files
    (``batches/<id>/{instances,elements,skipped}.parquet`` and
    ``tables/<name>/*.parquet``), exposed in the DuckDB connection as views of the
    same name; small stateful tables (``meta``, ``runs``, edits) live in the catalog.

    Parameters
    ----------
    path : str or Path
        The catalog file (``project.db``); the data folder is ``project.gantry``.
    read_only : bool
        Open without taking the writer lock (several readers may coexist with
        nothing else writing).
    data : str, optional
        An object-storage URL (``s3://bucket/prefix``) to keep the Parquet tables
        in instead of the local data folder (see :mod:`gantry.store._remote`).
        Given once, when the session is made; the catalog remembers it, and a
        later open naming another place raises :class:`~gantry.errors.StoreError`.
    storage_options : mapping, optional
        Options for the ``data`` URL's fsspec file system; never stored.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> tmp = pathlib.Path(tempfile.mkdtemp())
    >>> store = Store(tmp / "s.db")
    >>> store.sql("SELECT count(*) AS n FROM instances")["n"][0]
    0
    >>> store.close()
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        read_only: bool = False,
        data: str | None = None,
        storage_options: Mapping[str, Any] | None = None,
    ) -> None:
        self.layout = Layout.for_catalog(path)
        self.read_only = read_only
        self.remote: RemoteTables | None = None
        """Where the Parquet tables live when not in the local data folder."""
        self._lock_fh: Any = None
        self._mutex = threading.RLock()
        self._schema_cache: dict[str, pa.Schema] = {}
        if read_only and not self.layout.catalog.exists():
            raise StoreNotFoundError(self.layout.catalog)
        if not read_only:
            self.layout.make_dirs()
            self._take_lock()
            self._clean_tmp()
            if not self.layout.catalog.exists():
                self._create_catalog()
        try:
            self.con = self._connect_reader() if read_only else self._connect_writer()
        except BaseException:
            self._release_lock()
            raise
        try:
            if not read_only:
                self.con.execute(_CATALOG_DDL)
            self._check_schema_version()
            self._bind_data(data, storage_options)
            self.refresh_views()
            if not read_only:
                self.publish()
        except BaseException:
            self.close()
            raise

    def _bind_data(self, data: str | None, storage_options: Mapping[str, Any] | None) -> None:
        """Open the tables' object-storage place, claiming it when the session first names it."""
        from gantry.storage import is_url

        if data is not None:
            if not is_url(data):
                raise ConfigError(
                    "data",
                    expected="an object-storage URL (s3://, gs://, az://...)",
                    got=str(data),
                    hint="a local session keeps its tables beside the catalog: leave `data` out",
                )
            data = str(data).rstrip("/")
        stored = self.get_meta("data_url")
        if stored is None and data is None:
            return
        if stored is not None and data is not None and data != stored:
            raise StoreError(
                f"session `{self.layout.catalog}` keeps its tables at {stored!r}: "
                f"`data` must name that place or be left out, got {data!r}"
            )
        if stored is None and (self.read_only or self._local_parts()):
            raise StoreError(
                f"session `{self.layout.catalog}` keeps its tables in its local folder: "
                f"`data` must be left out, got {data!r}"
            )
        remote = RemoteTables(stored or str(data), storage_options)
        remote.register(self.con)
        if not self.read_only:
            self.con.execute(PARTS_DDL)
            data_id = self.get_meta("data_id") or uuid.uuid4().hex
            if stored is None:  # first time: the id is kept before the prefix is claimed
                self.set_meta("data_id", data_id)
                remote.claim(data_id)
                self.set_meta("data_url", remote.root)
            else:
                remote.check_owner(data_id)
                listed = {
                    r[0] for r in self.con.execute("SELECT rel FROM parquet_parts").fetchall()
                }
                remote.remove_unlisted(listed)
        self.remote = remote

    def _local_parts(self) -> bool:
        return any(self.layout.batches.glob("*/*.parquet")) or any(
            self.layout.tables.glob("*/*.parquet")
        )

    # -- opening ---------------------------------------------------------------------------

    def _create_catalog(self) -> None:
        """Build a complete catalog under a temporary name, then rename it into place.

        A process killed while creating a session leaves no catalog at all (the
        next writer creates it again), never one without its schema version.
        """
        staged = self.layout.new_tmp_dir("catalog") / self.layout.catalog.name
        con = duckdb.connect(str(staged))
        try:
            con.execute(_CATALOG_DDL)
            meta = {
                "schema_version": str(SCHEMA_VERSION),
                "created_at": _now().isoformat(),
                "created_by": __version__,
                "secret": secrets.token_hex(32),
            }
            con.executemany("INSERT INTO meta VALUES (?, ?)", list(meta.items()))
            con.execute("CHECKPOINT")
        finally:
            con.close()
        with open(staged, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(staged, self.layout.catalog)
        shutil.rmtree(staged.parent, ignore_errors=True)

    def _connect_writer(self) -> duckdb.DuckDBPyConnection:
        # a reader copies the catalog for an instant (see _connect_reader): wait that out
        deadline = time.monotonic() + _LOCK_WAIT
        while True:
            try:
                return duckdb.connect(str(self.layout.catalog))
            except duckdb.IOException as exc:
                if "lock" not in str(exc).lower():
                    raise StoreError(f"cannot open session `{self.layout.catalog}`: {exc}") from exc
                if time.monotonic() > deadline:
                    raise StoreLockedError(self.layout.catalog) from exc
                time.sleep(0.05)

    def _connect_reader(self) -> duckdb.DuckDBPyConnection:
        """An in-memory connection holding a copy of the catalog's tables.

        The catalog file is opened read-only only for the moment of the copy,
        so an idle reader never blocks a writer.  While a writer holds the
        file, the copy comes from the snapshot the writer publishes after
        every run (:meth:`publish`): the last committed state.
        """
        con = duckdb.connect(":memory:")
        try:
            path = str(self.layout.catalog).replace("'", "''")
            deadline = time.monotonic() + _LOCK_WAIT
            while True:
                try:
                    con.execute(f"ATTACH '{path}' AS catalog (READ_ONLY)")
                    break
                except duckdb.Error:
                    if self._load_snapshot(con):
                        return con
                    if time.monotonic() > deadline:  # a writer with no snapshot yet
                        raise StoreLockedError(self.layout.catalog) from None
                    time.sleep(0.05)
            try:
                names = con.execute(
                    "SELECT table_name FROM information_schema.tables "
                    "WHERE table_catalog = 'catalog' AND table_type = 'BASE TABLE'"
                ).fetchall()
                for (name,) in names:
                    con.execute(f'CREATE TABLE "{name}" AS SELECT * FROM catalog."{name}"')
            finally:
                con.execute("DETACH catalog")
        except BaseException:
            con.close()
            raise
        return con

    def _load_snapshot(self, con: duckdb.DuckDBPyConnection) -> bool:
        folder = self.layout.data_dir / _SNAPSHOT
        files = sorted(folder.glob("*.parquet")) if folder.is_dir() else []
        if not files:
            return False
        for file in files:
            source = str(file).replace("'", "''")
            con.execute(f"CREATE TABLE \"{file.stem}\" AS SELECT * FROM read_parquet('{source}')")
        return True

    def publish(self) -> None:
        """Write the catalog's tables as a Parquet snapshot that readers use while a writer works.

        Called when a session opens for writing and after every run; swapped in
        with one rename, so a reader sees one committed state or the next.
        """
        self._require_writer()
        with self._mutex:
            if self.con is None:
                return
            try:
                names = [
                    r[0]
                    for r in self.con.execute(
                        "SELECT table_name FROM information_schema.tables "
                        "WHERE table_schema = 'main' AND table_type = 'BASE TABLE' "
                        "AND table_catalog = current_database()"
                    ).fetchall()
                ]
                staged = self.layout.new_tmp_dir("snapshot")
                for name in names:
                    target = str(staged / f"{name}.parquet").replace("'", "''")
                    self.con.execute(f"COPY \"{name}\" TO '{target}' (FORMAT parquet)")
                replace_dir_atomic(staged, self.layout.data_dir / _SNAPSHOT)
            except (OSError, duckdb.Error):
                pass  # readers keep the previous snapshot; the catalog itself is intact

    # -- lifecycle -------------------------------------------------------------------------

    def _take_lock(self) -> None:
        fh = open(self.layout.lock, "a+")  # noqa: SIM115 - held for the store's lifetime
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            fh.seek(0)
            holder = fh.read().strip()
            fh.close()
            pid = int(holder) if holder.isdigit() else None
            raise StoreLockedError(self.layout.catalog, pid) from exc
        fh.seek(0)
        fh.truncate()
        fh.write(f"{os.getpid()}\n")  # named in the error another process gets
        fh.flush()
        self._lock_fh = fh

    def _release_lock(self) -> None:
        if self._lock_fh is not None:
            fcntl.flock(self._lock_fh.fileno(), fcntl.LOCK_UN)
            self._lock_fh.close()
            self._lock_fh = None

    def _clean_tmp(self) -> None:
        """Remove leftovers of an interrupted run (never committed, so never visible)."""
        for child in self.layout.tmp.iterdir():
            shutil.rmtree(child, ignore_errors=True) if child.is_dir() else child.unlink()
        for root in (self.layout.batches, self.layout.tables):
            for child in root.glob(".*"):
                shutil.rmtree(child, ignore_errors=True) if child.is_dir() else child.unlink()

    def close(self) -> None:
        """Close the connection and release the writer lock."""
        with self._mutex:
            if getattr(self, "con", None) is not None:
                self.con.close()
                self.con = None  # type: ignore[assignment]
            self._release_lock()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- meta ------------------------------------------------------------------------------

    def _check_schema_version(self) -> None:
        found = self.get_meta("schema_version")
        if found is None:
            if self.read_only:
                raise StoreError(f"`{self.layout.catalog}` is not a gantry session")
            self.set_meta("schema_version", str(SCHEMA_VERSION))
            self.set_meta("created_at", _now().isoformat())
            self.set_meta("created_by", __version__)
            self.set_meta("secret", secrets.token_hex(32))
        elif int(found) != SCHEMA_VERSION:
            raise SchemaVersionError(self.layout.catalog, int(found), SCHEMA_VERSION)

    def get_meta(self, key: str) -> str | None:
        """Return a catalog ``meta`` value, or None."""
        try:
            with self._mutex:
                rows = self.con.execute("SELECT value FROM meta WHERE key = ?", [key]).fetchall()
        except duckdb.CatalogException:
            return None
        return str(rows[0][0]) if rows else None

    def set_meta(self, key: str, value: str) -> None:
        """Set a catalog ``meta`` value."""
        self._require_writer()
        with self._mutex:
            self.con.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", [key, value])

    @property
    def secret(self) -> bytes:
        """The per-session secret that keys every HMAC (UIDs, pseudonyms, date shifts)."""
        value = self.get_meta("secret")
        if value is None:
            raise StoreError("session has no secret (store created read-only?)")
        return bytes.fromhex(value)

    def _require_writer(self) -> None:
        if self.read_only:
            raise StoreError(f"session `{self.layout.catalog}` is open read-only")

    # -- queries ---------------------------------------------------------------------------

    def sql(self, query: str, params: list[Any] | Mapping[str, Any] | None = None) -> pl.DataFrame:
        """Run SQL in the catalog (every table and view visible) and return Polars."""
        with self._mutex:
            try:
                rel = self.con.sql(query, params=params)
                return pl.DataFrame() if rel is None else rel.pl()
            except duckdb.Error as exc:
                raise QueryError(query, str(exc).splitlines()[0]) from exc

    def table_names(self) -> list[str]:
        """Names of every table and view in the catalog."""
        rows = self.con.execute(
            "SELECT table_name FROM information_schema.tables ORDER BY table_name"
        ).fetchall()
        return [r[0] for r in rows]

    def files_of(self, name: str) -> list[Any]:
        """The Parquet files behind a Parquet-backed table (batch or derived).

        Local paths (``Path``), or URLs (``str``) when the tables live on object
        storage; :meth:`batch_of`, :meth:`sibling` and :meth:`scan_files` take either.
        """
        if self.remote is not None:
            with self._mutex:
                rows = self.con.execute(
                    "SELECT rel FROM parquet_parts WHERE table_name = ? ORDER BY rel", [name]
                ).fetchall()
            return [self.remote.url(r[0]) for r in rows]
        if name in BATCH_TABLES:
            return sorted(self.layout.batches.glob(f"*/{name}.parquet"))
        return sorted((self.layout.tables / name).glob("*.parquet"))

    def schema_of(self, name: str) -> pa.Schema | None:
        """The unified Arrow schema of a Parquet-backed table, or None when it has no files."""
        files = self.files_of(name)
        if not files:
            return None
        key = f"{name}:{len(files)}:{files[-1]}"
        if key not in self._schema_cache:
            read = pq.read_schema if self.remote is None else self.remote.read_schema
            schemas = [read(f) for f in files]
            self._schema_cache[key] = pa.unify_schemas(schemas, promote_options="permissive")
        return self._schema_cache[key]

    def scan(self, name: str) -> pl.LazyFrame:
        """A Polars LazyFrame over a table.

        Parquet-backed tables are scanned lazily from their files; catalog tables are
        read through DuckDB.
        """
        files = self.files_of(name)
        if files:
            schema = self.schema_of(name)
            assert schema is not None
            return self.scan_files(files, schema)
        return self.sql(f'SELECT * FROM "{name}"').lazy()

    def scan_files(self, files: list[Any], schema: pa.Schema | None = None) -> pl.LazyFrame:
        """A LazyFrame over some of a table's files (from :meth:`files_of`) in their order."""
        if self.remote is not None:
            if schema is None:
                read = self.remote.read_schema
                schema = pa.unify_schemas([read(f) for f in files], promote_options="permissive")
            return self.remote.scan(files, schema)
        if schema is None:
            return pl.scan_parquet([str(f) for f in files])
        pl_schema = pl.DataFrame(schema.empty_table()).schema
        return pl.scan_parquet([str(f) for f in files], schema=pl_schema, missing_columns="insert")

    def num_rows(self, file: Path | str) -> int:
        """Rows in one of a table's files (its footer only)."""
        if self.remote is not None:
            return self.remote.num_rows(str(file))
        return int(pq.read_metadata(file).num_rows)

    @staticmethod
    def batch_of(file: Path | str) -> str:
        """The ingest batch a batch table's file belongs to."""
        return Path(file).parent.name if isinstance(file, Path) else file.rsplit("/", 2)[-2]

    @staticmethod
    def sibling(file: Path | str, table: str) -> Path | str:
        """Another table's file of the same ingest batch (``elements`` beside ``instances``)."""
        if isinstance(file, Path):
            return file.with_name(f"{table}.parquet")
        return f"{file.rsplit('/', 1)[0]}/{table}.parquet"

    # -- writes ----------------------------------------------------------------------------

    def commit_batch(self, staged: Path) -> Path:
        """Commit a staged ingest batch folder (made by :meth:`stage_dir`) with one rename."""
        self._require_writer()
        if self.remote is not None:
            parts = batch_rels(staged)
            for _, rel, local in parts:  # each object whole; none listed yet
                self.remote.upload(local, rel)
            with self._mutex:
                self._list_parts([(t, staged.name, rel) for t, rel, _ in parts])
            shutil.rmtree(staged, ignore_errors=True)
            return staged
        dest = self.layout.batches / staged.name
        os.replace(staged, dest)
        return dest

    def _list_parts(
        self, add: list[tuple[str, str | None, str]], drop: tuple[str, list[Any]] | None = None
    ) -> list[str]:
        """In one catalog transaction, unlist the parts matching ``drop`` and list ``add``.

        ``drop`` is a SQL condition on ``parquet_parts`` and its parameters;
        returns the unlisted ``rel``s (their objects are the caller's to remove).
        """
        self.con.execute("BEGIN TRANSACTION")
        try:
            gone: list[str] = []
            if drop is not None:
                where, params = drop
                rows = self.con.execute(f"SELECT rel FROM parquet_parts WHERE {where}", params)
                gone = [r[0] for r in rows.fetchall()]
                self.con.execute(f"DELETE FROM parquet_parts WHERE {where}", params)
            if add:
                self.con.executemany("INSERT INTO parquet_parts VALUES (?, ?, ?)", add)
            self.con.execute("COMMIT")
        except BaseException:
            self.con.execute("ROLLBACK")
            raise
        return gone

    def forget_files(self, paths: Collection[str]) -> int:
        """Remove every ingest row of the files at ``paths``, so they can be read again.

        Used when an object changed since it was read (another ETag).  Each batch
        holding one of them is rewritten without its rows and swapped in with one
        rename; returns how many batches were rewritten.
        """
        from gantry.ingest._ids import file_id

        self._require_writer()
        wanted = pa.array(sorted(set(paths)), type=pa.string())
        ids = pa.array(sorted({file_id(p) for p in wanted.to_pylist()}), type=pa.int64())
        if not len(wanted):
            return 0
        if self.remote is not None:
            return self._forget_remote(wanted, ids)
        rewritten = 0
        with self._mutex:
            for folder in sorted(self.layout.batches.iterdir()):
                if not folder.is_dir() or folder.name.startswith("."):
                    continue
                names = [f for f in ("instances", "skipped") if (folder / f"{f}.parquet").exists()]
                paths_held = [
                    pq.read_table(folder / f"{n}.parquet", columns=["file_path"])["file_path"]
                    for n in names
                ]
                if not any(pc.any(pc.is_in(col, value_set=wanted)).as_py() for col in paths_held):
                    continue
                staged = self.layout.new_tmp_dir("forget")
                for shard in folder.glob("*.parquet"):
                    table = pq.read_table(shard)
                    if "file_id" in table.column_names:
                        drop = pc.is_in(table["file_id"], value_set=ids)
                    else:
                        drop = pc.is_in(table["file_path"], value_set=wanted)
                    kept = table.filter(pc.invert(pc.fill_null(drop, False)))
                    pq.write_table(kept, staged / shard.name, compression="zstd")
                replace_dir_atomic(staged, folder)
                rewritten += 1
            self._schema_cache.clear()
        self.refresh_views()
        return rewritten

    def _forget_remote(self, wanted: pa.Array, ids: pa.Array) -> int:
        """:meth:`forget_files` on object storage: a rewritten batch is a new batch."""
        assert self.remote is not None
        rewritten = 0
        with self._mutex:
            rows = self.con.execute(
                "SELECT batch, table_name, rel FROM parquet_parts "
                "WHERE batch IS NOT NULL ORDER BY batch, rel"
            ).fetchall()
            batches: dict[str, dict[str, str]] = {}
            for batch, table_name, rel in rows:
                batches.setdefault(batch, {})[table_name] = rel
            for batch, parts in batches.items():
                held = [
                    self.remote.read_table(self.remote.url(parts[n]), ["file_path"])["file_path"]
                    for n in ("instances", "skipped")
                    if n in parts
                ]
                if not any(pc.any(pc.is_in(col, value_set=wanted)).as_py() for col in held):
                    continue
                staged = self.layout.new_tmp_dir("batch")
                for table_name, rel in parts.items():
                    table = self.remote.read_table(self.remote.url(rel))
                    if "file_id" in table.column_names:
                        drop = pc.is_in(table["file_id"], value_set=ids)
                    else:
                        drop = pc.is_in(table["file_path"], value_set=wanted)
                    kept = table.filter(pc.invert(pc.fill_null(drop, False)))
                    pq.write_table(kept, staged / f"{table_name}.parquet", compression="zstd")
                new = batch_rels(staged)
                for _, rel, local in new:
                    self.remote.upload(local, rel)
                gone = self._list_parts(
                    [(t, staged.name, rel) for t, rel, _ in new], ("batch = ?", [batch])
                )
                shutil.rmtree(staged, ignore_errors=True)
                self.remote.remove(gone)
                rewritten += 1
            self._schema_cache.clear()
        self.refresh_views()
        return rewritten

    def stage_dir(self, prefix: str = "batch") -> Path:
        """A fresh folder under ``tmp/`` to stage a batch in."""
        return self.layout.new_tmp_dir(prefix)

    def write_table(
        self,
        name: str,
        data: pl.DataFrame | pa.Table,
        *,
        mode: Literal["replace", "append"] = "replace",
    ) -> None:
        """Write a derived table as Parquet, atomically, and expose it as a view.

        ``replace`` swaps the whole table folder in one rename; ``append`` adds one
        more part file.
        """
        self._require_writer()
        if name in BATCH_TABLES:
            raise StoreError(f"`{name}` is written by ingest only")
        table = data.to_arrow() if isinstance(data, pl.DataFrame) else data
        if self.remote is not None:
            self._write_remote(name, table, mode)
            return
        with self._mutex:
            if mode == "replace":
                staged = self.layout.new_tmp_dir(f"table-{name}")
                write_parquet_atomic(table, staged / "part-00000.parquet")
                replace_dir_atomic(staged, self.layout.tables / name)
            else:
                folder = self.layout.tables / name
                part = f"part-{_now():%Y%m%d%H%M%S%f}-{uuid.uuid4().hex[:8]}.parquet"
                write_parquet_atomic(table, folder / part)
            # only this table's view changes: rebuilding every view per write made
            # chunked appends (export records) cost more with every chunk
            self._view_over(name, self.files_of(name), None)

    def _write_remote(self, name: str, table: pa.Table, mode: str) -> None:
        assert self.remote is not None
        staged = self.layout.new_tmp_dir(f"table-{name}")
        try:
            local = staged / "part.parquet"
            pq.write_table(table, local, compression="zstd")
            rel = f"tables/{name}/{new_part_name()}"
            self.remote.upload(local, rel)
        finally:
            shutil.rmtree(staged, ignore_errors=True)
        with self._mutex:
            drop = ("table_name = ?", [name]) if mode == "replace" else None
            gone = self._list_parts([(name, None, rel)], drop)
            self._view_over(name, self.files_of(name), None)
        self.remote.remove(gone)

    def write_table_parts(self, name: str, parts: Iterable[pl.DataFrame | pa.Table]) -> int:
        """Replace a derived table with ``parts``, one Parquet file each, written as they
        come (a table too large for memory); swapped in whole at the end (one rename,
        or one catalog transaction for a store in a bucket).

        Returns the number of parts (an empty table gets no file, so no view).
        """
        self._require_writer()
        if name in BATCH_TABLES:
            raise StoreError(f"`{name}` is written by ingest only")
        staged = self.layout.new_tmp_dir(f"table-{name}")
        uploaded: list[str] = []
        count = 0
        try:
            for part in parts:
                table = part.to_arrow() if isinstance(part, pl.DataFrame) else part
                local = staged / f"part-{count:05d}.parquet"
                write_parquet_atomic(table, local)
                if self.remote is not None:
                    rel = f"tables/{name}/{new_part_name()}"
                    self.remote.upload(local, rel)
                    uploaded.append(rel)
                    local.unlink()
                count += 1
        except BaseException:
            shutil.rmtree(staged, ignore_errors=True)
            if self.remote is not None and uploaded:
                self.remote.remove(uploaded)
            raise
        if self.remote is not None:
            shutil.rmtree(staged, ignore_errors=True)
            with self._mutex:
                gone = self._list_parts(
                    [(name, None, rel) for rel in uploaded], ("table_name = ?", [name])
                )
                self._view_over(name, self.files_of(name), None)
            self.remote.remove(gone)
            return count
        with self._mutex:
            replace_dir_atomic(staged, self.layout.tables / name)
            self._view_over(name, self.files_of(name), None)
        return count

    def drop_table(self, name: str) -> None:
        """Remove a derived table."""
        self._require_writer()
        if self.remote is not None:
            with self._mutex:
                gone = self._list_parts([], ("table_name = ?", [name]))
                self.con.execute(f'DROP VIEW IF EXISTS "{name}"')
                self.refresh_views()
            self.remote.remove(gone)
            return
        with self._mutex:
            shutil.rmtree(self.layout.tables / name, ignore_errors=True)
            self.con.execute(f'DROP VIEW IF EXISTS "{name}"')
            self.refresh_views()

    # -- views -----------------------------------------------------------------------------

    def refresh_views(self) -> None:
        """(Re)create the temporary views over the Parquet files and the hierarchy views."""
        with self._mutex:
            if self.remote is not None:
                self.remote.prime()
            for name in BATCH_TABLES:
                self._view_over(name, self.files_of(name), _EMPTY_DDL[name])
            if self.remote is not None:
                derived = self.con.execute(
                    "SELECT DISTINCT table_name FROM parquet_parts WHERE batch IS NULL ORDER BY 1"
                ).fetchall()
                for (name,) in derived:
                    self._view_over(name, self.files_of(name), None)
            elif self.layout.tables.exists():
                for folder in sorted(self.layout.tables.iterdir()):
                    if folder.is_dir() and not folder.name.startswith("."):
                        files = self.files_of(folder.name)
                        if files:
                            self._view_over(folder.name, files, None)
            columns = {
                r[0]
                for r in self.con.execute("SELECT column_name FROM (DESCRIBE instances)").fetchall()
            }
            for name, ddl in hierarchy_views(columns).items():
                self.con.execute(f'CREATE OR REPLACE TEMP VIEW "{name}" AS {ddl}')

    def _view_over(self, name: str, files: list[Any], empty_ddl: str | None) -> None:
        if files:
            listing = ", ".join("'" + str(f).replace("'", "''") + "'" for f in files)
            body = f"SELECT * FROM read_parquet([{listing}], union_by_name = true)"
        elif empty_ddl is not None:
            body = empty_ddl
        else:
            return
        try:
            self.con.execute(f'CREATE OR REPLACE TEMP VIEW "{name}" AS {body}')
        except duckdb.Error as exc:
            if self.remote is None or not files:
                raise
            from gantry.storage._fs import storage_error

            raise storage_error(self.remote.root, exc) from exc

    # -- runs ------------------------------------------------------------------------------

    @contextmanager
    def run(self, kind: str, details: Mapping[str, Any] | None = None) -> Iterator[dict[str, Any]]:
        """Record one operation in ``runs``; the caller fills the yielded ``counts`` dict.

        The row is written when the block ends, also when it ends with an error
        (``details.error`` then names the exception type).
        """
        self._require_writer()
        counts: dict[str, Any] = {}
        info = dict(details or {})
        started = _now()
        try:
            yield counts
        except BaseException as exc:
            info["error"] = type(exc).__name__
            raise
        finally:
            with self._mutex:
                if self.con is not None:
                    self.con.execute(
                        "INSERT INTO runs VALUES (?, ?, ?, ?, ?, ?, ?)",
                        [
                            uuid.uuid4().hex,
                            started,
                            _now(),
                            kind,
                            json.dumps(counts, default=str),
                            json.dumps(info, default=str),
                            __version__,
                        ],
                    )
                    self.publish()


def _empty_sr_content() -> str:
    from gantry.sr import SR_CONTENT_SCHEMA

    types = {"int64": "BIGINT", "int16": "SMALLINT", "double": "DOUBLE", "date32[day]": "DATE"}
    columns = ", ".join(
        f"NULL::{'DOUBLE[]' if str(f.type).startswith('list') else types.get(str(f.type), 'VARCHAR')}"
        f" AS {f.name}"
        for f in SR_CONTENT_SCHEMA
    )
    return f"SELECT {columns} WHERE false"


_EMPTY_DDL = {
    "instances": (
        "SELECT NULL::BIGINT AS file_id, NULL::VARCHAR AS file_path, NULL::BIGINT AS file_size, "
        "NULL::DOUBLE AS file_mtime, NULL::VARCHAR AS transfer_syntax, "
        "NULL::BIGINT AS pixel_offset, NULL::BIGINT AS pixel_length, NULL::VARCHAR AS parser, "
        "NULL::VARCHAR AS SOPClassUID, NULL::VARCHAR AS SOPInstanceUID, "
        "NULL::VARCHAR AS PatientID, NULL::VARCHAR AS PatientName, "
        "NULL::VARCHAR AS StudyInstanceUID, NULL::VARCHAR AS SeriesInstanceUID, "
        "NULL::VARCHAR AS Modality WHERE false"
    ),
    "elements": (
        "SELECT NULL::BIGINT AS file_id, NULL::VARCHAR AS path, NULL::VARCHAR AS tag, "
        "NULL::SMALLINT AS depth, NULL::VARCHAR AS keyword, NULL::VARCHAR AS vr, "
        "NULL::VARCHAR AS private_creator, NULL::VARCHAR AS value, NULL::BIGINT AS length, "
        "NULL::VARCHAR AS value_hash WHERE false"
    ),
    "sr_content": _empty_sr_content(),
    "skipped": (
        "SELECT NULL::VARCHAR AS file_path, NULL::BIGINT AS file_size, "
        "NULL::DOUBLE AS file_mtime, NULL::VARCHAR AS reason, NULL::VARCHAR AS detail WHERE false"
    ),
    "objects": (
        "SELECT NULL::VARCHAR AS file_path, NULL::BIGINT AS file_id, NULL::BIGINT AS size, "
        "NULL::VARCHAR AS etag, NULL::VARCHAR AS version, NULL::DOUBLE AS mtime, "
        "NULL::BIGINT AS bytes_fetched WHERE false"
    ),
}
