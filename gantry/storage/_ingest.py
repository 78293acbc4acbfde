"""Ingest from object storage: list a prefix, read each header by ranged requests.

Each object is read through :class:`RangedFile`: the header walker asks for the
first block (8 KiB), then for more only while the header goes on, and seeks over
pixel data without fetching it, so the bytes fetched stay close to the header's
size.  The objects of a batch are read by many threads at once (the requests
overlap; the parsing is quick), and a batch is committed with one ``objects``
shard recording each object's ETag and version: a later run skips an object
whose ETag is unchanged and reads again one that changed.

A request that fails (the endpoint went away, credentials were refused, throttling
outlasted the retries) stops the run with :class:`~gantry.errors.StorageError`;
the objects of unfinished batches are not recorded at all, so the next run reads
them.  Nothing is recorded as skipped for a fault of the network.
"""

from __future__ import annotations

import io
import os
import sys
import time
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import pyarrow as pa
import pyarrow.parquet as pq

from gantry._progress import tqdm
from gantry.errors import StorageError
from gantry.ingest._limits import OVER_LIMIT, IngestLimits
from gantry.storage._fs import (
    ObjectInfo,
    Storage,
    apply_sdk_environment,
    open_storage,
    sdk_environment,
    storage_error,
)
from gantry.store import Store
from gantry.store._layout import EXPORT_MARKER

__all__ = ["OBJECTS_SCHEMA", "RangedFile", "ingest_objects", "run_remote_ingest"]

OBJECTS_SCHEMA: Final = pa.schema(
    [
        ("file_path", pa.string()),
        ("file_id", pa.int64()),
        ("size", pa.int64()),
        ("etag", pa.string()),
        ("version", pa.string()),
        ("mtime", pa.float64()),
        ("bytes_fetched", pa.int64()),
    ]
)
"""The ``objects`` table: one row per object read, written in the same batch as its rows."""

CONCURRENCY: Final = 32
"""Objects read at once in one batch (threads; each object's requests run in order)."""

FIRST_BLOCK: Final = 4096
"""Bytes of an object asked for first; each further request at least doubles what is held,
so a header of 2 KiB or more costs at most twice its size."""

BATCH: Final = (32, 500)
"""Objects per committed batch: at least, at most."""


class RangedFile(io.RawIOBase):
    """A read-only, seekable view of one object; every ``read`` is one ranged request.

    ``fetched`` and ``requests`` count what was asked of the server.  The object's
    version (when known) pins every request to the version that was listed.

    Examples
    --------
    >>> from gantry.storage import open_storage
    >>> st = open_storage("memory://gantry-ranged")
    >>> st.write_atomic("f.bin", bytes(range(100)))
    >>> f = RangedFile(st, st.url("f.bin"), 100)
    >>> _ = f.seek(10); f.read(3), f.fetched, f.requests
    (b'\\n\\x0b\\x0c', 3, 1)
    """

    def __init__(self, storage: Storage, path: str, size: int, version: str | None = None):
        super().__init__()
        self.storage = storage
        self.path = path
        self.size = size
        self.version = version
        self.pos = 0
        self.fetched = 0
        self.requests = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self.pos

    def seek(self, offset: int, whence: int = 0) -> int:
        base = {0: 0, 1: self.pos, 2: self.size}[whence]
        self.pos = max(0, base + offset)
        return self.pos

    def read(self, size: int | None = -1) -> bytes:
        end = self.size if size is None or size < 0 else min(self.size, self.pos + size)
        if end <= self.pos:
            return b""
        data = self.storage.read_range(self.path, self.pos, end, self.version)
        self.requests += 1
        self.fetched += len(data)
        self.pos += len(data)
        return data

    def readinto(self, buffer: Any) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


@dataclass
class _Read:
    obj: ObjectInfo
    rows: Any = None  # Rows of an indexed object
    info: Any = None  # HeaderInfo
    parser: str = ""
    skipped: tuple[str, str] | None = None
    fetched: int = 0


