"""Run an export: select, exclude, fan out to workers, record, write manifests."""

from __future__ import annotations

import json
import os
import sys
import time
from collections import defaultdict
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import Executor, as_completed
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

import polars as pl

from gantry._lifeline import LifelinePool
from gantry._messages import log_warnings
from gantry._pool import pool_context, warm_pool
from gantry._progress import tqdm
from gantry.errors import ConfigError, ExportError
from gantry.export._apply import (
    ExportItem,
    ExportOutcome,
    clean_staging,
    export_items,
    staging_file,
)
from gantry.export._session_inputs import _name_suffixes, _out_paths, _session_edits
from gantry.export._verification import acknowledged, instance_tokens
from gantry.store import Store
from gantry.store._layout import EXPORT_MARKER

EXPORTS_TABLE = "exports"
MANIFEST_COLUMNS = [
    "output_path",
    "PatientID",
    "StudyInstanceUID",
    "SeriesInstanceUID",
    "SOPInstanceUID",
    "Modality",
    "SeriesDescription",
    "TransferSyntaxUID",
    "size",
    "sha256",
    "redacted_boxes",
]


@dataclass
class ExportResult:
    """What one export did.

    ``excluded`` and ``failed`` are frames of ``file_id, reason`` (session-side
    identifiers only: nothing identifying is written into the destination).
    """

    dest: Path
    selected: int = 0
    exported: int = 0
    already_done: int = 0
    excluded: pl.DataFrame = field(
        default_factory=lambda: pl.DataFrame(schema={"file_id": pl.Int64, "reason": pl.String})
    )
    failed: pl.DataFrame = field(
        default_factory=lambda: pl.DataFrame(schema={"file_id": pl.Int64, "reason": pl.String})
    )
    bytes_written: int = 0
    pixels_copied: int = 0
    seconds: float = 0.0
    planned_again: int = 0
    """Selected instances the stored plan did not cover, planned again before writing."""
    token_seconds: float = 0.0
    """Time to gather the original values verification searches for (before writing)."""
    verify_seconds: float = 0.0
    """Time the workers spent verifying written files, summed over files."""
    warnings: int = 0
    """Third-party warnings about the input files raised while writing (logged masked)."""

    @property
    def ok(self) -> bool:
        """True when no selected instance failed."""
        return self.failed.height == 0

    @property
    def files_per_second(self) -> float:
        return self.exported / self.seconds if self.seconds > 0 else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "dest": str(self.dest),
            "selected": self.selected,
            "exported": self.exported,
            "already_done": self.already_done,
            "excluded": self.excluded.height,
            "failed": self.failed.height,
            "bytes_written": self.bytes_written,
            "pixels_copied": self.pixels_copied,
            "seconds": round(self.seconds, 3),
            "planned_again": self.planned_again,
            "token_seconds": round(self.token_seconds, 3),
            "verify_seconds": round(self.verify_seconds, 3),
            "warnings": self.warnings,
        }


def selected_ids(store: Store, query: str | None) -> pl.DataFrame:
    """``file_id`` of the instances ``query`` (a SQL ``WHERE`` over ``instances``) selects."""
    where = f"WHERE {query}" if query else ""
    return store.sql(f"SELECT file_id FROM instances {where}")


def check_compression(compression: str | None) -> str | None:
    """Normalise ``compression`` or raise ``ConfigError`` naming the valid choices.

    Called before anything runs, so a typo never fails every instance one by one.

    Examples
    --------
    >>> check_compression("J2K"), check_compression(None)
    ('j2k', None)
    >>> check_compression("jpeg2000")
    Traceback (most recent call last):
    ...
    gantry.errors.ConfigError: `compression` must be None or one of 'none', 'rle', ...
    """
    if compression is None:
        return None
    from gantry.pixels import Compression

    try:
        return Compression(str(compression).strip().lower()).value
    except ValueError:
        raise ConfigError(
            "compression",
            expected="None or one of " + ", ".join(repr(c.value) for c in Compression),
            got=compression,
        ) from None


