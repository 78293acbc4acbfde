"""The elements the plan sees: the index with the saved object-model edits laid over it.

Export applies saved edits before the plan's actions, so the plan must be built
over the edited values: an element an edit adds is planned like any other (a
``PatientComments`` set through ``session.edit`` is removed by the profile), a
deleted one has no action, and a changed UID is remapped from its new value.
"""

from __future__ import annotations

import json

import polars as pl

from gantry.store import Store

__all__ = ["with_edits"]


def _text(value_json: str | None) -> str:
    """The element's value as the index writes it (multi-values joined by a backslash)."""
    value = json.loads(value_json) if value_json is not None else None
    if value is None:
        return ""
    if isinstance(value, list):
        return "\\".join("" if v is None else str(v) for v in value)
    return str(value)


def with_edits(store: Store, el: pl.DataFrame, *, owns: pl.Expr | None = None) -> pl.DataFrame:
    """``el`` (rows of ``elements``) after the saved ``set``/``delete`` edits.

    ``el`` needs ``file_id, path, tag, depth, keyword, vr, private_creator, value``;
    other columns are kept (null on added rows).  ``owns``: which edits apply (a
    predicate on ``file_id``; default all), when ``el`` is one chunk of the index.
    """
    from gantry.model import load_edits

    edits = load_edits(store).filter(pl.col("op").is_in(["set", "delete"]))
    if owns is not None:
        edits = edits.filter(owns)
    if edits.height == 0:
        return el
    touched = edits.select("file_id", pl.col("tag").alias("_root"))
    top = pl.col("path").str.extract(r"^([0-9A-Fa-f]{8})", 1).str.to_uppercase()
    el = (
        el.with_columns(top.alias("_root"))
        .join(touched, on=["file_id", "_root"], how="anti")
        .drop("_root")
    )
    sets = edits.filter(pl.col("op") == "set")
    if sets.height == 0:
        return el
    added = pl.DataFrame(
        {
            "file_id": sets["file_id"],
            "path": sets["tag"].str.to_uppercase(),
            "tag": sets["tag"].str.to_uppercase(),
            "depth": pl.Series([0] * sets.height, dtype=el.schema["depth"]),
            "keyword": sets["keyword"],
            "vr": sets["vr"],
            "private_creator": pl.Series([None] * sets.height, dtype=pl.String),
            "value": [_text(v) for v in sets["value"].to_list()],
        }
    )
    return pl.concat([el, added.cast({c: el.schema[c] for c in added.columns})], how="diagonal")
