"""Run an ingest: scan, split into batches, read in worker processes, commit atomically."""

from __future__ import annotations

import math
import multiprocessing
import os
import sys
import time
import uuid
from collections.abc import Callable, Iterable
from concurrent.futures import Executor, Future, ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
from tqdm.auto import tqdm

from gantry.ingest._scan import iter_files
from gantry.store import Store

ProgressCallback = Callable[[int, int], None]
"""Called as ``callback(files_done, files_total)`` after each committed batch."""

MAX_BATCH = 1000
"""Upper bound of files per batch (one Parquet shard per table per batch)."""


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


def ingest_batch(paths: list[str], stage: str) -> BatchOutcome:
    """Read one batch of files and write its three shards into the folder ``stage``.

    This is the task that runs in a worker process (or on a cluster worker): it
    never touches the catalog, and writing the same batch twice only overwrites
    its own staging folder, so a retried task cannot duplicate anything.
    """
    from gantry.ingest._batch import read_batch
    from gantry.sr import content_table

    result = read_batch(paths)
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
        files=len(paths),
        instances=result.instances.num_rows,
        skipped=result.skipped.num_rows,
        elements=result.elements.num_rows,
        bytes_read=int(sum(s for s in sizes if s is not None)),
        skipped_reasons=reasons,
    )


def _known_paths(store: Store) -> set[str]:
    known = store.sql("SELECT file_path FROM instances UNION ALL SELECT file_path FROM skipped")
    return set(known["file_path"].to_list()) if known.height else set()


def _batches(paths: list[str], workers: int) -> list[list[str]]:
    if not paths:
        return []
    size = max(1, min(MAX_BATCH, math.ceil(len(paths) / (workers * 4))))
    return [paths[i : i + size] for i in range(0, len(paths), size)]


def run_ingest(
    store: Store,
    paths: Iterable[str | os.PathLike[str]],
    *,
    workers: int | None = None,
    executor: Executor | None = None,
    progress: bool | None = None,
    callback: ProgressCallback | None = None,
) -> IngestResult:
    """Index every file under ``paths`` into ``store``; see :meth:`gantry.Session.ingest`."""
    started = time.perf_counter()
    result = IngestResult()
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
            if executor is None and (n_workers == 1 or len(batches) <= 1):
                for batch in batches:
                    stage = store.stage_dir("batch")
                    _commit(
                        store, ingest_batch(batch, str(stage)), result, bar, callback, len(todo)
                    )
            else:
                own = executor is None
                ex = executor or ProcessPoolExecutor(
                    max_workers=n_workers, mp_context=multiprocessing.get_context("forkserver")
                )
                try:
                    futures: list[Future[BatchOutcome]] = [
                        ex.submit(ingest_batch, batch, str(store.stage_dir("batch")))
                        for batch in batches
                    ]
                    for fut in as_completed(futures):
                        _commit(store, fut.result(), result, bar, callback, len(todo))
                finally:
                    if own:
                        ex.shutdown(wait=True, cancel_futures=True)
        finally:
            bar.close()
            result.seconds = time.perf_counter() - started
            counts.update(result.as_dict())
            store.refresh_views()
    return result


EXPORT_FOLDER_REASON = "export_folder"


def _record_export_folders(store: Store, folders: list[str], result: IngestResult) -> None:
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
            "file_mtime": [os.stat(f).st_mtime for f in folders],
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
