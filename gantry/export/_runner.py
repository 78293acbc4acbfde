"""Run an export: select, exclude, fan out to workers, record, write manifests."""

from __future__ import annotations

import json
import multiprocessing
import os
import sys
import time
from collections import defaultdict
from collections.abc import Callable
from concurrent.futures import Executor, ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import polars as pl
from tqdm.auto import tqdm

from gantry.errors import ExportError
from gantry.export._apply import ExportItem, ExportOutcome, export_items
from gantry.plan._pseudonyms import safe_path_component
from gantry.store import Store

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
]
_MIN_TOKEN = 4


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
        }


def _selected_ids(store: Store, query: str | None) -> pl.DataFrame:
    where = f"WHERE {query}" if query else ""
    return store.sql(f"SELECT file_id FROM instances {where}")


def _exclusions(store: Store, config: Any, safe: bool) -> pl.DataFrame:
    frames = []
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


def _done(store: Store, dest: Path) -> set[int]:
    if EXPORTS_TABLE not in store.table_names():
        return set()
    rows = store.sql(
        f"SELECT file_id, output_path, size FROM {EXPORTS_TABLE} WHERE dest = ? AND status = 'ok'",
        [str(dest)],
    )
    done = set()
    for fid, rel, size in rows.iter_rows():
        p = dest / rel
        if p.is_file() and p.stat().st_size == size:
            done.add(fid)
    return done


def _out_paths(plan: pl.DataFrame, inst: pl.DataFrame) -> pl.DataFrame:
    """``file_id, out_rel`` built only from pseudonymised values."""

    def pick(tag: str, name: str) -> pl.DataFrame:
        return (
            plan.filter(
                (pl.col("tag") == tag)
                & (pl.col("path") == tag)
                & pl.col("action").is_in(["P", "U", "R", "H", "D"])
            )
            .select("file_id", pl.col("new_value").alias(name))
            .unique("file_id")
        )

    keys = inst.select("file_id", "StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID")
    for tag, name in (
        ("00100020", "_pid"),
        ("0020000D", "_study"),
        ("0020000E", "_series"),
        ("00080018", "_sop"),
    ):
        keys = keys.join(pick(tag, name), on="file_id", how="left")
    keys = keys.with_columns(
        pl.col("_pid").fill_null("UNKNOWN"),
        pl.coalesce("_study", "StudyInstanceUID", pl.lit("study")).alias("_study"),
        pl.coalesce("_series", "SeriesInstanceUID", pl.lit("series")).alias("_series"),
        pl.coalesce("_sop", "SOPInstanceUID", pl.col("file_id").cast(pl.String)).alias("_sop"),
    )
    rels = [
        "/".join(safe_path_component(str(x)) for x in (p, st, se))
        + "/"
        + safe_path_component(str(so))
        + ".dcm"
        for p, st, se, so in keys.select("_pid", "_study", "_series", "_sop").iter_rows()
    ]
    return keys.select("file_id").with_columns(pl.Series("out_rel", rels, dtype=pl.String))


