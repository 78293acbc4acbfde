"""``Session.pull``: query a peer, retrieve what matches into a folder, ingest it."""

from __future__ import annotations

import os
import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from gantry.errors import NetworkError
from gantry.net._peer import Peer, is_web_url, log, record_transfers
from gantry.net._receive import Inbox, Received
from gantry.net._scu import _UNIQUE, LEVELS, check_level, find, retrieve

if TYPE_CHECKING:
    from gantry.ingest._runner import IngestResult


@dataclass
class PullResult:
    """What :meth:`gantry.Session.pull` did.

    Attributes
    ----------
    matched : int
        Query matches at the requested level (patients, studies, series or instances).
    retrieved : int
        Files received (``duplicates`` of them were already in the folder).
    failed : int
        Sub-operations the peer reported failed, plus matches whose retrieve failed.
    errors : list of str
        One line per failed match (codes and AE titles, never a patient's value).
    ingest : IngestResult or None
        The ingest of what was received.
    """

    source: str
    dest: Path
    matched: int = 0
    retrieved: int = 0
    duplicates: int = 0
    failed: int = 0
    errors: list[str] = field(default_factory=list)
    ingest: IngestResult | None = None

    @property
    def ok(self) -> bool:
        return self.failed == 0 and not self.errors

    def as_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "dest": str(self.dest),
            "matched": self.matched,
            "retrieved": self.retrieved,
            "duplicates": self.duplicates,
            "failed": self.failed,
            "indexed": self.ingest.indexed if self.ingest else 0,
        }


def default_inbox(store: Any) -> Path:
    """Where pulled files live by default: ``<catalog stem>.received/`` beside the catalog."""
    data_dir: Path = store.layout.data_dir
    return data_dir.with_name(data_dir.name.removesuffix(".gantry") + ".received")


def pull(
    session: Any,
    source: str,
    *,
    query: Mapping[str, Any] | None = None,
    level: str = "STUDY",
    method: Literal["move", "get"] = "move",
    ae_title: str = "GANTRY",
    port: int | None = None,
    dest: str | os.PathLike[str] | None = None,
    tls: ssl.SSLContext | None = None,
    timeout: float | None = None,
) -> PullResult:
    """See :meth:`gantry.Session.pull`."""
    store = session.store
    folder = Path(dest).expanduser().absolute() if dest is not None else default_inbox(store)
    lvl = check_level(level)
    if is_web_url(source):
        from gantry.net._web import web_pull

        result = web_pull(source, query or {}, level=lvl, dest=folder, timeout=timeout)
        record_transfers(store, _rows("retrieve", source, result[1]))
        out = PullResult(source=source, dest=folder, matched=result[0])
        _finish(session, out, result[1])
        out.errors = result[2]
        out.failed = len(result[2])
        return out
    peer = Peer.parse(source, calling=ae_title, timeout=timeout)
    with store.run("pull", {"source": str(peer), "level": lvl, "method": method}) as counts:
        matches = find(peer, query or {}, level=lvl, tls=tls)
        out = PullResult(source=str(peer), dest=folder, matched=matches.height)
        inbox = Inbox(folder)
        keys = [k for k in _UNIQUE.values() if k in matches.columns]
        wanted = [_UNIQUE[lv] for lv in LEVELS[: LEVELS.index(lvl) + 1]]
        if lvl != "PATIENT":
            wanted = [k for k in wanted if k != "PatientID"]
        for row in matches.select(keys).iter_rows(named=True):
            ident = {k: row[k] for k in wanted if row.get(k)}
            if _UNIQUE[lvl] not in ident:
                out.errors.append(f"a match at level {lvl} has no {_UNIQUE[lvl]}")
                continue
            try:
                got = retrieve(peer, ident, inbox, level=lvl, method=method, port=port, tls=tls)
            except NetworkError as exc:
                out.errors.append(exc.reason)
                log.warning("retrieve from %s failed: %s", peer, exc.reason)
                continue
            out.failed += got.failed
            if got.status not in (0x0000, 0xB000):
                code = "no answer" if got.status is None else f"status 0x{got.status:04X}"
                out.errors.append(f"C-{method.upper()} ended with {code}")
            record_transfers(store, _rows("retrieve", str(peer), got.received))
        received = inbox.take()
        _finish(session, out, received)
        counts.update(out.as_dict())
    log.info("pulled %d files from %s (%d matches)", out.retrieved, peer, out.matched)
    return out


def _finish(session: Any, out: PullResult, received: list[Received]) -> None:
    out.retrieved = len(received)
    out.duplicates = sum(r.duplicate for r in received)
    if received:
        out.ingest = session.ingest([r.path for r in received], workers=1, progress=False)


def _rows(direction: str, peer: str, received: list[Received]) -> list[dict[str, Any]]:
    return [
        {
            "direction": direction,
            "peer": peer,
            "file_path": r.path,
            "sop_class_uid": r.sop_class_uid,
            "status": "ok",
            "status_code": 0,
            "bytes": r.size,
        }
        for r in received
    ]