def ingested_roots(store: Store) -> list[Path]:
    """The folders given to ``ingest`` in this session (from the ``runs`` table)."""
    rows = store.sql("SELECT details FROM runs WHERE kind = 'ingest'")
    roots: set[Path] = set()
    for text in rows["details"].to_list() if rows.height else []:
        for p in json.loads(text or "{}").get("paths", []):
            if not os.path.isfile(p):  # a folder (or one since removed)
                roots.add(Path(p))
    return sorted(roots)


def check_dest(store: Store, dest: str | os.PathLike[str]) -> Path:
    """Refuse a destination inside the session store or overlapping an ingested source.

    An export inside a source folder would be indexed by the next ingest of it
    (the export marker makes ingest skip it, but the two are kept apart anyway);
    a source inside the export folder would be read by the compliance report.
    """
    out = Path(dest).expanduser().absolute()
    data = store.layout.data_dir
    if out == data or data in out.parents:
        raise ExportError("`dest` must be outside the session store")
    for root in ingested_roots(store):
        if out == root or root in out.parents:
            raise ExportError(
                f"`dest` must be outside every ingested source folder, got {str(out)!r} "
                "inside one (the next ingest would read the exported copies)"
            )
        if out in root.parents:
            raise ExportError(
                f"`dest` must not contain an ingested source folder, got {str(out)!r} "
                "(choose a folder of its own)"
            )
    return out


def mark_export_folder(dest: Path) -> Path:
    """Write the marker that tells ``ingest`` this folder holds exported copies."""
    marker = dest / EXPORT_MARKER
    if not marker.exists():
        tmp = staging_file(dest)
        tmp.write_text(
            json.dumps({"kind": "gantry-export", "marked_at": datetime.now(UTC).isoformat()})
        )
        os.replace(tmp, marker)
    return marker


def _plan_decisions(store: Store) -> pl.DataFrame:
    """Instances the plan decided not to export (duplicate SOP Instance UIDs), with why."""
    from gantry.plan._coverage import coverage

    return (
        coverage(store)
        .filter(pl.col("status") != "planned")
        .select("file_id", pl.col("reason").fill_null("excluded by the plan"))
    )


def _exclusions(store: Store, config: Any, safe: bool) -> pl.DataFrame:
    frames = [_plan_decisions(store)]
    try:
        from gantry.model import excluded_file_ids
    except ImportError:
        excluded_file_ids = None  # type: ignore[assignment]
    if excluded_file_ids is not None:
        ids = excluded_file_ids(store)
        if len(ids):
            frames.append(
                pl.DataFrame(
                    {"file_id": list(ids), "reason": ["excluded by an edit"] * len(ids)},
                    schema={"file_id": pl.Int64, "reason": pl.String},
                )
            )
    from gantry.sr import document_exclusions  # encapsulated documents not checked clean

    if (documents := document_exclusions(store)).height:
        frames.append(documents)
    if safe:
        from gantry.audit import unresolved

        un = unresolved(store, config)
        if un.height:
            frames.append(
                un.group_by("file_id")
                .agg(pl.col("reason").unique().sort().str.join("; "))
                .select(pl.col("file_id").cast(pl.Int64), "reason")
            )
    if not frames:
        return pl.DataFrame(schema={"file_id": pl.Int64, "reason": pl.String})
    return pl.concat(frames).group_by("file_id").agg(pl.col("reason").str.join("; "))


def _plan_states(store: Store) -> dict[int, str]:
    """``file_id`` → the plan state it is covered by (config hash, batch, edit version)."""
    from gantry.plan._coverage import coverage

    cov = coverage(store).select(
        "file_id",
        pl.concat_str(
            "config_hash", "batch", pl.col("edits_version").cast(pl.String), separator="/"
        ).alias("state"),
    )
    return dict(cov.iter_rows())


