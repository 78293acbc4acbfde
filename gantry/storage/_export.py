"""Export to object storage, and export from sources that live there.

``Session.export("s3://bucket/prefix")`` first runs the ordinary verified export
into a staging folder beside the catalog (``<stem>.outbox/<bucket_prefix>/``),
then publishes each verified file as one object: an object becomes visible only
when its upload completes (one PUT, or a multipart upload's final request), so
no partial object is ever listed.  Each object is read back and must hash to
what verification passed, else it is deleted and reported failed.  The export
marker goes first, ``manifest.csv`` / ``manifest.json`` last, once every object
is in place.  Each object's outcome is appended to ``exports`` with ``dest`` the
bucket URL; a resumed run skips every object already there with the same hash
and size, so a cut never duplicates or loses one.

When the *sources* were ingested from object storage, each export worker fetches
its chunk's objects into the export's staging folder first
(:func:`export_fetching`), then exports them as local files.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import tempfile
import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import polars as pl

from gantry.errors import ConfigError, StorageError
from gantry.export import ExportResult
from gantry.storage._fs import Storage, apply_sdk_environment, is_url, open_storage
from gantry.store._layout import EXPORT_MARKER as MARKER_NAME

__all__ = ["BucketExportResult", "export_fetching", "export_to_bucket"]

EXPORTS_TABLE = "exports"
UPLOADS_AT_ONCE = 16
RECORD_EVERY = 200


@dataclass
class BucketExportResult(ExportResult):
    """An :class:`~gantry.export.ExportResult` for a bucket destination.

    ``exported`` counts objects published in this run, ``already_done`` those an
    earlier run published (same hash, same size); ``failed`` holds files that did
    not verify and objects that did not publish or read back, with the reason.
    ``dest`` is the local staging folder, ``destination`` the bucket URL.
    """

    destination: str = ""
    staged: ExportResult | None = None

    def as_dict(self) -> dict[str, Any]:
        return {**super().as_dict(), "destination": self.destination}


def outbox(store: Any, destination: str) -> Path:
    """The staging folder of ``destination``, beside the catalog."""
    from gantry.plan._pseudonyms import safe_path_component

    data_dir: Path = store.layout.data_dir
    base = data_dir.with_name(data_dir.name.removesuffix(".gantry") + ".outbox")
    return base / safe_path_component(destination.replace("://", "_", 1))


def export_to_bucket(
    session: Any,
    url: str,
    *,
    storage_options: Mapping[str, Any] | None = None,
    verify: bool = True,
    query: str | None = None,
    **export_options: Any,
) -> BucketExportResult:
    """Stage a verified export, then publish it to the bucket ``url``; resumable."""
    if not verify:
        raise ConfigError(
            "verify",
            expected="True for a bucket destination (only verified clean files are published)",
            got=verify,
        )
    started = time.perf_counter()
    url = url.rstrip("/")
    _check_apart(session.store, url)
    storage = open_storage(url, storage_options)
    present = {o.rel: o for o in storage.list()}  # a missing bucket or bad key fails here
    store = session.store
    staged = session.export(
        outbox(store, url),
        verify=True,
        query=query,
        storage_options=storage_options,
        **export_options,
    )
    out = BucketExportResult(
        dest=staged.dest,
        destination=url,
        staged=staged,
        selected=staged.selected,
        excluded=staged.excluded,
    )
    with store.run("upload", {"destination": url, "query": query}) as counts:
        rows = _staged_rows(store, staged, query)
        done = _published(store, url)
        keep = []
        for row in rows.iter_rows(named=True):
            there = present.get(row["output_path"])
            prior = done.get(row["file_id"])
            if (
                there is not None
                and there.size == row["size"]
                and prior == (row["output_path"], row["sha256"])
            ):
                continue
            keep.append(row)
        out.already_done = rows.height - len(keep)
        if MARKER_NAME not in present:
            storage.write_atomic(MARKER_NAME, _marker())
        ok, bad = _publish_all(store, storage, url, Path(staged.dest), keep)
        _retire_replaced(store, storage, url, ok)
        _write_manifests(store, storage, url)
        out.exported = len(ok)
        out.bytes_written = sum(r["size"] for r in ok)
        out.failed = pl.concat(
            [
                staged.failed,
                pl.DataFrame(
                    {"file_id": [r["file_id"] for r in bad], "reason": [r["reason"] for r in bad]},
                    schema={"file_id": pl.Int64, "reason": pl.String},
                ),
            ]
        )
        out.seconds = time.perf_counter() - started
        counts.update(out.as_dict())
    return out


def _check_apart(store: Any, url: str) -> None:
    """Refuse a bucket destination inside (or holding) a prefix this session ingested."""
    from gantry.errors import ExportError

    rows = store.sql("SELECT details FROM runs WHERE kind = 'ingest'")
    for text in rows["details"].to_list() if rows.height else []:
        for root in json.loads(text or "{}").get("paths", []):
            root = str(root).rstrip("/")
            if url == root or url.startswith(root + "/") or root.startswith(url + "/"):
                raise ExportError(
                    f"`dest` must be apart from every ingested source prefix, got {url!r} "
                    f"overlapping {root!r} (choose a prefix of its own)"
                )


def _marker() -> bytes:
    doc = {"kind": "gantry-export", "marked_at": datetime.now(UTC).isoformat()}
    return json.dumps(doc).encode()


def _latest(rows: pl.DataFrame) -> pl.DataFrame:
    return rows.unique("file_id", keep="last", maintain_order=True).unique(
        "output_path", keep="last", maintain_order=True
    )


def _staged_rows(store: Any, staged: ExportResult, query: str | None) -> pl.DataFrame:
    """The staged export's current verified file of each selected instance."""
    where = f"WHERE {query}" if query else ""
    rows = store.sql(
        f"SELECT * FROM {EXPORTS_TABLE} WHERE dest = ? AND status = 'ok' "
        f"AND file_id IN (SELECT file_id FROM instances {where}) ORDER BY exported_at",
        [str(staged.dest)],
    )
    return _latest(rows).sort("output_path")


