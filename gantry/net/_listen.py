"""``gantry listen``: a C-STORE SCP that writes what it receives and ingests it in batches."""

from __future__ import annotations

import os
import ssl
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gantry._deps import require
from gantry.net._peer import check_ae_title, log, record_transfers
from gantry.net._receive import Inbox, Received
from gantry.net._scu import _storage_syntaxes


@dataclass
class ListenResult:
    """Counts of one ``listen`` run (``received`` counts duplicates too)."""

    received: int = 0
    duplicates: int = 0
    indexed: int = 0
    batches: int = 0
    resumed: int = 0


def listen(
    session: Any,
    dest: str | os.PathLike[str],
    *,
    port: int,
    ae_title: str = "GANTRY",
    host: str = "0.0.0.0",
    allow: Iterable[str] | None = None,
    batch_size: int = 500,
    batch_seconds: float = 5.0,
    tls: ssl.SSLContext | None = None,
    stop: threading.Event | None = None,
    ready: Callable[[int], None] | None = None,
    on_batch: Callable[[ListenResult], None] | None = None,
) -> ListenResult:
    """Receive instances on ``host:port`` into ``dest`` and ingest them into ``session``.

    Every instance is written under a temporary name and renamed into place before
    the sender is told *Success*; the files received are ingested every
    ``batch_size`` files or ``batch_seconds``, whichever comes first, in the calling
    thread. Starting again first ingests whatever an earlier run received but did
    not ingest (a kill between the two), so a stop loses nothing. Returns when
    ``stop`` is set or on ``KeyboardInterrupt``, after ingesting what is pending.

    Parameters
    ----------
    allow : iterable of str, optional
        Calling AE titles accepted; others are rejected at association time.
    tls : ssl.SSLContext, optional
        Serve DICOM over TLS (see :func:`gantry.net.tls_context` with ``server=True``).
    ready : callable, optional
        Called with the bound port once the server accepts connections.
    """
    pynetdicom = require("pynetdicom", extra="net")
    check_ae_title(ae_title)
    folder = Path(dest).expanduser().absolute()
    inbox = Inbox(folder)
    result = ListenResult()
    before = session.ingest(folder, workers=1, progress=False)  # a kill's leftovers
    result.resumed = before.indexed
    ae = pynetdicom.AE(ae_title=ae_title)
    ae.require_called_aet = True
    if allow is not None:
        ae.require_calling_aet = [check_ae_title(a, key="allow") for a in allow]
    ae.maximum_associations = 16
    syntaxes = _storage_syntaxes()
    for cx in pynetdicom.AllStoragePresentationContexts:
        ae.add_supported_context(cx.abstract_syntax, syntaxes)
    ae.add_supported_context(pynetdicom.sop_class.Verification)
    handlers = [(pynetdicom.evt.EVT_C_STORE, inbox.handle_store)]
    server = ae.start_server((host, port), block=False, evt_handlers=handlers, ssl_context=tls)
    bound = server.server_address[1]
    log.info("listening as %s on port %d into %s", ae_title, bound, folder)
    if ready is not None:
        ready(bound)
    stop = stop or threading.Event()
    last = time.monotonic()
    try:
        while not stop.is_set():
            stop.wait(0.2)
            waiting = len(inbox.received)
            if waiting >= batch_size or (waiting and time.monotonic() - last >= batch_seconds):
                _ingest(session, inbox.take(), result, on_batch)
                last = time.monotonic()
    except KeyboardInterrupt:
        pass
    finally:
        server.shutdown()  # no new associations
        for assoc in ae.active_associations:
            assoc.abort()  # a file not yet acknowledged is the sender's to send again
            assoc.join(timeout=10)
        _ingest(session, inbox.take(), result, on_batch)
    return result


def _ingest(
    session: Any,
    got: list[Received],
    result: ListenResult,
    on_batch: Callable[[ListenResult], None] | None,
) -> None:
    if not got:
        return
    paths = list(dict.fromkeys(r.path for r in got))
    ing = session.ingest(paths, workers=1, progress=False)
    record_transfers(
        session.store,
        [
            {
                "direction": "receive",
                "peer": r.calling,
                "file_path": r.path,
                "sop_class_uid": r.sop_class_uid,
                "status": "ok",
                "status_code": 0,
                "reason": "duplicate" if r.duplicate else None,
                "bytes": r.size,
            }
            for r in got
        ],
    )
    result.received += len(got)
    result.duplicates += sum(r.duplicate for r in got)
    result.indexed += ing.indexed
    result.batches += 1
    log.info("ingested a batch of %d received files (%d new)", len(got), ing.indexed)
    if on_batch is not None:
        on_batch(result)