def _done(store: Store, dest: Path, states: dict[int, str]) -> set[int]:
    """Instances already written to ``dest`` under the plan state that covers them now.

    A file written under another config, or before an edit, is written again.
    """
    if EXPORTS_TABLE not in store.table_names():
        return set()
    cols = set(store.sql(f"SELECT column_name FROM (DESCRIBE {EXPORTS_TABLE})")["column_name"])
    if "plan_state" not in cols:
        return set()
    rows = store.sql(
        f"SELECT file_id, output_path, size, plan_state FROM {EXPORTS_TABLE} "
        "WHERE dest = ? AND status = 'ok' ORDER BY exported_at",
        [str(dest)],
    ).unique("file_id", keep="last")
    done = set()
    for fid, rel, size, state in rows.iter_rows():
        p = dest / rel
        if state == states.get(fid) and p.is_file() and p.stat().st_size == size:
            done.add(fid)
    return done


def run_export(
    store: Store,
    dest: str | os.PathLike[str],
    *,
    config: Any,
    safe: bool = True,
    query: str | None = None,
    compression: str | None = None,
    workers: int | None = None,
    verify: bool = True,
    progress: bool | None = None,
    callback: Callable[[int, int], None] | None = None,
    executor: Executor | None = None,
    encrypt_key: bytes | None = None,
    source_options: Mapping[str, Any] | None = None,
) -> ExportResult:
    """Apply the persisted plan to the selected instances; see :meth:`gantry.Session.export`.

    Only instances the stored plan covers are written (:func:`gantry.plan._coverage.unplanned`
    lists the others, which are excluded with the reason); planning them again is
    the caller's choice (:meth:`gantry.Session.export` does unless ``strict``).
    """
    from gantry.plan._coverage import config_hash, unplanned

    started = time.perf_counter()
    compression = check_compression(compression)
    dest_path = check_dest(store, dest)
    selected = selected_ids(store, query)  # a bad query fails here, before any write
    result = ExportResult(dest=dest_path, selected=selected.height)
    if executor is None:
        warm_pool(workers, selected.height)  # the workers' imports overlap the planning below
    digest = config_hash(config)
    with store.run(
        "export",
        {
            "dest": str(dest_path),
            "query": query,
            "safe": safe,
            "compression": compression,
            "config_hash": digest,
            # false alarms the config allows (attribute and value hash, never a value)
            "acknowledged": [{"tag": t, "value_hash": h} for t, h in acknowledged(config)],
        },
    ) as counts:
        refused = unplanned(store, selected, digest)
        if safe:  # an OCR scan newer than the plan: its text would be written unredacted
            from gantry.plan._ocr import stale_ocr

            refused = pl.concat([refused, stale_ocr(store, config)])
        if getattr(getattr(config, "deface", None), "series", ()):  # never written with a face
            from gantry.deface._series import deface_refusals

            refused = pl.concat([refused, deface_refusals(store, config)])
        excluded = (
            pl.concat([refused, _exclusions(store, config, safe)])
            .group_by("file_id", maintain_order=True)
            .agg(pl.col("reason").str.join("; "))
            .join(selected, on="file_id", how="semi")
        )
        result.excluded = excluded
        states = _plan_states(store)
        done = _done(store, dest_path, states)
        todo_ids = selected.join(excluded, on="file_id", how="anti").filter(
            ~pl.col("file_id").is_in(list(done))
        )
        result.already_done = selected.height - excluded.height - todo_ids.height
        dest_path.mkdir(parents=True, exist_ok=True)
        mark_export_folder(dest_path)
        clean_staging(dest_path)  # what an interrupted export was writing
        n_workers = max(1, workers if workers is not None else (os.cpu_count() or 1))
        total = todo_ids.height
        size = _chunk_size(total, n_workers)
        show = progress if progress is not None else sys.stderr.isatty()
        bar = tqdm(total=total, unit="file", desc="exporting", disable=not show, dynamic_ncols=True)
        recorder = _Recorder(store, dest_path, bar, callback, states, total)
        owners = _owners(store, dest_path)
        gone: set[int] = set()

        def prepared() -> Iterator[list[ExportItem]]:
            """The items, a slice at a time: workers start on the first while the next is built."""
            for batch in _item_batches(
                store,
                todo_ids,
                compression,
                config,
                timing=result,
                sizes=_slice_sizes(total, size, n_workers),
            ):
                clashing = _clashing(batch, owners)
                if clashing:
                    gone.update(i.file_id for i in clashing)
                    batch = [i for i in batch if i.file_id not in gone]
                if safe:
                    _add_ocr_checks(store, batch)
                _add_overlay_checks(store, batch)
                for item in batch:
                    item.encrypt_key = encrypt_key
                yield batch

        args = {"verify": verify, "compression": compression}
        try:
            if executor is None and (n_workers == 1 or total <= size):
                for batch in prepared():
                    work = _export_task(batch, source_options)
                    for chunk in _chunks(batch, size):
                        recorder.add(work(chunk, str(dest_path), **args))
            else:
                own = executor is None
                ex = executor or LifelinePool(n_workers, pool_context())
                try:
                    futs = [
                        ex.submit(
                            _export_task(batch, source_options), chunk, str(dest_path), **args
                        )
                        for batch in prepared()
                        for chunk in _chunks(batch, size)
                    ]
                    for fut in as_completed(futs):
                        recorder.add(fut.result())
                finally:
                    if own:
                        ex.shutdown(wait=True, cancel_futures=True)
        finally:
            recorder.flush()
            bar.close()
        outcomes = recorder.outcomes
        if gone:
            result.excluded = pl.concat(
                [
                    result.excluded,
                    pl.DataFrame(
                        {
                            "file_id": sorted(gone),
                            "reason": ["its output path is another instance's"] * len(gone),
                        },
                        schema={"file_id": pl.Int64, "reason": pl.String},
                    ),
                ]
            )
        ok = [o for o in outcomes if o.status == "ok"]
        failed = [o for o in outcomes if o.status != "ok"]
        _retire_replaced(store, dest_path, ok)
        result.exported = len(ok)
        result.bytes_written = sum(o.size for o in ok)
        result.pixels_copied = sum(1 for o in ok if o.pixels_copied)
        result.verify_seconds = sum(o.verify_seconds for o in outcomes)
        result.warnings = sum(len(o.warnings) for o in outcomes)
        result.failed = pl.DataFrame(
            {"file_id": [o.file_id for o in failed], "reason": [o.reason for o in failed]},
            schema={"file_id": pl.Int64, "reason": pl.String},
        )
        _write_manifests(store, dest_path)
        clean_staging(dest_path, remove=True)
        result.seconds = time.perf_counter() - started
        counts.update(result.as_dict())
    return result