def _tokens(plan: pl.DataFrame, store: Store) -> dict[int, list[str]]:
    """Original values of every element the plan changes, per instance."""
    changed = plan.filter(~pl.col("action").is_in(["A", "REDACT", "K"])).select("file_id", "path")
    values = (
        store.scan("elements")
        .select("file_id", "path", "vr", "value")
        .filter(pl.col("value").is_not_null())
        .join(changed.lazy(), on=["file_id", "path"], how="semi")
        .collect()
    )
    toks = (
        values.with_columns(pl.col("value").str.split("\\").alias("t"))
        .explode("t")
        .with_columns(
            pl.when(pl.col("vr") == "PN")
            .then(pl.concat_list(pl.col("t"), pl.col("t").str.split("^")))
            .otherwise(pl.concat_list(pl.col("t")))
            .alias("t")
        )
        .explode("t")
        .with_columns(pl.col("t").str.strip_chars(" \x00^="))
        .filter(pl.col("t").str.len_bytes() >= _MIN_TOKEN)
        .filter(~pl.col("vr").is_in(["US", "SS", "UL", "SL", "FL", "FD", "IS", "DS", "CS", "TM"]))
        .select("file_id", "t")
        .unique()
    )
    out: dict[int, list[str]] = defaultdict(list)
    for fid, t in toks.iter_rows():
        out[fid].append(t)
    return out


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
) -> ExportResult:
    """Apply the persisted plan to the selected instances; see :meth:`gantry.Session.export`."""
    started = time.perf_counter()
    dest_path = Path(dest).expanduser().absolute()
    if dest_path == store.layout.data_dir or store.layout.data_dir in dest_path.parents:
        raise ExportError("`dest` must be outside the session store")
    if "plan" not in store.table_names():
        raise ExportError("no plan in this session: run `anonymize` first")
    selected = _selected_ids(store, query)  # a bad query fails here, before any write
    result = ExportResult(dest=dest_path, selected=selected.height)
    with store.run(
        "export", {"dest": str(dest_path), "query": query, "safe": safe, "compression": compression}
    ) as counts:
        excluded = _exclusions(store, config, safe).join(selected, on="file_id", how="semi")
        result.excluded = excluded
        done = _done(store, dest_path)
        todo_ids = selected.join(excluded, on="file_id", how="anti").filter(
            ~pl.col("file_id").is_in(list(done))
        )
        result.already_done = selected.height - excluded.height - todo_ids.height
        items = _items(store, todo_ids, compression)
        for item in items:
            item.encrypt_key = encrypt_key
        dest_path.mkdir(parents=True, exist_ok=True)
        n_workers = max(1, workers if workers is not None else (os.cpu_count() or 1))
        chunks = _chunks(items, n_workers)
        show = progress if progress is not None else sys.stderr.isatty()
        bar = tqdm(
            total=len(items), unit="file", desc="exporting", disable=not show, dynamic_ncols=True
        )
        outcomes: list[ExportOutcome] = []
        try:
            if executor is None and (n_workers == 1 or len(chunks) <= 1):
                for chunk in chunks:
                    got = export_items(
                        chunk, str(dest_path), verify=verify, compression=compression
                    )
                    _record(store, dest_path, got, outcomes, bar, callback, len(items))
            else:
                own = executor is None
                ex = executor or ProcessPoolExecutor(
                    max_workers=n_workers, mp_context=multiprocessing.get_context("forkserver")
                )
                try:
                    futs = [
                        ex.submit(
                            export_items, c, str(dest_path), verify=verify, compression=compression
                        )
                        for c in chunks
                    ]
                    for fut in as_completed(futs):
                        _record(store, dest_path, fut.result(), outcomes, bar, callback, len(items))
                finally:
                    if own:
                        ex.shutdown(wait=True, cancel_futures=True)
        finally:
            bar.close()
        ok = [o for o in outcomes if o.status == "ok"]
        failed = [o for o in outcomes if o.status != "ok"]
        result.exported = len(ok)
        result.bytes_written = sum(o.size for o in ok)
        result.pixels_copied = sum(1 for o in ok if o.pixels_copied)
        result.failed = pl.DataFrame(
            {"file_id": [o.file_id for o in failed], "reason": [o.reason for o in failed]},
            schema={"file_id": pl.Int64, "reason": pl.String},
        )
        _write_manifests(store, dest_path)
        result.seconds = time.perf_counter() - started
        counts.update(result.as_dict())
    return result


