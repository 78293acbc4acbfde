"""Export to a network destination: stage verified clean files, then send them.

``Session.export("dicom://AE@host:port")`` (or a DICOMweb ``http(s)://`` base URL)
first runs the ordinary verified export into a staging folder beside the catalog,
then sends only the files that export recorded ``ok`` and whose bytes still hash
to what it verified. Each file's outcome is appended to ``exports`` (``dest`` is
the URL) and to ``transfers``; a file already sent is not sent again.
"""

from __future__ import annotations

import hashlib
import ssl
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import polars as pl

from gantry.errors import ConfigError
from gantry.export import ExportResult
from gantry.net._peer import Peer, is_web_url, log, record_transfers
from gantry.net._send import SendItem, SendOutcome, send_files

EXPORTS_TABLE = "exports"


@dataclass
class NetworkExportResult(ExportResult):
    """An :class:`~gantry.export.ExportResult` for a network destination.

    ``exported`` counts files the peer stored in this run, ``already_done`` those
    it had stored in an earlier run; ``failed`` holds both files that did not
    verify and files the peer did not store, with the reason. ``dest`` is the
    staging folder; ``destination`` the URL.
    """

    destination: str = ""
    staged: ExportResult | None = None
    warnings: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {**super().as_dict(), "destination": self.destination, "warnings": self.warnings}


def outbox(store: Any, destination: str) -> Path:
    """The staging folder for ``destination``: ``<stem>.outbox/<peer>/`` beside the catalog."""
    from gantry.plan._pseudonyms import safe_path_component

    data_dir: Path = store.layout.data_dir
    base = data_dir.with_name(data_dir.name.removesuffix(".gantry") + ".outbox")
    return base / safe_path_component(destination.split("://", 1)[1].split("?", 1)[0])


def export_to_peer(
    session: Any,
    url: str,
    *,
    verify: bool = True,
    query: str | None = None,
    tls: ssl.SSLContext | None = None,
    **export_options: Any,
) -> NetworkExportResult:
    """Stage a verified export, then C-STORE (or STOW-RS) it to ``url``; resumable."""
    if not verify:
        raise ConfigError(
            "verify",
            expected="True for a network destination (only verified clean files are sent)",
            got=verify,
        )
    started = time.perf_counter()
    web = is_web_url(url)
    peer = None if web else Peer.parse(url)
    destination = url.split("?", 1)[0] if web else f"dicom://{peer}"
    store = session.store
    staging = outbox(store, destination)
    staged = session.export(staging, verify=True, query=query, **export_options)
    out = NetworkExportResult(
        dest=staged.dest,
        destination=destination,
        staged=staged,
        selected=staged.selected,
        excluded=staged.excluded,
    )
    with store.run("send", {"destination": destination, "query": query}) as counts:
        rows = _to_send(store, staged, query)
        already = _already_sent(store, destination)
        todo = rows.join(already, on=["file_id", "sha256"], how="anti")
        out.already_done = rows.height - todo.height
        items, changed = _checked_items(todo, staged.dest)
        outcomes: list[SendOutcome] = [
            SendOutcome(fid, path, None, "failed", None, "changed since it was verified", 0)
            for fid, path in changed
        ]

        def record(got: list[SendOutcome]) -> None:
            _record(store, destination, todo, got)

        record(outcomes)
        if items:
            if peer is not None:
                outcomes += send_files(peer, items, tls=tls, report=record)
            else:
                from gantry.net._web import web_send

                outcomes += web_send(url, items, report=record)
        sent = [o for o in outcomes if o.status in ("ok", "warning")]
        bad = [o for o in outcomes if o.status == "failed"]
        out.exported = len(sent)
        out.warnings = sum(o.status == "warning" for o in outcomes)
        out.bytes_written = sum(o.bytes for o in sent)
        send_failed = pl.DataFrame(
            {"file_id": [o.key for o in bad], "reason": [o.reason for o in bad]},
            schema={"file_id": pl.Int64, "reason": pl.String},
        )
        out.failed = pl.concat([staged.failed, send_failed])
        out.seconds = time.perf_counter() - started
        counts.update(out.as_dict())
    log.info(
        "sent %d files to %s (%d already there, %d failed)",
        out.exported,
        destination,
        out.already_done,
        out.failed.height,
    )
    return out


def _to_send(store: Any, staged: ExportResult, query: str | None) -> pl.DataFrame:
    """The staged export's verified rows for the selected, not excluded instances."""
    where = f"WHERE {query}" if query else ""
    rows = store.sql(
        f"SELECT * FROM {EXPORTS_TABLE} WHERE dest = ? AND status = 'ok' "
        f"AND file_id IN (SELECT file_id FROM instances {where}) ORDER BY exported_at",
        [str(staged.dest)],
    ).unique("file_id", keep="last", maintain_order=True)
    return rows.join(staged.excluded.select("file_id"), on="file_id", how="anti")


def _already_sent(store: Any, destination: str) -> pl.DataFrame:
    return store.sql(
        f"SELECT DISTINCT file_id, sha256 FROM {EXPORTS_TABLE} "
        "WHERE dest = ? AND status IN ('ok', 'warning')",
        [destination],
    )


def _checked_items(todo: pl.DataFrame, root: Path) -> tuple[list[SendItem], list[tuple[int, str]]]:
    """Items whose staged bytes still hash to what the export verified."""
    items: list[SendItem] = []
    changed: list[tuple[int, str]] = []
    for fid, rel, digest in todo.select("file_id", "output_path", "sha256").iter_rows():
        path = str(root / rel)
        try:
            with open(path, "rb") as fh:
                ok = hashlib.file_digest(fh, "sha256").hexdigest() == digest
        except OSError:
            ok = False
        (items.append(SendItem(fid, path)) if ok else changed.append((fid, path)))
    return items, changed


def _record(
    store: Any, destination: str, staged_rows: pl.DataFrame, got: list[SendOutcome]
) -> None:
    if not got:
        return
    now = datetime.now(UTC).replace(tzinfo=None)
    status = pl.DataFrame(
        {
            "file_id": [o.key for o in got],
            "_status": [o.status for o in got],
            "_reason": [o.reason for o in got],
        },
        schema={"file_id": pl.Int64, "_status": pl.String, "_reason": pl.String},
    )
    rows = staged_rows.join(status, on="file_id", how="inner").with_columns(
        pl.lit(destination).alias("dest"),
        pl.col("_status").alias("status"),
        pl.col("_reason").alias("reason"),
        pl.lit(now)
        .cast(staged_rows.schema.get("exported_at", pl.Datetime("us")))
        .alias("exported_at"),
    )
    store.write_table(EXPORTS_TABLE, rows.drop("_status", "_reason"), mode="append")
    record_transfers(
        store,
        [
            {
                "direction": "send",
                "peer": destination,
                "file_id": o.key,
                "file_path": o.path,
                "sop_class_uid": o.sop_class_uid,
                "status": o.status,
                "status_code": o.status_code,
                "reason": o.reason,
                "bytes": o.bytes,
            }
            for o in got
        ],
    )