def _export_task(
    items: list[ExportItem], source_options: Mapping[str, Any] | None
) -> Callable[..., list[ExportOutcome]]:
    """The per-chunk task: :func:`export_items`, fetching sources that live in object storage."""
    if not any("://" in item.src for item in items):
        return export_items
    from gantry.storage._export import export_fetching
    from gantry.storage._fs import sdk_environment

    # the caller's SDK environment: the workers' fork server may hold an older one
    return partial(export_fetching, storage_options=source_options, sdk_env=sdk_environment())


def _item_batches(
    store: Store,
    todo: pl.DataFrame,
    compression: str | None,
    config: Any = None,
    timing: ExportResult | None = None,
    sizes: tuple[int, int] = (0, 0),
) -> Iterator[list[ExportItem]]:
    """The export items of ``todo`` in slices: ``sizes`` instances for the first slice, then
    for each next one (all at once when 0).

    Everything an item carries is the instance's own (its plan rows, tokens, edits),
    so a slice is built from its instances' rows alone.
    """
    if todo.height == 0:
        return
    suffixes = _name_suffixes(store)
    edits, pixel_edits = _session_edits(store)
    start, step = 0, sizes[0] or todo.height
    while start < todo.height:
        yield _slice_items(
            store, todo.slice(start, step), suffixes, edits, pixel_edits, config, timing
        )
        start, step = start + step, sizes[1] or todo.height


def _items(
    store: Store, todo: pl.DataFrame, compression: str | None, config: Any = None
) -> list[ExportItem]:
    """Every export item of ``todo`` at once."""
    return [it for batch in _item_batches(store, todo, compression, config) for it in batch]