def _items(store: Store, todo: pl.DataFrame, compression: str | None) -> list[ExportItem]:
    if todo.height == 0:
        return []
    plan = store.scan("plan").join(todo.lazy(), on="file_id", how="semi").collect()
    inst = (
        store.scan("instances")
        .join(todo.lazy(), on="file_id", how="semi")
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
    outs = dict(_out_paths(plan, inst).iter_rows())
    tokens = _tokens(plan, store)
    actions: dict[int, list[tuple[str, str, str, str | None]]] = defaultdict(list)
    redactions: dict[int, dict[str, Any]] = {}
    for fid, path, vr, action, nv in plan.select(
        "file_id", "path", "vr", "action", "new_value"
    ).iter_rows():
        if action == "REDACT":
            redactions[fid] = json.loads(nv)
        actions[fid].append((path, vr, action, nv))
    edits, pixel_edits = _session_edits(store)
    items = []
    for fid, src, size, poff, plen, ts, *_ in inst.iter_rows():
        items.append(
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
                transfer_syntax=ts,
            )
        )
    return items


def _session_edits(
    store: Store,
) -> tuple[dict[int, list[tuple[str, str, str | None]]], dict[int, Any]]:
    """Saved object-model edits: metadata per file, and pixel-edit blob locations."""
    edits: dict[int, list[tuple[str, str, str | None, str | None]]] = defaultdict(list)
    pixel: dict[int, Any] = {}
    try:
        from gantry.model import load_edits, pixel_edit_locations
    except ImportError:
        return edits, pixel
    frame = load_edits(store)
    for fid, tag, op, value, vr in frame.select("file_id", "tag", "op", "value", "vr").iter_rows():
        if op in ("set", "delete"):
            edits[fid].append((tag, op, value, vr))
    pixel.update(pixel_edit_locations(store))
    return edits, pixel


def _chunks(items: list[ExportItem], workers: int) -> list[list[ExportItem]]:
    if not items:
        return []
    size = max(1, min(200, -(-len(items) // (workers * 4))))
    return [items[i : i + size] for i in range(0, len(items), size)]


def _record(
    store: Store,
    dest: Path,
    got: list[ExportOutcome],
    outcomes: list[ExportOutcome],
    bar: Any,
    callback: Callable[[int, int], None] | None,
    total: int,
) -> None:
    now = datetime.now(UTC).replace(tzinfo=None)
    frame = pl.DataFrame(
        {
            "dest": [str(dest)] * len(got),
            "file_id": [o.file_id for o in got],
            "output_path": [o.out_rel for o in got],
            "status": [o.status for o in got],
            "reason": [o.reason for o in got],
            "size": [o.size for o in got],
            "sha256": [o.sha256 for o in got],
            "PatientID": [o.patient_id for o in got],
            "StudyInstanceUID": [o.study_uid for o in got],
            "SeriesInstanceUID": [o.series_uid for o in got],
            "SOPInstanceUID": [o.sop_uid for o in got],
            "Modality": [o.modality for o in got],
            "SeriesDescription": [o.series_description for o in got],
            "TransferSyntaxUID": [o.transfer_syntax for o in got],
            "exported_at": [now] * len(got),
        },
        schema_overrides={"file_id": pl.Int64, "size": pl.Int64},
    )
    store.write_table(EXPORTS_TABLE, frame, mode="append")
    outcomes.extend(got)
    bar.update(len(got))
    if callback is not None:
        callback(len(outcomes), total)


def _write_manifests(store: Store, dest: Path) -> None:
    """``manifest.csv`` and ``manifest.json``: every file now in ``dest``, pseudonymised keys only."""
    if EXPORTS_TABLE not in store.table_names():
        return
    rows = store.sql(
        f"SELECT * FROM {EXPORTS_TABLE} WHERE dest = ? AND status = 'ok' ORDER BY output_path, exported_at",
        [str(dest)],
    ).unique("output_path", keep="last", maintain_order=True)
    manifest = rows.select(MANIFEST_COLUMNS)
    tmp = dest / ".manifest.csv.tmp"
    manifest.write_csv(tmp)
    os.replace(tmp, dest / "manifest.csv")
    tmp = dest / ".manifest.json.tmp"
    tmp.write_text(json.dumps({"files": manifest.to_dicts(), "count": manifest.height}, indent=1))
    os.replace(tmp, dest / "manifest.json")