def _read_object(obj: ObjectInfo, storage: Storage, limits: IngestLimits) -> _Read:
    """Read one object's header; a bad file becomes a skip, a failed request raises."""
    from gantry.ingest._batch import _check_frames, internal_detail
    from gantry.ingest._reference import read_reference
    from gantry.ingest._values import NeedsPydicom, SkipFile
    from gantry.ingest._walker import Rows, read_fast

    out = _Read(obj)
    if obj.size == 0:
        out.skipped = ("empty", "zero-byte file")
        return out
    raw = RangedFile(storage, obj.path, obj.size, obj.version)
    rows = Rows()
    try:
        try:
            out.info = read_fast(
                obj.path, obj.size, rows, limits, stream=raw, first_block=FIRST_BLOCK
            )
            out.parser = "fast"
        except NeedsPydicom:
            rows = Rows()
            raw.seek(0)
            buffered = io.BufferedReader(raw, buffer_size=1 << 16)
            out.info = read_reference(obj.path, obj.size, rows, limits, stream=buffered)
            out.parser = "pydicom"
        _check_frames(out.info, limits)
        out.rows = rows
    except StorageError:
        raise
    except SkipFile as skip:
        out.skipped = (skip.reason, skip.detail)
    except MemoryError:
        out.skipped = (OVER_LIMIT, "ran out of memory reading the header")
    except OSError as exc:
        raise storage_error(obj.path, exc) from exc
    except Exception as exc:  # a reader bug must not sink the batch
        out.skipped = ("unreadable", internal_detail(exc))
    out.fetched = raw.fetched
    return out


def read_objects(
    objects: Sequence[ObjectInfo],
    storage: Storage,
    limits: IngestLimits | None = None,
    *,
    concurrency: int = CONCURRENCY,
) -> tuple[Any, pa.Table]:
    """Read `objects` concurrently into a :class:`~gantry.ingest.BatchResult` and ``objects``."""
    from gantry.ingest._batch import BatchResult, _elements, _instances, _skipped
    from gantry.ingest._ids import file_id
    from gantry.ingest._walker import Rows

    limits = limits or IngestLimits()
    with ThreadPoolExecutor(max(1, min(concurrency, len(objects)))) as pool:
        reads = list(pool.map(lambda o: _read_object(o, storage, limits), objects))
    rows = Rows()
    counts: list[int] = []
    files = []
    skipped = []
    for r in reads:
        o = r.obj
        if r.skipped is not None:
            skipped.append((o.path, o.size, o.mtime, *r.skipped))
            continue
        for mine, theirs in zip(rows.columns(), r.rows.columns(), strict=True):
            mine.extend(theirs)
        counts.append(len(r.rows))
        files.append((file_id(o.path), o.path, o.size, o.mtime or 0.0, r.info, r.parser))
    batch = BatchResult(
        _instances(files), _elements(rows, [f[0] for f in files], counts), _skipped(skipped)
    )
    table = pa.table(
        {
            "file_path": [r.obj.path for r in reads],
            "file_id": [file_id(r.obj.path) for r in reads],
            "size": [r.obj.size for r in reads],
            "etag": [r.obj.etag for r in reads],
            "version": [r.obj.version for r in reads],
            "mtime": [r.obj.mtime for r in reads],
            "bytes_fetched": [r.fetched for r in reads],
        },
        schema=OBJECTS_SCHEMA,
    )
    return batch, table


def ingest_objects(
    objects: list[ObjectInfo],
    stage: str,
    limits: IngestLimits | None,
    root: str,
    storage_options: Mapping[str, Any] | None = None,
    concurrency: int = CONCURRENCY,
    sdk_env: Mapping[str, str] | None = None,
) -> Any:
    """The per-batch task of a remote ingest: read, then write the batch's shards to `stage`.

    Runs in a worker process like :func:`gantry.ingest.ingest_batch`; it never
    touches the catalog, so a retried task cannot duplicate anything.
    """
    from gantry.ingest._runner import _write_stage

    apply_sdk_environment(sdk_env)
    storage = open_storage(root, storage_options)
    batch, table = read_objects(objects, storage, limits, concurrency=concurrency)
    outcome = _write_stage(batch, stage, len(objects))
    pq.write_table(table, Path(stage) / "objects.parquet", compression="zstd")
    fetched = int(sum(table.column("bytes_fetched").to_pylist()))
    return outcome.__class__(**{**outcome.__dict__, "bytes_read": fetched})


