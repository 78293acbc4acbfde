"""DICOM services we ask of a peer: C-ECHO, C-FIND, C-MOVE, C-GET and C-STORE."""

from __future__ import annotations

import ssl
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import polars as pl

from gantry._deps import require
from gantry.errors import ConfigError, NetworkError
from gantry.net._peer import Peer, associate, new_ae
from gantry.net._receive import Inbox, Received

Level = Literal["PATIENT", "STUDY", "SERIES", "IMAGE"]
LEVELS: tuple[str, ...] = ("PATIENT", "STUDY", "SERIES", "IMAGE")
_UNIQUE = {
    "PATIENT": "PatientID",
    "STUDY": "StudyInstanceUID",
    "SERIES": "SeriesInstanceUID",
    "IMAGE": "SOPInstanceUID",
}
_RETURN_KEYS = {
    "PATIENT": ["PatientID", "PatientName", "NumberOfPatientRelatedStudies"],
    "STUDY": [
        "PatientID",
        "StudyInstanceUID",
        "StudyDate",
        "StudyDescription",
        "AccessionNumber",
        "ModalitiesInStudy",
        "NumberOfStudyRelatedInstances",
    ],
    "SERIES": [
        "StudyInstanceUID",
        "SeriesInstanceUID",
        "Modality",
        "SeriesNumber",
        "SeriesDescription",
        "NumberOfSeriesRelatedInstances",
    ],
    "IMAGE": ["StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID", "SOPClassUID"],
}
_PENDING = (0xFF00, 0xFF01)


def check_level(level: str) -> str:
    """Normalise a query level (``ConfigError`` when unknown).

    Examples
    --------
    >>> check_level("study")
    'STUDY'
    """
    up = str(level).upper()
    if up not in LEVELS:
        raise ConfigError("level", expected="one of " + ", ".join(map(repr, LEVELS)), got=level)
    return up


def echo(peer: Peer, *, tls: ssl.SSLContext | None = None) -> float:
    """C-ECHO ``peer``; return the round trip in seconds (``NetworkError`` on failure)."""
    sop = require("pynetdicom.sop_class", extra="net")
    ae = new_ae(peer.calling, peer.timeout)
    ae.add_requested_context(sop.Verification)
    started = time.perf_counter()
    with associate(ae, peer, tls=tls) as assoc:
        status = assoc.send_c_echo()
    code = _status(status)
    if code != 0:
        raise NetworkError(str(peer), _failed("C-ECHO", code))
    return time.perf_counter() - started


def _status(status: Any) -> int | None:
    """The DIMSE status code of a response, None when there was no answer."""
    return int(status.Status) if status is not None and "Status" in status else None


def _failed(service: str, code: int | None) -> str:
    if code is None:
        return f"{service} got no answer (timed out, or the connection was lost)"
    return f"{service} failed with status 0x{code:04X}"


def _model(level: str, service: str) -> Any:
    sop = require("pynetdicom.sop_class", extra="net")
    root = "PatientRoot" if level == "PATIENT" else "StudyRoot"
    return getattr(sop, f"{root}QueryRetrieveInformationModel{service}")


def _identifier(level: str, query: Mapping[str, Any], keys: Iterable[str]) -> Any:
    from pydicom import Dataset
    from pydicom.datadict import tag_for_keyword

    for kw in query:
        if tag_for_keyword(kw) is None:
            raise ConfigError(f"query.{kw}", expected="a DICOM keyword", got=kw)
    ds = Dataset()
    ds.QueryRetrieveLevel = level
    for kw in keys:
        setattr(ds, kw, "")
    for kw, value in query.items():
        setattr(ds, kw, value)
    return ds


def find(
    peer: Peer,
    query: Mapping[str, Any] | None = None,
    *,
    level: str = "STUDY",
    tls: ssl.SSLContext | None = None,
) -> pl.DataFrame:
    """C-FIND at ``level``; one row per match, one string column per returned keyword.

    ``query`` maps keywords to matching values (``*`` wildcards, ``20240101-``
    ranges, as the standard allows); the level's usual return keys are asked for too.
    """
    lvl = check_level(level)
    model = _model(lvl, "Find")
    ae = new_ae(peer.calling, peer.timeout)
    ae.add_requested_context(model)
    keys = list(dict.fromkeys(_RETURN_KEYS[lvl] + list(query or {})))
    ident = _identifier(lvl, query or {}, keys)
    rows: list[dict[str, str | None]] = []
    with associate(ae, peer, tls=tls) as assoc:
        final: int | None = None
        for status, found in assoc.send_c_find(ident, model):
            final = _status(status)
            if final in _PENDING and found is not None:
                rows.append({kw: _text(found.get(kw)) for kw in keys})
    if final is None or final not in (0x0000,):
        raise NetworkError(str(peer), _failed("C-FIND", final))
    return pl.DataFrame(rows, schema={kw: pl.String for kw in keys}, orient="row")


