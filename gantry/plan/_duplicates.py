"""Instances that share a SOP Instance UID: decided once, when the plan is built.

Two files with one SOP Instance UID get one remapped UID and so one output
path: exporting both would overwrite one with the other and count two files
where one is on disk. The config key ``duplicates`` decides, per group of files
sharing a UID (ordered by file path):

* ``first`` (default): the first is exported, the others are excluded with a reason;
* ``skip``: every file of the group is excluded with a reason;
* ``suffix``: every file is exported, the n-th (n ≥ 2) under ``<uid>_<n>.dcm``.
"""

from __future__ import annotations

import polars as pl

from gantry.store import Store

__all__ = ["DECISION_SCHEMA", "duplicate_decisions"]

DECISION_SCHEMA = pl.Schema(
    {
        "file_id": pl.Int64(),
        "status": pl.String(),
        "reason": pl.String(),
        "name_suffix": pl.String(),
    }
)


def duplicate_decisions(store: Store, policy: str) -> pl.DataFrame:
    """``file_id, status, reason, name_suffix`` for every file in a duplicate group.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> from gantry.testing import make_instance
    >>> from gantry import Session
    >>> tmp = pathlib.Path(tempfile.mkdtemp())
    >>> for name in ("a.dcm", "b.dcm"):
    ...     _ = make_instance(tmp / "in" / name, SOPInstanceUID="1.2.3.4")
    >>> with Session(tmp / "s.db") as s:
    ...     _ = s.ingest(tmp / "in", workers=1, progress=False)
    ...     print(duplicate_decisions(s.store, "first").select("status", "name_suffix"))
    shape: (2, 2)
    ┌──────────┬─────────────┐
    │ status   ┆ name_suffix │
    │ ---      ┆ ---         │
    │ str      ┆ str         │
    ╞══════════╪═════════════╡
    │ planned  ┆             │
    │ excluded ┆             │
    └──────────┴─────────────┘
    """
    lf = store.scan("instances")
    if "SOPInstanceUID" not in lf.collect_schema().names():
        return pl.DataFrame(schema=DECISION_SCHEMA)
    ranked = (
        lf.select("file_id", "file_path", pl.col("SOPInstanceUID").cast(pl.String))
        .filter(pl.col("SOPInstanceUID").is_not_null())
        .with_columns(pl.len().over("SOPInstanceUID").alias("_n"))
        .filter(pl.col("_n") > 1)
        .sort("SOPInstanceUID", "file_path")
        .with_columns(pl.int_range(1, pl.len() + 1).over("SOPInstanceUID").alias("_rank"))
        .collect()
    )
    first = pl.col("_rank") == 1
    if policy == "skip":
        status = pl.lit("excluded")
        reason = pl.lit(
            "duplicate SOP Instance UID: every file sharing it is left out (duplicates: skip)"
        )
        suffix = pl.lit("")
    elif policy == "suffix":
        status = pl.lit("planned")
        reason = pl.lit(None, pl.String)
        suffix = (
            pl.when(first)
            .then(pl.lit(""))
            .otherwise(pl.concat_str(pl.lit("_"), pl.col("_rank").cast(pl.String)))
        )
    else:
        status = pl.when(first).then(pl.lit("planned")).otherwise(pl.lit("excluded"))
        reason = (
            pl.when(first)
            .then(None)
            .otherwise(
                pl.lit(
                    "duplicate SOP Instance UID: the first file by path is exported (duplicates: first)"
                )
            )
        )
        suffix = pl.lit("")
    return ranked.select(
        pl.col("file_id").cast(pl.Int64),
        status.alias("status"),
        reason.alias("reason"),
        suffix.alias("name_suffix"),
    ).cast(DECISION_SCHEMA)