def list_sources(
    urls: Sequence[str], options: Mapping[str, Any] | None
) -> tuple[list[tuple[str, ObjectInfo]], list[str]]:
    """``(root, object)`` for every object under `urls`, and the export folders met."""
    found: dict[str, tuple[str, ObjectInfo]] = {}
    marked: list[str] = []
    for url in urls:
        storage = open_storage(url, options)
        objects = storage.list()
        exports = {
            o.rel.rsplit("/", 1)[0] if "/" in o.rel else ""
            for o in objects
            if o.rel.split("/")[-1] == EXPORT_MARKER
        }
        for o in objects:
            parts = o.rel.split("/")
            if any(p.startswith(".") for p in parts[:-1]) or o.rel.split("/")[-1] == EXPORT_MARKER:
                continue
            if any(o.rel == e or o.rel.startswith(e + "/") or e == "" for e in exports):
                continue
            found.setdefault(o.path, (url, o))
        marked += [storage.url(e) for e in sorted(exports)]
    return list(found.values()), marked


def _known(store: Store) -> tuple[set[str], dict[str, str | None]]:
    """Paths already indexed or skipped, and the ETag each object had when it was read."""
    known = store.sql("SELECT file_path FROM instances UNION ALL SELECT file_path FROM skipped")
    paths = set(known["file_path"].to_list()) if known.height else set()
    etags: dict[str, str | None] = {}
    if store.files_of("objects"):
        for path, etag in store.sql("SELECT file_path, etag FROM objects").iter_rows():
            etags[path] = etag
    return paths, etags


def run_remote_ingest(
    store: Store,
    urls: Iterable[str],
    *,
    storage_options: Mapping[str, Any] | None = None,
    workers: int | None = None,
    executor: Executor | None = None,
    progress: bool | None = None,
    callback: Any = None,
    limits: IngestLimits | None = None,
    concurrency: int = CONCURRENCY,
    listed: tuple[list[tuple[str, ObjectInfo]], list[str]] | None = None,
) -> Any:
    """Index every object under `urls`; see :meth:`gantry.Session.ingest`.

    ``listed`` is :func:`list_sources` of `urls` when the caller has it already.
    """
    from gantry.ingest._runner import IngestResult, _commit, _record_export_folders, run_tasks

    urls = [str(u).rstrip("/") for u in urls]
    limits = IngestLimits.of(limits)
    started = time.perf_counter()
    result = IngestResult()
    with store.run("ingest", {"paths": urls}) as counts:
        listed_objects, marked = listed or list_sources(urls, storage_options)
        result.files_seen = len(listed_objects)
        paths, etags = _known(store)
        _record_export_folders(store, [m for m in marked if m not in paths], result, mtime=0.0)
        todo = [
            (root, o)
            for root, o in listed_objects
            if o.path not in paths or (o.path in etags and etags[o.path] != o.etag)
        ]
        changed = {o.path for _, o in todo if o.path in paths}
        result.already_indexed = len(listed_objects) - len(todo)
        n_workers = max(1, workers if workers is not None else min(2, os.cpu_count() or 1))
        by_root: dict[str, list[ObjectInfo]] = {}
        for root, o in todo:
            by_root.setdefault(root, []).append(o)
        size = min(BATCH[1], max(BATCH[0], -(-len(todo) // (n_workers * 4))))
        jobs = [
            (root, objs[i : i + size])
            for root, objs in by_root.items()
            for i in range(0, len(objs), size)
        ]
        show = progress if progress is not None else sys.stderr.isatty()
        bar = tqdm(total=len(todo), unit="file", desc="indexing", disable=not show)

        def commit(outcome: Any, batch: list[ObjectInfo]) -> None:
            again = [o.path for o in batch if o.path in changed]
            if again:  # the old rows go first: a cut in between only means reading again
                store.forget_files(again)
            _commit(store, outcome, result, bar, callback, len(todo))

        env = sdk_environment()  # the workers' fork server may hold an older environment

        def task(root: str, batch: list[ObjectInfo]) -> tuple[Any, ...]:
            stage = str(store.stage_dir("batch"))
            return (ingest_objects, batch, stage, limits, root, storage_options, concurrency, env)

        try:  # a failed task (a network fault) stops the run: the next one resumes
            run_tasks(
                jobs,
                lambda job: task(*job),
                lambda outcome, job: commit(outcome, job[1]),
                workers=n_workers,
                executor=executor,
            )
        finally:
            bar.close()
            result.seconds = time.perf_counter() - started
            counts.update(result.as_dict())
            store.refresh_views()
    return result
