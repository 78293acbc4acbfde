"""Send files to a peer by C-STORE, transcoding to a native syntax when it must."""

from __future__ import annotations

import ssl
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gantry.errors import CodecError, NetworkError
from gantry.net._peer import Peer, association_failure, new_ae, open_association

_MAX_CONTEXTS = 120  # of the 128 an association may carry
_WARNINGS = (0x0001, 0xB000, 0xB006, 0xB007)


@dataclass(frozen=True)
class SendItem:
    """One file to send; ``key`` is the caller's (the session's ``file_id``)."""

    key: int | None
    path: str


@dataclass(frozen=True)
class SendOutcome:
    """What became of one file: ``status`` is ``ok``, ``warning`` or ``failed``."""

    key: int | None
    path: str
    sop_class_uid: str | None
    status: str
    status_code: int | None
    reason: str | None
    bytes: int


Report = Callable[[list[SendOutcome]], None]
Entry = tuple[SendItem, str, str]  # the item, its SOP class, its transfer syntax


def _meta(path: str) -> tuple[str, str]:
    from pydicom.filereader import read_file_meta_info

    meta = read_file_meta_info(path)
    return str(meta.MediaStorageSOPClassUID), str(meta.TransferSyntaxUID)


def send_files(
    peer: Peer,
    items: Sequence[SendItem],
    *,
    tls: ssl.SSLContext | None = None,
    report: Report | None = None,
    report_every: int = 100,
) -> list[SendOutcome]:
    """C-STORE each file to ``peer``; one outcome per item, never an exception per file.

    Files whose SOP class and transfer syntax the peer accepts are sent as they are
    (bytes unchanged). When the peer accepts the SOP class only in a native syntax,
    the pixels are decoded and sent as Explicit VR Little Endian; when that is not
    possible either, the file is reported ``failed`` with the reason. A connection
    lost mid-way is retried once on a new association; what still cannot be sent is
    reported ``failed`` (a later call sends it). ``report`` receives outcomes in
    groups as they happen, so a caller can record progress.

    Raises
    ------
    NetworkError
        Only when not a single association could be established (wrong AE title,
        peer down): nothing was sent.
    """
    from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian

    outcomes: list[SendOutcome] = []
    pending: list[SendOutcome] = []

    def done(o: SendOutcome) -> None:
        outcomes.append(o)
        pending.append(o)
        if report is not None and len(pending) >= report_every:
            report(list(pending))
            pending.clear()

    by_class: dict[str, list[Entry]] = defaultdict(list)
    for item in items:
        try:
            sop_class, ts = _meta(item.path)
        except Exception as exc:  # noqa: BLE001 - reported per file
            done(SendOutcome(item.key, item.path, None, "failed", None, _unreadable(exc), 0))
            continue
        by_class[sop_class].append((item, sop_class, ts))
    groups = _groups(by_class)
    established_once = False
    first_error: NetworkError | None = None
    for group in groups:
        syntaxes: dict[str, set[str]] = defaultdict(set)
        for _item, sop_class, ts in group:
            syntaxes[sop_class].add(ts)
        queue = list(group)
        for attempt in range(2):
            if not queue:
                break
            ae = new_ae(peer.calling, peer.timeout)
            for sop_class, tss in syntaxes.items():
                for ts in sorted(tss):
                    ae.add_requested_context(sop_class, [ts])
                ae.add_requested_context(
                    sop_class, [ExplicitVRLittleEndian, ImplicitVRLittleEndian]
                )
            try:
                assoc = open_association(ae, peer, tls=tls)
                if not assoc.is_established:
                    raise NetworkError(str(peer), association_failure(assoc))
            except NetworkError as err:
                first_error = first_error or err
                if attempt == 1 or not established_once:
                    for entry in queue:
                        done(_fail(entry, err.reason))
                    queue = []
                continue
            established_once = True
            try:
                queue = _send_on(assoc, queue, done)
            finally:
                if assoc.is_established:
                    assoc.release()
            if queue and attempt == 1:
                for entry in queue:
                    done(_fail(entry, "connection lost during the transfer"))
    if report is not None and pending:
        report(list(pending))
    if not established_once and first_error is not None:
        raise first_error
    return outcomes


def _unreadable(exc: Exception) -> str:
    return f"not a readable DICOM file ({type(exc).__name__})"


def _groups(by_class: dict[str, list[Entry]]) -> list[list[Entry]]:
    """Split the files so one association proposes at most ``_MAX_CONTEXTS`` contexts."""
    groups: list[list[Entry]] = []
    current: list[Entry] = []
    used = 0
    for rows in by_class.values():
        need = len({ts for *_, ts in rows}) + 1
        if current and used + need > _MAX_CONTEXTS:
            groups.append(current)
            current, used = [], 0
        current.extend(rows)
        used += need
    if current:
        groups.append(current)
    return groups


def _fail(entry: Entry, reason: str) -> SendOutcome:
    item, sop_class, _ = entry
    return SendOutcome(item.key, item.path, sop_class, "failed", None, reason, 0)


def _send_on(assoc: Any, queue: list[Entry], done: Callable[[SendOutcome], None]) -> list[Entry]:
    """Send ``queue`` on ``assoc``; return what is left when the association drops."""
    from pydicom.uid import UID

    accepted: dict[str, set[str]] = defaultdict(set)
    for cx in assoc.accepted_contexts:
        accepted[str(cx.abstract_syntax)].add(str(cx.transfer_syntax[0]))
    for i, (item, sop_class, ts) in enumerate(queue):
        if not assoc.is_established:
            return queue[i:]
        size = Path(item.path).stat().st_size

        def outcome(status: str, code: int | None, reason: str | None) -> None:
            n = size if status != "failed" else 0  # noqa: B023 - called within this iteration
            done(SendOutcome(item.key, item.path, sop_class, status, code, reason, n))  # noqa: B023

        try:
            if ts in accepted[sop_class]:
                rsp = assoc.send_c_store(Path(item.path))
            elif any(not UID(t).is_compressed for t in accepted[sop_class]):
                rsp = assoc.send_c_store(_native(item.path))
            else:
                outcome("failed", None, "the peer accepts this SOP class in no syntax we can send")
                continue
        except RuntimeError:  # the association dropped between the check and the send
            if assoc.is_established:
                raise
            return queue[i:]
        except CodecError as exc:
            why = f"the peer refuses {UID(ts).name} and the pixels could not be transcoded"
            outcome("failed", None, f"{why} ({exc.reason})")
            continue
        code = int(rsp.Status) if rsp is not None and "Status" in rsp else None
        if code is None:
            if not assoc.is_established:
                return queue[i:]  # retried on a new association
            outcome("failed", None, "no answer")
        elif code == 0:
            outcome("ok", 0, None)
        elif code in _WARNINGS:
            outcome("warning", code, f"status 0x{code:04X}")
        else:
            outcome("failed", code, f"the peer refused the file (status 0x{code:04X})")
    return []


def _native(path: str) -> Any:
    """The file as a dataset in Explicit VR Little Endian (pixels decoded if compressed)."""
    import pydicom
    from pydicom.uid import ExplicitVRLittleEndian

    ds = pydicom.dcmread(path)
    ts = ds.file_meta.TransferSyntaxUID
    if ts.is_compressed and "PixelData" in ds:
        from gantry.pixels import apply_encoded, decode, encode

        apply_encoded(ds, encode(decode(ds, path=path), ds, "none"))
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    return ds