def _slice_items(
    store: Store,
    todo: pl.DataFrame,
    suffixes: dict[int, str],
    edits: dict[int, list[Any]],
    pixel_edits: dict[int, Any],
    config: Any = None,
    timing: ExportResult | None = None,
) -> list[ExportItem]:
    ids = todo["file_id"]
    plan = store.scan("plan").filter(pl.col("file_id").is_in(ids.implode())).collect()
    inst = (
        store.scan("instances")
        .filter(pl.col("file_id").is_in(ids.implode()))
        .select(
            "file_id",
            "file_path",
            "file_size",
            "pixel_offset",
            "pixel_length",
            "transfer_syntax",
            "StudyInstanceUID",
            "SeriesInstanceUID",
            "SOPInstanceUID",
        )
        .collect()
    )
    outs = dict(_out_paths(plan, inst, suffixes).iter_rows())
    started = time.perf_counter()
    tokens = instance_tokens(store, plan, config)
    if timing is not None:
        timing.token_seconds += time.perf_counter() - started
    rows = plan.select("file_id", "path", "vr", "action", "new_value")
    actions = _actions_by_file(rows)
    special = rows.filter(pl.col("action").is_in(["REDACT", "DEFACE"]))
    redactions: dict[int, dict[str, Any]] = {}
    defaces: dict[int, dict[str, Any]] = {}
    for fid, action, nv in special.select("file_id", "action", "new_value").iter_rows():
        (redactions if action == "REDACT" else defaces)[fid] = json.loads(nv)
    return [
        ExportItem(
            file_id=fid,
            src=src,
            out_rel=outs[fid],
            actions=actions.get(fid, []),
            edits=edits.get(fid, []),
            tokens=tokens.get(fid, []),
            pixel_offset=poff,
            pixel_length=plen,
            file_size=size,
            pixel_edit=pixel_edits.get(fid),
            redaction=redactions.get(fid),
            deface=defaces.get(fid),
            transfer_syntax=ts,
        )
        for fid, src, size, poff, plen, ts, *_ in inst.iter_rows()
    ]


def _owners(store: Store, dest: Path) -> dict[str, int]:
    """``output_path`` → the instance whose file it is in ``dest`` (recorded and on disk)."""
    owner: dict[str, int] = {}
    if EXPORTS_TABLE in store.table_names():
        rows = store.sql(
            f"SELECT output_path, file_id FROM {EXPORTS_TABLE} WHERE dest = ? AND status = 'ok' "
            "ORDER BY exported_at",
            [str(dest)],
        )
        for rel, fid in rows.iter_rows():
            if (dest / rel).is_file():
                owner[rel] = fid
    return owner


def _clashing(items: list[ExportItem], owner: dict[str, int]) -> list[ExportItem]:
    """Items whose output path another instance already has (in this run or on disk).

    ``owner`` (from :func:`_owners`) gains this slice's paths. The plan's ``duplicates``
    policy makes every output path unique; this guard only keeps a surprise from
    overwriting one instance with another.
    """
    return [it for it in items if owner.setdefault(it.out_rel, it.file_id) != it.file_id]


def _add_overlay_checks(store: Store, items: list[ExportItem]) -> None:
    """Items whose overlays are burned in: OCR reads the written image (safe or not)."""
    burned = [it for it in items if it.redaction and it.redaction.get("overlays")]
    if burned and any(it.ocr_check is None for it in burned):
        identity = _identity_values(store, {it.file_id for it in burned})
        for it in burned:
            if it.ocr_check is None:
                it.ocr_check = {
                    "engine": "rapidocr",
                    "min_confidence": 0.5,
                    "identity": identity.get(it.file_id, []),
                }


def _identity_values(store: Store, ids: set[int]) -> dict[int, list[tuple[str, str]]]:
    """The identity values (``IDENTITY_KEYWORDS``) of each instance, for OCR matching."""
    from gantry.ocr._match import IDENTITY_KEYWORDS

    values = (
        store.scan("elements")
        .filter(
            pl.col("file_id").is_in(list(ids))
            & pl.col("keyword").is_in(list(IDENTITY_KEYWORDS))
            & (pl.col("path") == pl.col("tag"))
            & pl.col("value").is_not_null()
        )
        .select("file_id", "keyword", "value")
        .collect()
    )
    identity: dict[int, list[tuple[str, str]]] = defaultdict(list)
    for fid, kw, value in values.iter_rows():
        identity[fid].append((str(kw), str(value)))
    return identity


