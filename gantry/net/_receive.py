"""Write what a peer sends us (C-STORE), atomically, one file per instance."""

from __future__ import annotations

import os
import shutil
import threading
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gantry.net._peer import file_name_for, log

INCOMING = ".incoming"
"""Hidden folder under the destination for files still being written (ingest skips it)."""

_OUT_OF_RESOURCES = 0xA700
_CANNOT_UNDERSTAND = 0xC000


@dataclass
class Received:
    """One instance written: its final path, its SOP class, the sender and its size."""

    path: str
    sop_class_uid: str
    calling: str
    size: int
    duplicate: bool


@dataclass
class Inbox:
    """Writes each received instance to ``root/<hash>/<hash>.dcm`` through a temp name.

    A C-STORE is acknowledged with *Success* only after the file is renamed into
    place, so a sender never believes a file stored that is not. Received files
    are queued in :attr:`received` (thread-safe) for the caller to ingest.
    """

    root: Path
    received: list[Received] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self.root = Path(self.root).expanduser().absolute()
        self.root.mkdir(parents=True, exist_ok=True)
        # a partial file was never acknowledged: the sender still has it to resend
        shutil.rmtree(self.root / INCOMING, ignore_errors=True)
        (self.root / INCOMING).mkdir()

    def take(self) -> list[Received]:
        """Remove and return what was received since the last call."""
        with self._lock:
            got, self.received = self.received, []
        return got

    def handle_store(self, event: Any) -> int:
        """pynetdicom ``EVT_C_STORE`` handler."""
        try:
            sop_uid = str(event.request.AffectedSOPInstanceUID)
            sop_class = str(event.request.AffectedSOPClassUID)
            data = event.encoded_dataset(include_meta=True)
        except Exception as exc:  # noqa: BLE001 - answer the peer, never crash the server
            log.warning("could not decode a C-STORE request (%s)", type(exc).__name__)
            return _CANNOT_UNDERSTAND
        return self.write(data, sop_uid, sop_class, str(event.assoc.requestor.ae_title))

    def write(self, data: bytes, sop_uid: str, sop_class: str, calling: str) -> int:
        """Store one encoded file; return the DIMSE status to answer with."""
        final = self.root / file_name_for(sop_uid)
        try:
            duplicate = final.is_file() and final.stat().st_size == len(data)
            if duplicate and final.read_bytes() == data:
                pass  # the same object again: keep the indexed file as it is
            else:
                duplicate = False
                final.parent.mkdir(exist_ok=True)
                tmp = self.root / INCOMING / f"{uuid.uuid4().hex}.part"
                with open(tmp, "wb") as fh:
                    fh.write(data)
                os.replace(tmp, final)
        except OSError as exc:
            log.error("could not write a received instance (%s)", exc.strerror or exc)
            return _OUT_OF_RESOURCES
        with self._lock:
            self.received.append(Received(str(final), sop_class, calling, len(data), duplicate))
        return 0x0000