def _published(store: Any, url: str) -> dict[int, tuple[str, str]]:
    """``file_id -> (output_path, sha256)`` of each object this bucket export recorded."""
    if EXPORTS_TABLE not in store.table_names():
        return {}
    rows = store.sql(
        f"SELECT file_id, output_path, sha256 FROM {EXPORTS_TABLE} "
        "WHERE dest = ? AND status = 'ok' ORDER BY exported_at",
        [url],
    ).unique("file_id", keep="last", maintain_order=True)
    return {fid: (rel, sha) for fid, rel, sha in rows.iter_rows()}


def _publish_one(storage: Storage, staging: Path, row: dict[str, Any]) -> dict[str, Any]:
    """Publish one verified file and read it back; the row with ``status`` and ``reason``."""
    rel = row["output_path"]
    local = staging / rel
    try:
        data = local.read_bytes()
    except OSError:
        return {**row, "status": "failed", "reason": "the staged file is gone; export again"}
    if hashlib.sha256(data).hexdigest() != row["sha256"]:
        return {**row, "status": "failed", "reason": "changed since it was verified"}
    storage.publish(local, rel)
    back = storage.read(rel)  # verification reads back what it wrote
    if hashlib.sha256(back).hexdigest() != row["sha256"]:
        storage.remove(rel)
        return {**row, "status": "failed", "reason": "the object read back differs; removed"}
    return {**row, "status": "ok", "reason": ""}