def _add_ocr_checks(store: Store, items: list[ExportItem]) -> None:
    """Safe mode: items whose redaction came from OCR get a second OCR pass on their output."""
    ocr_ids = {
        it.file_id
        for it in items
        for path, _vr, action, _nv in it.actions
        if action == "REDACT" and path == "7FE00010"
    }
    if not ocr_ids or "ocr_scans" not in store.table_names():
        return
    from gantry.ocr import current_scans

    plan_rules = (
        store.scan("plan")
        .filter((pl.col("action") == "REDACT") & pl.col("rule").str.contains("ocr"))
        .select("file_id")
        .collect()["file_id"]
        .to_list()
    )
    ocr_ids &= set(plan_rules)
    if not ocr_ids:
        return
    engines = dict(
        current_scans(store)
        .filter(pl.col("file_id").is_in(list(ocr_ids)))
        .select("file_id", "engine")
        .iter_rows()
    )
    identity = _identity_values(store, ocr_ids)
    for it in items:
        if it.file_id in ocr_ids:
            it.ocr_check = {
                "engine": engines.get(it.file_id, "rapidocr"),
                "min_confidence": 0.5,
                "identity": identity.get(it.file_id, []),
            }


def _actions_by_file(rows: pl.DataFrame) -> dict[int, list[tuple[str, str, str, str | None]]]:
    """``file_id`` → its ``path, vr, action, new_value`` rows, in their stored order.

    Cut from the rows sorted by instance (a stable sort), not appended one by one.
    """
    rows = rows.sort("file_id", maintain_order=True)
    cols = (rows[c].to_list() for c in ("path", "vr", "action", "new_value"))
    tuples = list(zip(*cols, strict=True))
    runs = rows["file_id"].rle()
    out: dict[int, list[tuple[str, str, str, str | None]]] = {}
    at = 0
    for fid, n in zip(
        runs.struct.field("value").to_list(), runs.struct.field("len").to_list(), strict=True
    ):
        out[fid] = tuples[at : at + n]
        at += n
    return out


