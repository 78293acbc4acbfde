"""DICOM peers: ``dicom://AE@host:port`` addresses, associations, TLS and the
``transfers`` table every network verb records into."""

from __future__ import annotations

import hashlib
import logging
import re
import socket
import ssl
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import polars as pl

from gantry._deps import require
from gantry.errors import ConfigError, NetworkError

log = logging.getLogger("gantry.net")
_pynetdicom_log = logging.getLogger("pynetdicom")
if _pynetdicom_log.level == logging.NOTSET:
    # pynetdicom logs query identifiers and dataset dumps at INFO and DEBUG: keep its
    # lines at WARNING unless the user chose a level for it on purpose
    _pynetdicom_log.setLevel(logging.WARNING)

DEFAULT_AE_TITLE = "GANTRY"
DEFAULT_TIMEOUT = 30.0
TRANSFERS_TABLE = "transfers"
TRANSFER_SCHEMA = {
    "direction": pl.String,  # send | receive | retrieve
    "peer": pl.String,  # AE@host:port, a DICOMweb URL, or the calling AE title
    "file_id": pl.Int64,  # the session's instance (send), else null
    "file_path": pl.String,  # the local file sent or written
    "sop_class_uid": pl.String,
    "status": pl.String,  # ok | warning | failed
    "status_code": pl.Int64,  # DIMSE status (or HTTP status for DICOMweb); null: no answer
    "reason": pl.String,
    "bytes": pl.Int64,
    "at": pl.Datetime("us"),
}
_AE_RE = re.compile(r"^[\x20-\x5b\x5d-\x7e]{1,16}$")  # printable, no backslash


@dataclass(frozen=True)
class Peer:
    """A DICOM application entity to talk to.

    Examples
    --------
    >>> p = Peer.parse("dicom://ORTHANC@127.0.0.1:4242?ae_title=ME&timeout=5")
    >>> p.called, p.host, p.port, p.calling, p.timeout
    ('ORTHANC', '127.0.0.1', 4242, 'ME', 5.0)
    >>> str(p)
    'ORTHANC@127.0.0.1:4242'
    """

    called: str
    host: str
    port: int
    calling: str = DEFAULT_AE_TITLE
    timeout: float = DEFAULT_TIMEOUT

    @classmethod
    def parse(cls, url: str, *, calling: str | None = None, timeout: float | None = None) -> Peer:
        """Read ``dicom://CALLED_AET@host:port[?ae_title=CALLING&timeout=S]``."""
        parts = urlsplit(url)
        expected = "a URL like 'dicom://CALLED_AET@host:port'"
        if parts.scheme != "dicom" or not parts.username or not parts.hostname:
            raise ConfigError("source", expected=expected, got=url)
        try:
            port = parts.port
        except ValueError:
            port = None
        if port is None:
            raise ConfigError("source", expected=expected + " with a port", got=url)
        opts = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        unknown = set(opts) - {"ae_title", "timeout"}
        if unknown:
            raise ConfigError(
                "source", expected="query options among 'ae_title', 'timeout'", got=sorted(unknown)
            )
        calling = calling or opts.get("ae_title") or DEFAULT_AE_TITLE
        peer = cls(
            called=check_ae_title(parts.username, key="called AE title"),
            host=parts.hostname,
            port=port,
            calling=check_ae_title(calling, key="ae_title"),
            timeout=float(timeout if timeout is not None else opts.get("timeout", DEFAULT_TIMEOUT)),
        )
        return peer

    def __str__(self) -> str:
        return f"{self.called}@{self.host}:{self.port}"


def is_dicom_url(dest: object) -> bool:
    """True for a ``dicom://`` address (a network destination rather than a folder).

    Examples
    --------
    >>> is_dicom_url("dicom://PACS@10.0.0.1:104"), is_dicom_url("/data/out")
    (True, False)
    """
    return isinstance(dest, str) and dest.startswith("dicom://")


def is_web_url(dest: object) -> bool:
    """True for a DICOMweb base URL (``http://`` or ``https://``).

    Examples
    --------
    >>> is_web_url("http://127.0.0.1:8042/dicom-web"), is_web_url("out")
    (True, False)
    """
    return isinstance(dest, str) and dest.startswith(("http://", "https://"))


def check_ae_title(value: str, *, key: str = "ae_title") -> str:
    """An AE title: 1–16 printable characters, no backslash (``ConfigError`` otherwise).

    Examples
    --------
    >>> check_ae_title("GANTRY")
    'GANTRY'
    """
    if not isinstance(value, str) or not _AE_RE.match(value) or not value.strip():
        raise ConfigError(key, expected="1 to 16 printable characters without '\\'", got=value)
    return value