def _text(v: Any) -> str | None:
    if v is None or v == "":
        return None
    if isinstance(v, list | tuple) or type(v).__name__ == "MultiValue":
        return "\\".join(str(x) for x in v)
    return str(v)


@dataclass
class RetrieveResult:
    """What one C-MOVE or C-GET brought in."""

    received: list[Received] = field(default_factory=list)
    completed: int = 0
    failed: int = 0
    warning: int = 0
    status: int | None = None

    @property
    def ok(self) -> bool:
        return self.status == 0x0000


def retrieve(
    peer: Peer,
    keys: Mapping[str, str],
    inbox: Inbox,
    *,
    level: str,
    method: Literal["move", "get"] = "move",
    port: int | None = None,
    tls: ssl.SSLContext | None = None,
) -> RetrieveResult:
    """Retrieve what ``keys`` (unique keys down to ``level``) names into ``inbox``.

    ``move`` asks the peer to C-STORE to our AE title, on a storage server this
    call runs on ``port`` (the port the peer has for our AE title); ``get`` receives
    the files on the same association and needs no port.
    """
    pynetdicom = require("pynetdicom", extra="net")
    lvl = check_level(level)
    ident = _identifier(lvl, keys, [])
    ae = new_ae(peer.calling, peer.timeout)
    result = RetrieveResult()
    handlers = [(pynetdicom.evt.EVT_C_STORE, inbox.handle_store)]
    before = len(inbox.received)
    if method == "get":
        model = _model(lvl, "Get")
        ae.add_requested_context(model)
        roles = []
        for sop_class, syntaxes in _get_contexts(peer, keys, lvl, tls):
            for ts in syntaxes:
                ae.add_requested_context(sop_class, [ts])
            roles.append(pynetdicom.build_role(sop_class, scp_role=True))
        with associate(ae, peer, tls=tls, ext_neg=roles, evt_handlers=handlers) as assoc:
            _collect(assoc.send_c_get(ident, model), result)
    elif method == "move":
        if port is None:
            raise ConfigError(
                "port",
                expected="the port the peer has on file for our AE title (C-MOVE sends there)",
                got=None,
                hint="or use method='get'",
            )
        model = _model(lvl, "Move")
        ae.add_requested_context(model)
        for cx in pynetdicom.AllStoragePresentationContexts:
            ae.add_supported_context(cx.abstract_syntax, _storage_syntaxes())
        server = ae.start_server(
            ("0.0.0.0", port), block=False, evt_handlers=handlers, ssl_context=None
        )
        try:
            with associate(ae, peer, tls=tls) as assoc:
                _collect(assoc.send_c_move(ident, peer.calling, model), result)
        finally:
            server.shutdown()
    else:
        raise ConfigError("method", expected="'move' or 'get'", got=method)
    result.received = inbox.received[before:]
    return result


def _get_contexts(
    peer: Peer, keys: Mapping[str, str], level: str, tls: ssl.SSLContext | None
) -> list[tuple[str, list[str]]]:
    """Storage contexts to offer for a C-GET: the peer sends each file only in a
    syntax we proposed, one syntax per context, so ask which SOP classes the match
    holds (a C-FIND at IMAGE level) and propose every syntax we read for each of
    them; with too many classes, native syntaxes for the standard's list."""
    pynetdicom = require("pynetdicom", extra="net")
    syntaxes = _storage_syntaxes()
    try:
        images = find(peer, dict(keys), level="IMAGE", tls=tls)
        classes = sorted({c for c in images["SOPClassUID"].to_list() if c})
    except NetworkError:
        classes = []
    if classes and len(classes) * len(syntaxes) <= 126:
        return [(c, syntaxes) for c in classes]
    return [(cx.abstract_syntax, syntaxes[:2]) for cx in pynetdicom.StoragePresentationContexts]


def _storage_syntaxes() -> list[str]:
    """Transfer syntaxes we accept when receiving: native first, then common compressed."""
    from pydicom import uid

    return [
        uid.ExplicitVRLittleEndian,
        uid.ImplicitVRLittleEndian,
        uid.DeflatedExplicitVRLittleEndian,
        uid.ExplicitVRBigEndian,
        uid.JPEGBaseline8Bit,
        uid.JPEGExtended12Bit,
        uid.JPEGLossless,
        uid.JPEGLosslessSV1,
        uid.JPEGLSLossless,
        uid.JPEGLSNearLossless,
        uid.JPEG2000Lossless,
        uid.JPEG2000,
        uid.HTJ2KLossless,
        uid.HTJ2K,
        uid.RLELossless,
    ]


def _collect(responses: Iterable[tuple[Any, Any]], result: RetrieveResult) -> None:
    for status, _ in responses:
        code = _status(status)
        result.status = code
        if status is not None:
            result.completed = int(status.get("NumberOfCompletedSuboperations", 0) or 0)
            result.failed = int(status.get("NumberOfFailedSuboperations", 0) or 0)
            result.warning = int(status.get("NumberOfWarningSuboperations", 0) or 0)
