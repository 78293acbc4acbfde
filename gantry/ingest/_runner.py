"""Run an ingest: scan, split into batches, read in worker processes, commit atomically."""

from __future__ import annotations

import math
import os
import sys
import time
import uuid
from collections.abc import Callable, Iterable
from concurrent.futures import Executor, Future, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import pyarrow as pa
import pyarrow.parquet as pq

from gantry._lifeline import LifelinePool
from gantry._pool import pool_context, warm_pool
from gantry._progress import tqdm
from gantry.ingest._limits import IngestLimits
from gantry.ingest._scan import iter_files
from gantry.store import Store

if TYPE_CHECKING:
    from gantry.ingest._batch import BatchResult

ProgressCallback = Callable[[int, int], None]
"""Called as ``callback(files_done, files_total)`` after each committed batch."""

MAX_BATCH = 1000
"""Upper bound of files per batch (one Parquet shard per table per batch)."""

MIN_BATCH = 250
"""Files per batch below which a batch's fixed costs (building its typed columns, writing
four Parquet shards, one commit) outweigh the finer load balance of smaller batches."""


@dataclass
class IngestResult:
    """What one ``ingest`` call did.

    Attributes
    ----------
    files_seen : files found under the given paths
    already_indexed : files skipped because a previous run indexed or recorded them
    indexed : instances added to ``instances``
    skipped : files recorded in ``skipped`` by this run (with a reason)
    elements : rows added to ``elements``
    batches : batches committed
    seconds : wall time
    """

    files_seen: int = 0
    already_indexed: int = 0
    indexed: int = 0
    skipped: int = 0
    elements: int = 0
    batches: int = 0
    bytes_read: int = 0
    seconds: float = 0.0
    skipped_by_reason: dict[str, int] = field(default_factory=dict)

    @property
    def files_per_second(self) -> float:
        done = self.indexed + self.skipped
        return done / self.seconds if self.seconds > 0 else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "files_seen": self.files_seen,
            "already_indexed": self.already_indexed,
            "indexed": self.indexed,
            "skipped": self.skipped,
            "elements": self.elements,
            "batches": self.batches,
            "bytes_read": self.bytes_read,
            "seconds": round(self.seconds, 3),
            "skipped_by_reason": self.skipped_by_reason,
        }


@dataclass(frozen=True)
class BatchOutcome:
    stage: str
    files: int
    instances: int
    skipped: int
    elements: int
    bytes_read: int
    skipped_reasons: dict[str, int]


def ingest_batch(paths: list[str], stage: str, limits: IngestLimits | None = None) -> BatchOutcome:
    """Read one batch of files and write its three shards into the folder ``stage``.

    This is the task that runs in a worker process (or on a cluster worker): it
    never touches the catalog, and writing the same batch twice only overwrites
    its own staging folder, so a retried task cannot duplicate anything.  If
    the batch as a whole fails (a reader bug the per-file guards missed), it is
    read again file by file, and a file that still fails is recorded in
    ``skipped`` with the kind of error.
    """
    from gantry.ingest._batch import read_batch

    try:
        result = read_batch(paths, limits=limits)
    except Exception:
        result = _file_by_file(paths, limits)
    return _write_stage(result, stage, len(paths))


def _write_stage(result: BatchResult, stage: str, files: int) -> BatchOutcome:
    from gantry.sr import content_table

    tables = {
        "elements": result.elements,
        "skipped": result.skipped,
        "sr_content": content_table(result.elements),  # never raises for a file's content
        "instances": result.instances,
    }
    out = Path(stage)
    out.mkdir(parents=True, exist_ok=True)
    for name, table in tables.items():
        # a private name, then a rename: two attempts of one task (a cluster worker
        # presumed dead but still running) never interleave bytes in one shard
        tmp = out / f".{name}.parquet.{uuid.uuid4().hex}.tmp"
        pq.write_table(table, tmp, compression="zstd")
        os.replace(tmp, out / f"{name}.parquet")
    reasons: dict[str, int] = {}
    for r in result.skipped.column("reason").to_pylist():
        reasons[r] = reasons.get(r, 0) + 1
    sizes = result.instances.column("file_size").to_pylist()
    return BatchOutcome(
        stage=stage,
        files=files,
        instances=result.instances.num_rows,
        skipped=result.skipped.num_rows,
        elements=result.elements.num_rows,
        bytes_read=int(sum(s for s in sizes if s is not None)),
        skipped_reasons=reasons,
    )