def tls_context(
    *,
    cert: str | Path | None = None,
    key: str | Path | None = None,
    ca: str | Path | None = None,
    server: bool = False,
) -> ssl.SSLContext:
    """An :class:`ssl.SSLContext` for DICOM TLS (PS3.15 Annex B): pass it as ``tls=``.

    A server (``listen``) needs ``cert`` and ``key``; with ``ca`` it also requires
    and verifies the callers' certificates. A client verifies the peer against
    ``ca`` (default: the system's trust store) and presents ``cert``/``key`` when given.
    """
    purpose = ssl.Purpose.CLIENT_AUTH if server else ssl.Purpose.SERVER_AUTH
    ctx = ssl.create_default_context(purpose, cafile=str(ca) if ca else None)
    if server and (cert is None or key is None):
        raise ConfigError("tls", expected="a certificate and a key for a server", got=None)
    if cert is not None:
        ctx.load_cert_chain(str(cert), str(key) if key else None)
    if server and ca is not None:
        ctx.verify_mode = ssl.CERT_REQUIRED
    return ctx


def new_ae(ae_title: str, timeout: float) -> Any:
    """A pynetdicom ``AE`` with Gantry's timeouts (raises MissingDependencyError)."""
    pynetdicom = require("pynetdicom", extra="net")
    ae = pynetdicom.AE(ae_title=ae_title)
    ae.acse_timeout = timeout
    ae.dimse_timeout = timeout
    ae.network_timeout = timeout
    ae.connection_timeout = timeout
    return ae


@contextmanager
def associate(
    ae: Any, peer: Peer, *, tls: ssl.SSLContext | None = None, **kwargs: Any
) -> Iterator[Any]:
    """An established association with ``peer`` (``NetworkError`` when refused)."""
    assoc = open_association(ae, peer, tls=tls, **kwargs)
    if not assoc.is_established:
        raise NetworkError(str(peer), association_failure(assoc))
    try:
        yield assoc
    finally:
        if assoc.is_established:
            assoc.release()


def open_association(
    ae: Any, peer: Peer, *, tls: ssl.SSLContext | None = None, **kwargs: Any
) -> Any:
    """``ae.associate`` to ``peer``, after checking the port answers at all.

    A refused connection is raised here as :class:`NetworkError` (pynetdicom would
    log it and leave its socket unclosed).
    """
    try:
        socket.create_connection((peer.host, peer.port), timeout=peer.timeout).close()
    except OSError as exc:
        raise NetworkError(
            str(peer), f"could not connect ({exc.strerror or type(exc).__name__})"
        ) from None
    tls_args = (tls, peer.host) if tls is not None else None
    return ae.associate(
        peer.host, peer.port, ae_title=peer.called, tls_args=tls_args, max_pdu=0, **kwargs
    )


def association_failure(assoc: Any) -> str:
    """Why an association did not establish, in words (codes only, never values)."""
    if assoc.is_rejected:
        rsp = getattr(assoc.acceptor, "primitive", None)
        source = getattr(rsp, "result_source", None)
        diagnostic = getattr(rsp, "diagnostic", None)
        detail = _REJECT_REASONS.get((source, diagnostic))
        if detail is None and source is not None:
            detail = f"source {source}, reason {diagnostic}"
        return "association rejected" + (f" ({detail})" if detail else "")
    if assoc.is_aborted and getattr(assoc, "rejected_contexts", None):
        return "association aborted (the peer accepted none of the proposed SOP classes)"
    return "could not connect, or no answer in time (peer down, wrong host or port, timed out)"


_REJECT_REASONS = {
    (1, 2): "application context name not supported",
    (1, 3): "calling AE title not recognised",
    (1, 7): "called AE title not recognised",
    (2, 1): "no reason given",
    (3, 1): "temporary congestion",
    (3, 2): "local limit exceeded",
}


def file_name_for(sop_instance_uid: str) -> str:
    """The relative path a received instance is stored under: a hash of its UID.

    The same instance received twice lands on the same name (no duplicate), and the
    name shows nothing of the original UID.

    Examples
    --------
    >>> file_name_for("1.2.3")
    'c4/c47f5b18b8a430e698b9fe15e51f6119.dcm'
    """
    h = hashlib.sha256(sop_instance_uid.encode()).hexdigest()[:32]
    return f"{h[:2]}/{h}.dcm"


def transfer_rows(rows: list[dict[str, Any]]) -> pl.DataFrame:
    """Rows for the ``transfers`` table (missing columns null, ``at`` now)."""
    now = datetime.now(UTC).replace(tzinfo=None)
    full = [{**{k: None for k in TRANSFER_SCHEMA}, "at": now, **r} for r in rows]
    return pl.DataFrame(full, schema=TRANSFER_SCHEMA)


def record_transfers(store: Any, rows: list[dict[str, Any]]) -> None:
    """Append per-object rows to the session's ``transfers`` table."""
    if rows:
        store.write_table(TRANSFERS_TABLE, transfer_rows(rows), mode="append")
