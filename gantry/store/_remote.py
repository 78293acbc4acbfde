"""A session's Parquet tables on object storage, listed by the local catalog.

``Session("study.db", data="s3://bucket/prefix")`` keeps the DuckDB catalog (and
the lock, the staging folder, the reader snapshot) on this machine and the
Parquet parts of the big tables under the URL::

    s3://bucket/prefix/.gantry-session          which session owns the prefix
    s3://bucket/prefix/batches/<batch>/<table>.parquet
    s3://bucket/prefix/tables/<table>/<part>.parquet

Every part is written once under a fresh name and never changed.  A part is
part of the session only once the catalog's ``parquet_parts`` table lists it:
the objects of a batch are uploaded first (each object whole), then one catalog
transaction lists all of them, so a cut anywhere leaves either the whole batch
or none of it visible.  Objects the catalog does not list (an upload cut short)
are removed the next time a writer opens the session.

DuckDB reads the parts through the fsspec file system of
:mod:`gantry.storage` (registered on the connection), Polars through a PyArrow
dataset over the same file system.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gantry.errors import StorageError, StoreError

if TYPE_CHECKING:
    import duckdb
    import polars as pl
    import pyarrow as pa

    from gantry.storage import FsspecStorage

PARTS_DDL = """
CREATE TABLE IF NOT EXISTS parquet_parts (
    table_name VARCHAR NOT NULL,
    batch VARCHAR,
    rel VARCHAR PRIMARY KEY
);
"""
"""The catalog's list of committed parts (``rel`` is relative to the data URL)."""

OWNER = ".gantry-session"
"""Object naming the session (by its ``data_id``) whose tables live under the prefix."""


class RemoteTables:
    """The Parquet parts of one session under an object-storage URL.

    Parameters
    ----------
    url : str
        Where the parts live (``s3://bucket/prefix``).
    storage_options : mapping, optional
        Handed to fsspec as they are; never stored.

    Examples
    --------
    >>> tables = RemoteTables("memory://gantry-doctest-tables")
    >>> tables.url("batches/b1/instances.parquet")
    'memory://gantry-doctest-tables/batches/b1/instances.parquet'
    """

    def __init__(self, url: str, storage_options: Mapping[str, Any] | None = None) -> None:
        from gantry.storage import FsspecStorage, open_storage

        storage = open_storage(url, storage_options)
        assert isinstance(storage, FsspecStorage)
        self.storage: FsspecStorage = storage
        self.root = storage.root
        self._pafs: Any = None

    def url(self, rel: str) -> str:
        """The full URL of a part."""
        return self.storage.url(rel)

    # -- ownership -------------------------------------------------------------------------

    def claim(self, data_id: str) -> None:
        """Make the prefix this session's: it must be empty or already ours."""
        found = self.storage.list()
        owner = next((o for o in found if o.rel == OWNER), None)
        if owner is not None:
            self.check_owner(data_id)
            return
        if found:
            raise StoreError(
                f"`data` {self.root!r} already holds {len(found)} file(s) that are not this "
                "session's tables: choose an empty prefix"
            )
        self.storage.write_atomic(OWNER, data_id.encode())

    def check_owner(self, data_id: str) -> None:
        """Raise unless the prefix names this session as its owner."""
        try:
            held = self.storage.read(OWNER).decode(errors="replace").strip()
        except StorageError as exc:
            if "no such object" not in exc.reason:
                raise
            held = ""
        if held != data_id:
            raise StoreError(
                f"`data` {self.root!r} does not hold this session's tables "
                f"({'another session owns it' if held else 'its owner mark is missing'})"
            )

    def remove_unlisted(self, listed: set[str]) -> int:
        """Remove parts no catalog transaction listed (uploads of a cut run); return how many."""
        removed = 0
        for obj in self.storage.list():
            if obj.rel.startswith(("batches/", "tables/")) and obj.rel not in listed:
                self.storage.remove(obj.rel)
                removed += 1
        return removed

    # -- reading ---------------------------------------------------------------------------

    def register(self, con: duckdb.DuckDBPyConnection) -> None:
        """Let ``con`` read the parts (DuckDB's own httpfs is not needed)."""
        import duckdb

        try:
            con.register_filesystem(self.storage.fs)
        except duckdb.Error as exc:  # the same database's other handle registered it
            if "already" not in str(exc).lower():
                raise

    def prime(self) -> None:
        """List the prefix once, so that reads take each part's size from the listing.

        Without it DuckDB's reads ask for each part's details again and again
        (about nine HEAD requests per part to build the views); parts never
        change, so the listing stays true until this process uploads another.
        """
        fs = self.storage.fs
        try:
            fs.invalidate_cache()
            fs.find(self.storage._base, detail=True)
        except Exception:  # only a speed-up: the reads themselves report a fault
            pass

    def _arrow_fs(self) -> Any:
        if self._pafs is None:
            from pyarrow.fs import FSSpecHandler, PyFileSystem

            self._pafs = PyFileSystem(FSSpecHandler(self.storage.fs))
        return self._pafs

    def _key(self, url: str) -> str:
        return str(self.storage.fs._strip_protocol(url))

    def read_schema(self, url: str) -> pa.Schema:
        """The Arrow schema of one part (reads its footer only)."""
        import pyarrow.parquet as pq

        try:
            return pq.read_schema(self._key(url), filesystem=self._arrow_fs())
        except Exception as exc:
            from gantry.storage._fs import storage_error

            raise storage_error(url, exc) from exc

    def read_table(self, url: str, columns: list[str] | None = None) -> pa.Table:
        """One whole part (or some of its columns)."""
        import pyarrow.parquet as pq

        try:
            return pq.read_table(self._key(url), columns=columns, filesystem=self._arrow_fs())
        except Exception as exc:
            from gantry.storage._fs import storage_error

            raise storage_error(url, exc) from exc

    def num_rows(self, url: str) -> int:
        """Rows in one part (its footer only)."""
        import pyarrow.parquet as pq

        with self._arrow_fs().open_input_file(self._key(url)) as fh:
            return int(pq.read_metadata(fh).num_rows)

    def scan(self, urls: list[str], schema: pa.Schema) -> pl.LazyFrame:
        """A Polars LazyFrame over parts, columns missing from a part read as null."""
        import polars as pl
        import pyarrow.dataset as ds

        dataset = ds.dataset(
            [self._key(u) for u in urls],
            schema=schema,
            format="parquet",
            filesystem=self._arrow_fs(),
        )
        return pl.scan_pyarrow_dataset(dataset)

    # -- writing ---------------------------------------------------------------------------

    def upload(self, local: str | os.PathLike[str], rel: str) -> None:
        """Publish one finished local Parquet file as the part ``rel`` (whole or not at all)."""
        self.storage.publish(local, rel)

    def remove(self, rels: list[str]) -> None:
        """Remove parts the catalog no longer lists; a failure only leaves an orphan."""
        for rel in rels:
            try:
                self.storage.remove(rel)
            except StorageError:
                pass  # removed by the next writer's clean-up


def batch_rels(staged: Path) -> list[tuple[str, str, Path]]:
    """``(table, rel, local file)`` of every Parquet file of a staged batch folder."""
    return [
        (f.stem, f"batches/{staged.name}/{f.name}", f) for f in sorted(staged.glob("*.parquet"))
    ]


def new_part_name() -> str:
    """A fresh, never reused name for a derived table's part."""
    return f"part-{uuid.uuid4().hex}.parquet"
