"""Review decisions: approve or exclude instances, set a device's redaction zones.

Every decision goes through the mechanisms export already honours, and is
recorded as one ``review`` row in ``runs`` (who, when, what; file ids, reason
codes and zone numbers, never a value from a file):

- **exclude** soft-deletes the instances with an object-model edit
  (:meth:`gantry.model.Collection.exclude`, saved at once), so every later
  export leaves them out ("excluded by an edit");
- **approve** records the sign-off and undoes an earlier exclusion
  (:meth:`~gantry.model.Collection.restore`);
- **zones** edits the ``machines`` entry of the device (Manufacturer, model,
  Rows, Columns) in the stored config, adding one when no entry matches, and
  plans again with it (:meth:`gantry.Session.anonymize`): an export without a
  config uses the stored one, so it redacts the new zones.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any, Final

import polars as pl

from gantry.errors import ConfigError

if TYPE_CHECKING:
    from polars._typing import PolarsDataType

    from gantry.session import Session

__all__ = [
    "DECISIONS_SCHEMA",
    "EXCLUDE_REASONS",
    "approve",
    "decisions",
    "device_zones",
    "exclude",
    "latest_decisions",
    "set_device_zones",
]

#: The reasons a reviewer may pick (a code and its words; never free text, so no
#: patient's value can reach the edit log or ``runs``).
EXCLUDE_REASONS: Final[dict[str, str]] = {
    "burned-in-text": "identifying text burned into the pixels",
    "face": "a face or other identifying feature is visible",
    "not-for-release": "not to be released (wrong patient, study or consent)",
    "unusable": "unusable image (corrupt, blank or a test image)",
}

_DECISION_COLUMNS: dict[str, PolarsDataType] = {
    "at": pl.Datetime("us"),
    "reviewer": pl.String,
    "decision": pl.String,
    "level": pl.String,
    "instances": pl.Int64,
    "reason": pl.String,
    "machine": pl.String,
    "zones": pl.String,
    "file_ids": pl.List(pl.Int64),
}
#: Columns of :func:`decisions`.
DECISIONS_SCHEMA: Final = pl.Schema(_DECISION_COLUMNS)

_KIND: Final = "review"


def _collection(session: Session, file_ids: Iterable[int]) -> Any:
    ids = sorted({int(i) for i in file_ids})
    if not ids:
        raise ConfigError("file_ids", expected="at least one indexed instance", got=ids)
    found = session.instances(pl.col("file_id").is_in(ids))
    if len(found) != len(ids):
        missing = sorted(set(ids) - {int(i) for i in found.file_ids})
        raise ConfigError("file_ids", expected="indexed instances", got=missing)
    return found


def _record(session: Session, details: dict[str, Any], instances: int) -> None:
    with session.store.run(_KIND, details) as counts:
        counts["instances"] = instances


def exclude(
    session: Session,
    file_ids: Iterable[int],
    *,
    reason: str,
    reviewer: str,
    level: str = "instance",
) -> int:
    """Exclude instances from every later export; returns how many.

    ``reason`` is a key of :data:`EXCLUDE_REASONS`. The exclusion is an
    object-model edit, saved at once; :func:`approve` undoes it.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> from gantry import Session
    >>> from gantry.testing import make_instance
    >>> tmp = pathlib.Path(tempfile.mkdtemp())
    >>> _ = make_instance(tmp / "d" / "a.dcm")
    >>> with Session(tmp / "s.db") as s:
    ...     _ = s.ingest(tmp / "d", workers=1, progress=False)
    ...     fid = int(s.instances()[0].file_id)
    ...     exclude(s, [fid], reason="face", reviewer="ana")
    ...     print(s.instances()[0].excluded, decisions(s)["decision"].to_list())
    1
    True ['exclude']
    """
    if reason not in EXCLUDE_REASONS:
        raise ConfigError("reason", expected=f"one of {sorted(EXCLUDE_REASONS)}", got=reason)
    found = _collection(session, file_ids)
    n = int(found.exclude(f"review: {EXCLUDE_REASONS[reason]}"))
    session.save()
    ids = [int(i) for i in found.file_ids]
    _record(
        session,
        {"decision": "exclude", "level": level, "reason": reason, "reviewer": reviewer,
         "file_ids": ids},
        n,
    )  # fmt: skip
    return n


def approve(
    session: Session, file_ids: Iterable[int], *, reviewer: str, level: str = "instance"
) -> int:
    """Sign off instances for release (an earlier exclusion is undone); returns how many.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> from gantry import Session
    >>> from gantry.testing import make_instance
    >>> tmp = pathlib.Path(tempfile.mkdtemp())
    >>> _ = make_instance(tmp / "d" / "a.dcm")
    >>> with Session(tmp / "s.db") as s:
    ...     _ = s.ingest(tmp / "d", workers=1, progress=False)
    ...     fid = int(s.instances()[0].file_id)
    ...     _ = exclude(s, [fid], reason="unusable", reviewer="ana")
    ...     approve(s, [fid], reviewer="ben")
    ...     print(s.instances()[0].excluded, latest_decisions(s) == {fid: "approve"})
    1
    False True
    """
    found = _collection(session, file_ids)
    ids = [int(i) for i in found.file_ids]
    excluded = [i for i, inst in zip(ids, found, strict=True) if inst.excluded]
    if excluded:
        found.restore()
        session.save()
    _record(
        session,
        {"decision": "approve", "level": level, "reviewer": reviewer, "file_ids": ids,
         "restored": len(excluded)},
        len(ids),
    )  # fmt: skip
    return len(ids)


def decisions(session: Session) -> pl.DataFrame:
    """Every review decision, oldest first (schema :data:`DECISIONS_SCHEMA`)."""
    rows = session.sql(
        "SELECT started_at, details FROM runs WHERE kind = ? ORDER BY started_at", [_KIND]
    )
    out: dict[str, list[Any]] = {c: [] for c in DECISIONS_SCHEMA}
    for at, text in rows.iter_rows():
        d = json.loads(text) if text else {}
        out["at"].append(at)
        out["reviewer"].append(d.get("reviewer"))
        out["decision"].append(d.get("decision"))
        out["level"].append(d.get("level"))
        ids = [int(i) for i in d.get("file_ids", [])]
        out["instances"].append(len(ids))
        out["reason"].append(d.get("reason"))
        out["machine"].append(d.get("machine"))
        out["zones"].append(json.dumps(d["zones"]) if "zones" in d else None)
        out["file_ids"].append(ids)
    return pl.DataFrame(out, schema=DECISIONS_SCHEMA)


def latest_decisions(session: Session) -> dict[int, str]:
    """``file_id`` → its latest ``approve``/``exclude`` decision."""
    latest: dict[int, str] = {}
    frame = decisions(session).filter(pl.col("decision").is_in(["approve", "exclude"]))
    for decision, ids in frame.select("decision", "file_ids").iter_rows():
        for i in ids:
            latest[int(i)] = decision
    return latest


# -- device zones ----------------------------------------------------------------------------


def _device(session: Session, file_id: int) -> dict[str, Any]:
    cols = set(session.table("instances").collect_schema().names())
    wanted = [c for c in ("Manufacturer", "ManufacturerModelName", "Rows", "Columns") if c in cols]
    row = session.sql(
        f"SELECT {', '.join(['file_id', *wanted])} FROM instances WHERE file_id = ?", [file_id]
    )
    if row.height == 0:
        raise ConfigError("file_id", expected="an indexed instance", got=file_id)
    values = row.row(0, named=True)
    return {c: values.get(c) for c in ("Manufacturer", "ManufacturerModelName", "Rows", "Columns")}


def _config(session: Session) -> Any:
    from gantry.config import load_config

    stored = session.stored_config()
    return stored if stored is not None else load_config(None)


def device_zones(session: Session, file_id: int) -> tuple[str | None, list[list[int]]]:
    """The ``machines`` entry of the stored config that matches this instance, and its zones.

    ``(None, [])`` when no entry matches.
    """
    from gantry.audit import match_machines

    machines = list(_config(session).machines)
    if not machines:
        return None, []
    hit = (
        match_machines(
            session.table("instances").filter(pl.col("file_id") == file_id),
            machines,
            elements=session.table("elements").filter(pl.col("file_id") == file_id),
        )
        .collect()
        .filter(pl.col("file_id") == file_id)
    )
    if hit.height == 0:
        return None, []
    return str(hit["machine_name"][0]), [list(z) for z in hit["zones"][0]]


def _check_zones(zones: Sequence[Sequence[int]], rows: Any, cols: Any) -> list[list[int]]:
    out: list[list[int]] = []
    for i, zone in enumerate(zones):
        if len(zone) != 4:
            raise ConfigError(f"zones[{i}]", expected="4 numbers r1, r2, c1, c2", got=list(zone))
        r1, r2, c1, c2 = (int(v) for v in zone)
        if not (0 <= r1 < r2 and 0 <= c1 < c2):
            raise ConfigError(
                f"zones[{i}]", expected="0 <= r1 < r2 and 0 <= c1 < c2", got=[r1, r2, c1, c2]
            )
        if (rows and r1 >= int(rows)) or (cols and c1 >= int(cols)):
            raise ConfigError(
                f"zones[{i}]",
                expected=f"a zone inside the {rows}x{cols} image",
                got=[r1, r2, c1, c2],
            )
        out.append([r1, min(r2, int(rows or r2)), c1, min(c2, int(cols or c2))])
    return out


def set_device_zones(
    session: Session, file_id: int, zones: Sequence[Sequence[int]], *, reviewer: str
) -> str:
    """Set the redaction zones of the device that made ``file_id``; returns the entry's name.

    The entry of the stored config that matches the instance is changed (all its
    instances get the zones); without one, an entry matching the device's
    Manufacturer, model, Rows and Columns is added. No zones removes the entry.
    The plan is built again with the new config, which is stored with it.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> from gantry import Session
    >>> from gantry.testing import make_instance
    >>> tmp = pathlib.Path(tempfile.mkdtemp())
    >>> _ = make_instance(tmp / "d" / "a.dcm", Manufacturer="Acme")
    >>> with Session(tmp / "s.db") as s:
    ...     _ = s.ingest(tmp / "d", workers=1, progress=False)
    ...     fid = int(s.instances()[0].file_id)
    ...     name = set_device_zones(s, fid, [[0, 8, 0, 32]], reviewer="ana")
    ...     print(name, device_zones(s, fid)[1])
    ...     print(s.sql("SELECT new_value FROM plan WHERE action = 'REDACT'").item())
    review-1 [[0, 8, 0, 32]]
    {"zones": [[0, 8, 0, 32]], "fill": 0}
    """
    device = _device(session, file_id)
    clean = _check_zones(zones, device["Rows"], device["Columns"])
    cfg = _config(session)
    current, _ = device_zones(session, file_id)
    data = cfg.to_dict()
    machines: list[dict[str, Any]] = data.get("machines", [])
    if current is not None:
        name = current
        entry = next(m for m in machines if m["name"] == name)
        if clean:
            entry["redaction_zones"] = clean
        else:
            machines.remove(entry)
    else:
        taken = {m["name"] for m in machines}
        name = next(f"review-{n}" for n in range(1, len(taken) + 2) if f"review-{n}" not in taken)
        match = {
            key: device[col]
            for key, col in (("manufacturer", "Manufacturer"), ("model", "ManufacturerModelName"),
                             ("rows", "Rows"), ("columns", "Columns"))
            if device[col] is not None and str(device[col]).strip()
        }  # fmt: skip
        if clean:
            machines.append({"name": name, "match": match, "redaction_zones": clean, "fill": 0})
    data["machines"] = machines
    from gantry.config import load_config

    session.anonymize(load_config(data))
    _record(
        session,
        {"decision": "zones", "level": "device", "reviewer": reviewer, "machine": name,
         "zones": clean, "file_ids": [int(file_id)]},
        1,
    )  # fmt: skip
    return name