def _chunk_size(total: int, workers: int) -> int:
    """Instances per task: about four per worker, at most 200."""
    return max(1, min(200, -(-total // (workers * 4))))


def _slice_sizes(total: int, chunk: int, workers: int) -> tuple[int, int]:
    """Instances whose items are built at once, in whole chunks: first a chunk per
    worker (they start early), then about a quarter of the run at a time.

    Examples
    --------
    >>> _slice_sizes(5000, 200, 2)
    (400, 1400)
    """
    return chunk * workers, chunk * max(1, -(-total // (chunk * 4)))


def _chunks(items: list[ExportItem], size: int) -> list[list[ExportItem]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


class _Recorder:
    """Records the workers' outcomes in ``exports``: in few, large appends.

    Each chunk's rows keep the time they came back; they are written once at least
    :data:`RECORD_ROWS` wait or :data:`RECORD_SECONDS` passed since the last write, and
    by :meth:`flush` at the end (also when the export is interrupted).  A file written
    but not yet recorded is simply written again by the next run.
    """

    RECORD_ROWS = 2000
    RECORD_SECONDS = 5.0

    def __init__(
        self,
        store: Store,
        dest: Path,
        bar: Any,
        callback: Callable[[int, int], None] | None,
        states: dict[int, str],
        total: int,
    ) -> None:
        self.store, self.dest, self.bar, self.callback = store, dest, bar, callback
        self.states, self.total = states, total
        self.outcomes: list[ExportOutcome] = []
        self._pending: list[tuple[datetime, list[ExportOutcome]]] = []
        self._waiting = 0
        self._since = time.monotonic()

    def add(self, got: list[ExportOutcome]) -> None:
        self._pending.append((datetime.now(UTC).replace(tzinfo=None), got))
        self._waiting += len(got)
        for o in got:  # the workers' warnings, logged here where the CLI counts them
            log_warnings(o.warnings)
        self.outcomes.extend(got)
        self.bar.update(len(got))
        if self.callback is not None:
            self.callback(len(self.outcomes), self.total)
        if (
            self._waiting >= self.RECORD_ROWS
            or time.monotonic() - self._since >= self.RECORD_SECONDS
        ):
            self.flush()

    def flush(self) -> None:
        """Write the rows waiting, in one append."""
        if not self._pending:
            return
        got = [o for _, chunk in self._pending for o in chunk]
        times = [when for when, chunk in self._pending for _ in chunk]
        self._pending, self._waiting, self._since = [], 0, time.monotonic()
        frame = pl.DataFrame(
            {
                "dest": [str(self.dest)] * len(got),
                "file_id": [o.file_id for o in got],
                "output_path": [o.out_rel for o in got],
                "status": [o.status for o in got],
                "reason": [o.reason for o in got],
                "notes": [o.notes for o in got],
                "size": [o.size for o in got],
                "sha256": [o.sha256 for o in got],
                "PatientID": [o.patient_id for o in got],
                "StudyInstanceUID": [o.study_uid for o in got],
                "SeriesInstanceUID": [o.series_uid for o in got],
                "SOPInstanceUID": [o.sop_uid for o in got],
                "Modality": [o.modality for o in got],
                "SeriesDescription": [o.series_description for o in got],
                "TransferSyntaxUID": [o.transfer_syntax for o in got],
                "exported_at": times,
                "plan_state": [self.states.get(o.file_id) for o in got],
            },
            schema_overrides={"file_id": pl.Int64, "size": pl.Int64, "plan_state": pl.String},
        )
        self.store.write_table(EXPORTS_TABLE, frame, mode="append")


def _retire_replaced(store: Store, dest: Path, ok: list[ExportOutcome]) -> None:
    """Delete this export's earlier copy of an instance now written under another name.

    A new plan (another config) can give an instance another output path; the
    copy written under the old plan is removed, so the folder holds one file per
    instance, each from the current plan.
    """
    if not ok or EXPORTS_TABLE not in store.table_names():
        return
    now = {o.file_id: o.out_rel for o in ok}
    rows = store.sql(
        f"SELECT DISTINCT file_id, output_path FROM {EXPORTS_TABLE} WHERE dest = ? AND status = 'ok'",
        [str(dest)],
    )
    keep = set(now.values())
    for fid, rel in rows.iter_rows():
        if fid in now and rel != now[fid] and rel not in keep:
            (dest / rel).unlink(missing_ok=True)


def _write_manifests(store: Store, dest: Path) -> None:
    """``manifest.csv`` and ``manifest.json``: every file now in ``dest``, pseudonymised keys only."""
    if EXPORTS_TABLE not in store.table_names():
        return
    rows = store.sql(
        f"SELECT * FROM {EXPORTS_TABLE} WHERE dest = ? AND status = 'ok' ORDER BY exported_at",
        [str(dest)],
    )
    rows = (  # the latest file of each instance, and of each path
        rows.unique("file_id", keep="last", maintain_order=True)
        .unique("output_path", keep="last", maintain_order=True)
        .sort("output_path")
    )
    manifest = (
        rows.join(_redacted_boxes(store), on="file_id", how="left")
        .sort("output_path")
        .select(MANIFEST_COLUMNS)
    )
    tmp = staging_file(dest)
    manifest.write_csv(tmp)
    os.replace(tmp, dest / "manifest.csv")
    tmp = staging_file(dest)
    tmp.write_text(json.dumps({"files": manifest.to_dicts(), "count": manifest.height}, indent=1))
    os.replace(tmp, dest / "manifest.json")


def _redacted_boxes(store: Store) -> pl.DataFrame:
    """``file_id, redacted_boxes``: the zones each instance's pixels were blanked in (JSON)."""
    empty = pl.DataFrame(schema={"file_id": pl.Int64, "redacted_boxes": pl.String})
    if "plan" not in store.table_names():
        return empty
    rows = store.sql("SELECT file_id, new_value FROM plan WHERE action = 'REDACT'")
    if rows.height == 0:
        return empty
    return rows.select(
        pl.col("file_id").cast(pl.Int64),
        pl.col("new_value").str.json_path_match("$.zones").alias("redacted_boxes"),
    ).unique("file_id", keep="last")
