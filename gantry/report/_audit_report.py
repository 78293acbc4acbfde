"""The "what changed and why" record: the inventory with the plan summarised per instance."""

from __future__ import annotations

import os
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

import polars as pl

from gantry.errors import ConfigError, ExportError
from gantry.store import Store

__all__ = ["ACTION_NAMES", "audit_table", "write_audit_report"]

ACTION_NAMES: Final[dict[str, str]] = {
    "X": "removed",
    "Z": "emptied",
    "D": "dummied",
    "C": "cleaned",
    "U": "remapped",
    "S": "shifted",
    "P": "pseudonymised",
    "R": "replaced",
    "H": "hashed",
    "A": "added",
    "REDACT": "redacted",
}
"""Plan action → the word used in column names (``n_removed``, ``removed_keywords``)."""

_INVENTORY: Final = (
    "file_id",
    "file_path",
    "PatientID",
    "StudyInstanceUID",
    "SeriesInstanceUID",
    "SOPInstanceUID",
    "Modality",
    "Manufacturer",
)


def audit_table(store: Store) -> pl.DataFrame:
    """One row per indexed instance: the inventory and what the plan does to it.

    Columns: the inventory (``file_id``, ``file_path``, hierarchy keys, Modality,
    Manufacturer), then per action ``n_<word>`` (count of plan rows) and
    ``<word>_keywords`` (distinct keywords, the tag when there is none, in the plan's
    order: tag order, nested elements after their sequence),
    ``redaction_zones`` (zones painted over), ``rules`` (sorted distinct rule
    names) and ``n_actions``.  Instances the plan leaves alone have zero counts.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> from gantry.testing import make_instance
    >>> from gantry import Session
    >>> tmp = pathlib.Path(tempfile.mkdtemp())
    >>> _ = make_instance(tmp / "d" / "a.dcm", modality="CT")
    >>> with Session(tmp / "s.db") as s:
    ...     _ = s.ingest(tmp / "d", workers=1, progress=False)
    ...     _ = s.anonymize()
    ...     row = audit_table(s.store).row(0, named=True)
    >>> row["n_pseudonymised"], row["pseudonymised_keywords"]
    (2, ['PatientName', 'PatientID'])
    """
    if "plan" not in store.table_names():
        raise ExportError("no plan in this session: run `anonymize` first")
    inst = store.scan("instances")
    have = set(inst.collect_schema().names())
    inventory = inst.select(
        [
            pl.col(c).cast(pl.String) if c not in ("file_id",) else pl.col(c)
            for c in _INVENTORY
            if c in have
        ]
        + [pl.lit(None, pl.String).alias(c) for c in _INVENTORY if c not in have]
    ).select(_INVENTORY)
    # one pass over the plan; categorical names keep the group-by cheap, and the lists
    # keep the plan's order (file_id, path: DICOM tag order), so they need no sort
    plan = store.scan("plan").select(
        "file_id",
        pl.coalesce(pl.col("keyword"), pl.col("tag")).cast(pl.Categorical).alias("name"),
        "action",
        pl.col("rule").cast(pl.Categorical),
    )
    per_action = (
        plan.group_by("file_id", "action")
        .agg(
            pl.len().cast(pl.Int64).alias("n"),
            pl.col("name").unique(maintain_order=True).alias("names"),
            pl.col("rule").unique(maintain_order=True).alias("rules"),
        )
        .collect()
    )
    wide = inventory.collect()
    for action, word in ACTION_NAMES.items():
        part = per_action.filter(pl.col("action") == action).select(
            "file_id",
            pl.col("n").alias(f"n_{word}"),
            pl.col("names").cast(pl.List(pl.String)).alias(f"{word}_keywords"),
        )
        wide = wide.join(part, on="file_id", how="left").with_columns(
            pl.col(f"n_{word}").fill_null(0),
            pl.col(f"{word}_keywords").fill_null(pl.lit([], pl.List(pl.String))),
        )
    rules = (
        per_action.select("file_id", pl.col("rules").cast(pl.List(pl.String)))
        .explode("rules")
        .unique(maintain_order=True)
        .group_by("file_id", maintain_order=True)
        .agg(pl.col("rules").sort())
    )
    totals = per_action.group_by("file_id").agg(pl.col("n").sum().alias("n_actions"))
    zones = (
        store.scan("plan")
        .filter(pl.col("action") == "REDACT")
        .select(
            "file_id", pl.col("new_value").str.json_path_match("$.zones").alias("redaction_zones")
        )
        .unique("file_id", keep="first")
        .collect()
    )
    wide = (
        wide.join(rules, on="file_id", how="left")
        .join(totals, on="file_id", how="left")
        .join(zones, on="file_id", how="left")
        .with_columns(
            pl.col("rules").fill_null(pl.lit([], pl.List(pl.String))),
            pl.col("n_actions").fill_null(0),
        )
    )
    return wide.sort("PatientID", "StudyInstanceUID", "SeriesInstanceUID", "file_id")


def write_audit_report(
    store: Store,
    path: str | os.PathLike[str],
    *,
    format: str = "csv",
    storage_options: Mapping[str, Any] | None = None,
) -> Path | str:
    """Write :func:`audit_table` to ``path`` as CSV (lists joined by ``;``) or Parquet.

    The file names original identifiers (paths, PatientID, UIDs): it is the data
    controller's record and belongs with the session, never in an export folder.
    ``path`` may be a URL (``s3://bucket/audit.csv``): the file is written
    locally, then published whole (``storage_options`` go to fsspec).
    """
    if format not in ("csv", "parquet"):
        raise ConfigError("format", expected="'csv' or 'parquet'", got=format)
    from gantry.storage._fs import is_url
    from gantry.storage._outputs import publish_output

    if is_url(path):
        url = os.fspath(path)
        publish_output(
            url, lambda local: write_audit_report(store, local, format=format), storage_options
        )
        return url
    table = audit_table(store)
    dest = Path(path).expanduser().absolute()
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.{uuid.uuid4().hex}.tmp")
    try:
        if format == "parquet":
            table.write_parquet(tmp, compression="zstd")
        else:
            lists = [n for n, t in table.schema.items() if isinstance(t, pl.List)]
            table.with_columns(pl.col(lists).list.join(";")).write_csv(tmp)
        os.replace(tmp, dest)
    finally:
        if tmp.exists():
            tmp.unlink()
    return dest
