"""DICOMweb through dicomweb-client: QIDO-RS to query, WADO-RS to retrieve, STOW-RS to send."""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from gantry._deps import require
from gantry.errors import NetworkError
from gantry.net._peer import log
from gantry.net._receive import Inbox, Received
from gantry.net._send import Report, SendItem, SendOutcome

STOW_BATCH = 25
"""Files per STOW-RS request."""
_AS_STORED = (("application/dicom", "*"),)  # WADO-RS: as stored, no transcoding


def _client(url: str, timeout: float | None) -> Any:
    web = require("dicomweb_client", extra="net")
    import requests

    session = requests.Session()
    session.request = _with_timeout(session.request, timeout or 60.0)  # type: ignore[method-assign]
    return web.DICOMwebClient(url=url.rstrip("/"), session=session)


def _with_timeout(request: Any, timeout: float) -> Any:
    def call(*args: Any, **kwargs: Any) -> Any:
        kwargs.setdefault("timeout", timeout)
        return request(*args, **kwargs)

    return call


def _uid(item: Mapping[str, Any], tag: str) -> str | None:
    values = item.get(tag, {}).get("Value") or []
    return str(values[0]) if values else None


def _http_error(url: str, exc: Exception) -> NetworkError:
    rsp = getattr(exc, "response", None)
    code = getattr(rsp, "status_code", None)
    what = f"HTTP {code}" if code else type(exc).__name__
    return NetworkError(url, f"DICOMweb request failed ({what})")


def web_find(
    url: str, query: Mapping[str, Any], *, level: str, timeout: float | None = None
) -> list[dict[str, str | None]]:
    """QIDO-RS: one dict of unique keys per match (studies, series or instances)."""
    client = _client(url, timeout)
    filters = {k: str(v) for k, v in query.items()}
    try:
        if level in ("PATIENT", "STUDY"):
            found = client.search_for_studies(search_filters=filters)
        elif level == "SERIES":
            found = client.search_for_series(search_filters=filters)
        else:
            found = client.search_for_instances(search_filters=filters)
    except Exception as exc:  # noqa: BLE001 - requests/HTTP errors, named by code
        raise _http_error(url, exc) from None
    return [
        {
            "StudyInstanceUID": _uid(f, "0020000D"),
            "SeriesInstanceUID": _uid(f, "0020000E"),
            "SOPInstanceUID": _uid(f, "00080018"),
        }
        for f in found
    ]


def web_pull(
    url: str, query: Mapping[str, Any], *, level: str, dest: Path, timeout: float | None = None
) -> tuple[int, list[Received], list[str]]:
    """QIDO-RS then WADO-RS each match into ``dest``: (matches, received, errors)."""
    import pydicom

    client = _client(url, timeout)
    matches = web_find(url, query, level=level, timeout=timeout)
    inbox = Inbox(dest)
    errors: list[str] = []
    for m in matches:
        study, series, sop = m["StudyInstanceUID"], m["SeriesInstanceUID"], m["SOPInstanceUID"]
        try:
            if level in ("PATIENT", "STUDY"):
                datasets = client.iter_study(study, media_types=_AS_STORED)
            elif level == "SERIES":
                datasets = client.iter_series(study, series, media_types=_AS_STORED)
            else:
                datasets = iter(
                    [client.retrieve_instance(study, series, sop, media_types=_AS_STORED)]
                )
            for ds in datasets:
                buf = io.BytesIO()
                pydicom.dcmwrite(buf, ds, enforce_file_format=True)
                inbox.write(buf.getvalue(), str(ds.SOPInstanceUID), str(ds.SOPClassUID), "")
        except Exception as exc:  # noqa: BLE001 - one match failing does not stop the rest
            errors.append(_http_error(url, exc).reason)
    received = inbox.take()
    log.info("retrieved %d files by WADO-RS (%d matches)", len(received), len(matches))
    return len(matches), received, errors


def web_send(
    url: str, items: Sequence[SendItem], *, report: Report | None = None, timeout: float = 60
) -> list[SendOutcome]:
    """STOW-RS ``items`` in batches; one outcome per file (the response's per-SOP status)."""
    import pydicom

    client = _client(url, timeout)
    outcomes: list[SendOutcome] = []
    for start in range(0, len(items), STOW_BATCH):
        batch = items[start : start + STOW_BATCH]
        datasets, by_uid, got = [], {}, []
        for item in batch:
            ds = pydicom.dcmread(item.path)
            datasets.append(ds)
            by_uid[str(ds.SOPInstanceUID)] = (item, str(ds.SOPClassUID))
        try:
            rsp = client.store_instances(datasets=datasets)
        except Exception as exc:  # noqa: BLE001 - the whole batch failed, named by HTTP code
            reason = _http_error(url, exc).reason
            got = [
                SendOutcome(i.key, i.path, c, "failed", None, reason, 0) for i, c in by_uid.values()
            ]
        else:
            for ref in rsp.get("ReferencedSOPSequence", []):
                item, cls = by_uid.pop(str(ref.ReferencedSOPInstanceUID))
                size = Path(item.path).stat().st_size
                got.append(SendOutcome(item.key, item.path, cls, "ok", 200, None, size))
            for ref in rsp.get("FailedSOPSequence", []):
                item, cls = by_uid.pop(str(ref.ReferencedSOPInstanceUID))
                code = int(ref.get("FailureReason", 0) or 0) or None
                reason = f"the peer refused the file (status 0x{code:04X})" if code else "refused"
                got.append(SendOutcome(item.key, item.path, cls, "failed", code, reason, 0))
            for item, cls in by_uid.values():
                got.append(
                    SendOutcome(item.key, item.path, cls, "failed", None, "not in the response", 0)
                )
        outcomes += got
        if report is not None:
            report(got)
    return outcomes
