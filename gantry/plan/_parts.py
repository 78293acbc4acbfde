"""Write the plan table part by part as it is built (bounded memory), and its tokens."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import polars as pl

from gantry.plan._builder import PLAN_SCHEMA, scoped_plan_parts
from gantry.plan._token_table import PlanTokenWriter
from gantry.store import Store

__all__ = ["write_plan"]


def write_plan(
    store: Store, config: Any, *, chunk_rows: int | None = None
) -> tuple[pl.DataFrame, int, int]:
    """Build the plan in chunks and write each as a part of the ``plan`` table.

    Returns ``(counts by action and rule, rows, instances)``; the plan itself is
    never whole in memory.
    """
    counts: list[pl.DataFrame] = []
    ids: list[pl.Series] = []
    rows = 0

    # the values verification searches each output for, computed from each part while it
    # is in memory (with its chunk's elements), so export only reads them
    tokens = PlanTokenWriter(store, config)

    def parts() -> Iterator[pl.DataFrame]:
        nonlocal rows
        empty = True
        for part, scope in scoped_plan_parts(store, config, chunk_rows=chunk_rows):
            rows += part.height
            counts.append(part.group_by("action", "rule").len("rows"))
            ids.append(part["file_id"].unique())
            tokens.add(scope, part)
            empty = False
            yield part
        if empty:  # the table exists, with its columns, even when nothing is planned
            yield pl.DataFrame(schema=PLAN_SCHEMA)

    try:
        store.write_table_parts("plan", parts())
        tokens.write()
    finally:
        tokens.close()
    summary = (
        pl.concat(counts)
        .group_by("action", "rule")
        .agg(pl.col("rows").sum().cast(pl.UInt32))
        .sort("rows", "action", "rule", descending=[True, False, False])
        if counts
        else pl.DataFrame(schema={"action": pl.String, "rule": pl.String, "rows": pl.UInt32})
    )
    instances = pl.concat(ids).n_unique() if ids else 0
    return summary, rows, instances