def _file_by_file(paths: list[str], limits: IngestLimits | None) -> BatchResult:
    """Read `paths` one at a time; a file whose read raises becomes a ``skipped`` row."""
    from gantry.ingest._batch import internal_detail, read_batch

    parts: list[BatchResult] = []
    failed: list[tuple[str, str]] = []
    for path in paths:
        try:
            parts.append(read_batch([path], limits=limits))
        except Exception as exc:
            failed.append((path, internal_detail(exc)))
    return _combine(parts, failed)


def _combine(parts: list[BatchResult], failed: list[tuple[str, str]]) -> BatchResult:
    from gantry.ingest._batch import (
        ELEMENTS_SCHEMA,
        INSTANCES_SCHEMA,
        SKIPPED_SCHEMA,
        BatchResult,
    )

    rows = []
    for path, detail in failed:
        try:
            st = os.stat(path)
            size, mtime = st.st_size, st.st_mtime
        except OSError:
            size, mtime = None, None
        rows.append((path, size, mtime, "unreadable", detail))
    extra = pa.Table.from_pylist(
        [dict(zip(SKIPPED_SCHEMA.names, r, strict=True)) for r in rows], schema=SKIPPED_SCHEMA
    )

    def concat(tables: list[pa.Table], empty: pa.Schema) -> pa.Table:
        tables = [t for t in tables if t.num_rows] or [empty.empty_table()]
        return pa.concat_tables(tables, promote_options="permissive")

    return BatchResult(
        concat([p.instances for p in parts], INSTANCES_SCHEMA),
        concat([p.elements for p in parts], ELEMENTS_SCHEMA),
        concat([*(p.skipped for p in parts), extra], SKIPPED_SCHEMA),
    )


def _known_paths(store: Store) -> set[str]:
    known = store.sql("SELECT file_path FROM instances UNION ALL SELECT file_path FROM skipped")
    return set(known["file_path"].to_list()) if known.height else set()


def _batches(paths: list[str], workers: int) -> list[list[str]]:
    """Split ``paths`` into batches that shrink towards the end of the run.

    A batch holds about a quarter of a worker's share (at most ``MAX_BATCH``), but
    never more than half a worker's share of the files still left, so the last
    batches are small and every worker finishes at about the same time; no batch is
    smaller than ``MIN_BATCH`` (or a worker's share, if smaller), whose fixed costs
    would otherwise dominate.

    Examples
    --------
    >>> [len(b) for b in _batches([str(i) for i in range(5000)], 2)]
    [625, 625, 625, 625, 625, 469, 352, 264, 250, 250, 250, 40]
    """
    if not paths:
        return []
    share = math.ceil(len(paths) / workers)
    floor = min(MIN_BATCH, share)
    size = max(1, min(MAX_BATCH, max(math.ceil(share / 4), floor)))
    out: list[list[str]] = []
    start = 0
    while start < len(paths):
        left = math.ceil((len(paths) - start) / (2 * workers))
        step = max(1, min(size, max(left, floor)))
        out.append(paths[start : start + step])
        start += step
    return out


def run_ingest(
    store: Store,
    paths: Iterable[str | os.PathLike[str]],
    *,
    workers: int | None = None,
    executor: Executor | None = None,
    progress: bool | None = None,
    callback: ProgressCallback | None = None,
    limits: IngestLimits | None = None,
) -> IngestResult:
    """Index every file under ``paths`` into ``store``; see :meth:`gantry.Session.ingest`."""
    limits = IngestLimits.of(limits)
    started = time.perf_counter()
    result = IngestResult()
    if executor is None:
        warm_pool(workers)  # the workers' imports overlap the walk of the inputs
    with store.run("ingest", {"paths": [os.path.abspath(os.fspath(p)) for p in paths]}) as counts:
        marked: list[str] = []
        found = list(iter_files(paths, marked=marked))
        result.files_seen = len(found)
        known = _known_paths(store)
        _record_export_folders(store, [m for m in marked if m not in known], result)
        todo = [p for p in found if p not in known]
        result.already_indexed = len(found) - len(todo)
        n_workers = max(1, workers if workers is not None else (os.cpu_count() or 1))
        batches = _batches(todo, n_workers)
        show = progress if progress is not None else sys.stderr.isatty()
        bar = tqdm(
            total=len(todo), unit="file", desc="indexing", disable=not show, dynamic_ncols=True
        )
        try:
            retry: list[list[str]] = []  # a worker died or the task failed: retry per file
            run_tasks(
                batches,
                lambda batch: (ingest_batch, batch, str(store.stage_dir("batch")), limits),
                lambda outcome, _: _commit(store, outcome, result, bar, callback, len(todo)),
                workers=n_workers,
                executor=executor,
                failed=retry,
            )
            for batch in retry:
                for path in batch:
                    outcome = _isolated(store, path, limits, executor)
                    _commit(store, outcome, result, bar, callback, len(todo))
        finally:
            bar.close()
            result.seconds = time.perf_counter() - started
            counts.update(result.as_dict())
            store.refresh_views()
    return result