def _publish_all(
    store: Any, storage: Storage, url: str, staging: Path, rows: list[dict[str, Any]]
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Publish `rows` concurrently, recording outcomes every :data:`RECORD_EVERY` objects.

    A failed request stops the run (after recording what completed) with
    :class:`StorageError`; a resumed run publishes the rest.
    """
    ok: list[dict[str, Any]] = []
    bad: list[dict[str, Any]] = []
    with ThreadPoolExecutor(UPLOADS_AT_ONCE) as pool:
        for start in range(0, len(rows), RECORD_EVERY):
            part = rows[start : start + RECORD_EVERY]
            futures = [pool.submit(_publish_one, storage, staging, r) for r in part]
            got, error = [], None
            for fut in futures:
                try:
                    got.append(fut.result())
                except StorageError as exc:
                    error = error or exc
            _record(store, url, got)
            ok += [r for r in got if r["status"] == "ok"]
            bad += [r for r in got if r["status"] != "ok"]
            if error is not None:
                raise error
    return ok, bad


def _record(store: Any, url: str, got: list[dict[str, Any]]) -> None:
    if not got:
        return
    now = datetime.now(UTC).replace(tzinfo=None)
    frame = pl.DataFrame([{**r, "dest": url, "exported_at": now} for r in got])
    schema = store.sql(f"SELECT * FROM {EXPORTS_TABLE} LIMIT 0").schema
    store.write_table(EXPORTS_TABLE, frame.cast(dict(schema)).select(schema.names()), mode="append")


def _retire_replaced(store: Any, storage: Storage, url: str, ok: list[dict[str, Any]]) -> None:
    """Delete an instance's earlier object now published under another name."""
    now = {r["file_id"]: r["output_path"] for r in ok}
    if not now:
        return
    rows = store.sql(
        f"SELECT DISTINCT file_id, output_path FROM {EXPORTS_TABLE} "
        "WHERE dest = ? AND status = 'ok'",
        [url],
    )
    keep = set(now.values())
    for fid, rel in rows.iter_rows():
        if fid in now and rel != now[fid] and rel not in keep:
            storage.remove(rel)


def _write_manifests(store: Any, storage: Storage, url: str) -> None:
    """``manifest.csv`` / ``manifest.json`` of every object now published, written last."""
    from gantry.export._runner import MANIFEST_COLUMNS, _redacted_boxes

    rows = store.sql(
        f"SELECT * FROM {EXPORTS_TABLE} WHERE dest = ? AND status = 'ok' ORDER BY exported_at",
        [url],
    )
    manifest = (
        _latest(rows)
        .join(_redacted_boxes(store), on="file_id", how="left")
        .sort("output_path")
        .select(MANIFEST_COLUMNS)
    )
    storage.write_atomic("manifest.csv", manifest.write_csv().encode())
    doc = {"files": manifest.to_dicts(), "count": manifest.height}
    storage.write_atomic("manifest.json", json.dumps(doc, indent=1, default=str).encode())


def export_fetching(
    items: list[Any],
    dest: str,
    *,
    verify: bool = True,
    compression: str | None = None,
    storage_options: Mapping[str, Any] | None = None,
    sdk_env: Mapping[str, str] | None = None,
) -> list[Any]:
    """:func:`gantry.export._apply.export_items` for items whose sources are object URLs.

    The chunk's objects are fetched (concurrently) into the export's staging
    folder, exported as local files, then removed.  A source that cannot be
    fetched fails its instance with the reason; nothing partial is written.
    """
    from gantry.export._apply import STAGING, ExportOutcome, export_items

    apply_sdk_environment(sdk_env)
    folder = Path(dest) / STAGING
    folder.mkdir(parents=True, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix="sources-", dir=folder)
    try:
        stores: dict[str, Storage] = {}

        def fetch(index: int, item: Any) -> Any:
            if not is_url(item.src):
                return item
            root = item.src.split("://", 1)[0] + "://"
            storage = stores.get(root) or stores.setdefault(
                root, open_storage(root, storage_options)
            )
            local = os.path.join(tmp, f"{index}.dcm")
            size = item.file_size or 0
            data = storage.read_range(item.src, 0, size + 1)  # one byte more shows a change
            if len(data) != size:
                raise StorageError(item.src, "the source object changed since it was indexed")
            Path(local).write_bytes(data)
            return dataclasses.replace(item, src=local)

        failed: list[Any] = []
        ready: list[Any] = []
        with ThreadPoolExecutor(UPLOADS_AT_ONCE) as pool:
            futures = [pool.submit(fetch, i, item) for i, item in enumerate(items)]
            for item, fut in zip(items, futures, strict=True):
                try:
                    ready.append(fut.result())
                except StorageError as exc:
                    failed.append(
                        ExportOutcome(item.file_id, item.out_rel, "failed", f"source: {exc.reason}")
                    )
        return failed + export_items(ready, dest, verify=verify, compression=compression)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