J = TypeVar("J")


def run_tasks(
    jobs: list[J],
    task: Callable[[J], tuple[Any, ...]],
    commit: Callable[[Any, J], None],
    *,
    workers: int,
    executor: Executor | None,
    failed: list[J] | None = None,
) -> None:
    """Run each job's task and commit its outcome here, in the order the tasks finish.

    ``task(job)`` gives ``(function, *args)``; it runs in this process when there is
    one worker (or one job) and no ``executor``, else on ``executor`` or a pool of
    ``workers`` processes made (and shut down) here.  ``commit(outcome, job)`` runs
    in this process.  A task that raises on a pool goes to ``failed`` when given
    (the caller retries it), else its error stops the run (tasks not started are
    cancelled; what was committed stays).  Used by local and remote ingest.
    """
    if executor is None and (workers == 1 or len(jobs) <= 1):
        for job in jobs:
            fn, *args = task(job)
            commit(fn(*args), job)
        return
    own = executor is None
    ex = executor or LifelinePool(workers, pool_context())
    try:
        futures: dict[Future[Any], J] = {}
        for job in jobs:
            fn, *args = task(job)
            futures[ex.submit(fn, *args)] = job
        for fut in as_completed(futures):
            try:
                outcome = fut.result()
            except Exception:
                if failed is None:
                    raise
                failed.append(futures[fut])
                continue
            commit(outcome, futures[fut])
    finally:
        if own:
            ex.shutdown(wait=True, cancel_futures=True)


EXPORT_FOLDER_REASON = "export_folder"


def _record_export_folders(
    store: Store, folders: list[str], result: IngestResult, *, mtime: float | None = None
) -> None:
    """Record each export folder met (not read) as one ``skipped`` row, in a batch of its own."""
    if not folders:
        return
    import pyarrow as pa

    from gantry.ingest._batch import ELEMENTS_SCHEMA, INSTANCES_SCHEMA, SKIPPED_SCHEMA
    from gantry.sr import SR_CONTENT_SCHEMA

    stage = store.stage_dir("batch")
    skipped = pa.table(
        {
            "file_path": folders,
            "file_size": [None] * len(folders),
            "file_mtime": [os.stat(f).st_mtime if mtime is None else mtime for f in folders],
            "reason": [EXPORT_FOLDER_REASON] * len(folders),
            "detail": ["a gantry export folder (it holds the export marker): not read"]
            * len(folders),
        },
        schema=SKIPPED_SCHEMA,
    )
    for name, table in (
        ("elements", ELEMENTS_SCHEMA.empty_table()),
        ("skipped", skipped),
        ("sr_content", SR_CONTENT_SCHEMA.empty_table()),
        ("instances", INSTANCES_SCHEMA.empty_table()),
    ):
        pq.write_table(table, stage / f"{name}.parquet", compression="zstd")
    store.commit_batch(stage)
    result.batches += 1
    result.skipped += len(folders)
    result.skipped_by_reason[EXPORT_FOLDER_REASON] = len(folders)


def _isolated(
    store: Store, path: str, limits: IngestLimits, executor: Executor | None
) -> BatchOutcome:
    """Read one file in a task of its own; if that task fails too, record the file as skipped."""
    stage = str(store.stage_dir("batch"))
    own = executor is None
    ex = executor or LifelinePool(1, pool_context())
    try:
        return ex.submit(ingest_batch, [path], stage, limits).result()
    except Exception as exc:
        result = _combine(
            [], [(path, f"reading the file stopped its worker ({type(exc).__name__})")]
        )
        return _write_stage(result, stage, 1)
    finally:
        if own:
            ex.shutdown(wait=True, cancel_futures=True)


def _commit(
    store: Store,
    outcome: BatchOutcome,
    result: IngestResult,
    bar: Any,
    callback: ProgressCallback | None,
    total: int,
) -> None:
    store.commit_batch(Path(outcome.stage))
    result.batches += 1
    result.indexed += outcome.instances
    result.skipped += outcome.skipped
    result.elements += outcome.elements
    result.bytes_read += outcome.bytes_read
    for reason, n in outcome.skipped_reasons.items():
        result.skipped_by_reason[reason] = result.skipped_by_reason.get(reason, 0) + n
    bar.update(outcome.files)
    if bar.n:
        bar.set_postfix_str(f"{result.indexed} indexed, {result.skipped} skipped")
    if callback is not None:
        callback(result.indexed + result.skipped, total)
