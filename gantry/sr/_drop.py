"""Whole SR content items removed from the tree (plan side).

Under Clean Structured Content most content items are cleaned in place
(:mod:`gantry.sr._clean`).  Some are removed whole instead, with everything
below them:

- items whose value cannot be cleaned: a DATE or DATETIME item whose value
  is no date the patient's shift can move (the plan would empty a Type 1
  value, an invalid item) - rule ``sr-uncleanable``;
- items the config names in ``sr_drop``: a value type (``PNAME``, ``TEXT``,
  ...) or a concept name code (``121008`` or ``DCM:121008``) - rule
  ``sr-drop``;
- by-reference items (a Referenced Content Item Identifier) that point into
  a removed item, which would point nowhere - rule ``sr-by-reference``.

A removed item is one plan row: action ``X`` on the item's path, such as
``0040A730[1].0040A730[3]`` (a path ending with an item index, where every
other row ends with a tag).  The plan keeps no row inside it.  Export deletes
the items last-first, drops a Content Sequence left empty (it is Type 1C:
present only when the item has children), renumbers the by-reference
identifiers that pointed past a removed sibling, and reads every other row's
path in the renumbered tree (:func:`gantry.export._items.drop_items`).
The document root is never removed.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Final

import polars as pl

if TYPE_CHECKING:
    from gantry.store import Store

__all__ = ["DROP_RULES", "VALUE_TYPES", "drop_rows", "drop_targets", "is_item_path"]

VALUE_TYPES: Final = frozenset(
    "CONTAINER TEXT CODE NUM DATE TIME DATETIME UIDREF PNAME COMPOSITE IMAGE WAVEFORM "
    "SCOORD SCOORD3D TCOORD TABLE".split()
)
"""Content item value types (PS3.3 Table C.17.3-1 and supplements) ``sr_drop`` accepts."""

DROP_RULES: Final = ("sr-drop", "sr-uncleanable", "sr-by-reference")
"""Plan rules of removed content items, in order of precedence."""

_DATE_VALUES: Final = ("0040A121", "0040A120")  # Date, DateTime of a content item
_CONTENT: Final = "0040A730"


def is_item_path(path: pl.Expr) -> pl.Expr:
    """Whether a plan path names a sequence item (``...[3]``) rather than an element."""
    return path.str.ends_with("]")


def drop_targets(items: pl.DataFrame, names: Iterable[str]) -> pl.Series:
    """Which ``sr_content`` rows the config's ``sr_drop`` names (a boolean mask).

    Examples
    --------
    >>> import polars as pl
    >>> items = pl.DataFrame({"depth": [0, 1, 1, 1], "value_type": ["CONTAINER", "PNAME",
    ...     "TEXT", "CODE"], "concept_code": ["18748-4", "121008", "121071", "121071"],
    ...     "concept_scheme": ["LN", "DCM", "DCM", "99X"]})
    >>> drop_targets(items, ["pname", "DCM:121071"]).to_list()
    [False, True, True, False]
    """
    types, codes, scoped = [], [], []
    for name in names:
        text = str(name).strip()
        if ":" in text:
            scheme, _, code = text.partition(":")
            scoped.append(f"{scheme.strip().upper()}:{code.strip()}")
        elif text.upper() in VALUE_TYPES:
            types.append(text.upper())
        else:
            codes.append(text)
    key = pl.concat_str(
        pl.col("concept_scheme").fill_null("").str.to_uppercase(),
        pl.lit(":"),
        pl.col("concept_code").fill_null(""),
    )
    hit = (
        pl.col("value_type").is_in(types) | pl.col("concept_code").is_in(codes) | key.is_in(scoped)
    )
    return items.select((hit.fill_null(False) & (pl.col("depth") > 0)).alias("drop"))["drop"]


def drop_rows(
    plan: pl.DataFrame, store: Store, *, names: Iterable[str], clean_content: bool
) -> pl.DataFrame:
    """Remove whole content items from ``plan`` (the plan frame, columns as built).

    Returns the plan without rows inside a removed item, plus one ``X`` row per
    removed item (the top-most: an item inside another removed one has none).
    A file whose Content Sequence the plan removes or empties is left alone.
    """
    names = [n for n in names if str(n).strip()]
    if not clean_content and not names:
        return plan
    if "sr_content" not in store.table_names():
        return plan
    items = (
        store.scan("sr_content")
        .select(
            "file_id",
            "tree_path",
            "depth",
            "item_path",
            "value_type",
            "concept_code",
            "concept_scheme",
            "referenced_item",
        )  # fmt: skip
        .collect()
    )
    if items.height == 0:
        return plan
    reason = pl.Series("reason", [None] * items.height, dtype=pl.String)
    if names:
        reason = pl.select(
            pl.when(drop_targets(items, names)).then(pl.lit("sr-drop")).otherwise(reason)
        ).to_series()
    items = items.with_columns(reason.alias("reason"))
    if clean_content:
        # a date the shift could not move is emptied by the plan: its item is invalid then
        emptied = plan.filter(
            (pl.col("action") == "Z")
            & pl.col("tag").is_in(_DATE_VALUES)
            & pl.col("path").str.starts_with(_CONTENT)
        ).select("file_id", pl.col("path").str.slice(0, pl.col("path").str.len_chars() - 8))
        items = (
            items.join(
                emptied.rename({"path": "item_path"}).with_columns(pl.lit(True).alias("_bad")),
                on=["file_id", "item_path"],
                how="left",
            )
            .with_columns(
                pl.when(pl.col("reason").is_null() & pl.col("_bad").fill_null(False))
                .then(pl.lit("sr-uncleanable"))
                .otherwise(pl.col("reason"))
                .alias("reason")
            )
            .drop("_bad")
        )
    items = items.with_columns(pl.when(pl.col("depth") > 0).then(pl.col("reason")).alias("reason"))
    items = _close_references(items)
    dropped = _uncovered(items.filter(pl.col("reason").is_not_null()), plan)
    if dropped.height == 0:
        return plan
    top = _top_most(dropped)
    prefixes = top.select("file_id", pl.col("item_path").alias("_prefix"))
    inside = (
        plan.select("file_id", "path")
        .join(prefixes, on="file_id")
        .filter(pl.col("path").str.starts_with(pl.col("_prefix")))
        .select("file_id", "path")
        .unique()
    )
    rest = plan.join(inside, on=["file_id", "path"], how="anti")
    rows = top.select(
        "file_id",
        pl.col("item_path").str.strip_suffix(".").alias("path"),
        pl.lit(_CONTENT).alias("tag"),
        pl.lit("ContentSequence").alias("keyword"),
        pl.lit("SQ").alias("vr"),
        pl.lit("X").alias("action"),
        pl.lit(None, pl.String).alias("new_value"),
        pl.col("reason").alias("rule"),
    )
    extra = [c for c in rest.columns if c not in rows.columns]
    rows = rows.with_columns([pl.lit(None).cast(rest.schema[c]).alias(c) for c in extra])
    return pl.concat([rest, rows.select(rest.columns).cast(rest.schema)])


def _uncovered(dropped: pl.DataFrame, plan: pl.DataFrame) -> pl.DataFrame:
    """``dropped`` without items that a sequence the plan removes, empties or replaces by
    its dummy (which keeps only its first item) takes away already."""
    from gantry.plan._paths import sequence_ancestors

    seqs = plan.filter((pl.col("vr") == "SQ") & pl.col("action").is_in(["X", "Z", "D"])).select(
        "file_id", pl.col("path").alias("_anc"), pl.col("action").alias("_anc_action")
    )
    covered = (
        dropped.select("file_id", pl.concat_str("item_path", pl.lit("00000000")).alias("path"))
        .pipe(sequence_ancestors)
        .join(seqs, on=["file_id", "_anc"], how="inner")
        .filter(
            (pl.col("_anc_action") != "D")
            | (pl.col("_item") > 0)
            # the dummy's own first item: removing it would promote an unplanned sibling
            | (pl.col("path").str.replace(r"\[\d+\]\.00000000$", "") == pl.col("_anc"))
        )
        .select("file_id", pl.col("path").str.strip_suffix("00000000").alias("item_path"))
    )
    return dropped.join(covered, on=["file_id", "item_path"], how="anti")


def _under(path: pl.Expr, ancestor: pl.Expr) -> pl.Expr:
    return (path == ancestor) | path.str.starts_with(pl.concat_str(ancestor, pl.lit(".")))


def _close_references(items: pl.DataFrame) -> pl.DataFrame:
    """Mark by-reference items whose target lies in a removed item, until none is left."""
    refs = items.filter(pl.col("referenced_item").is_not_null())
    if refs.height == 0:
        return items
    while True:
        removed = items.filter(pl.col("reason").is_not_null()).select(
            "file_id", pl.col("tree_path").alias("_gone")
        )
        dangling = (
            items.filter(pl.col("reason").is_null() & pl.col("referenced_item").is_not_null())
            .join(removed, on="file_id")
            .filter(_under(pl.col("referenced_item"), pl.col("_gone")))
            .select("file_id", "tree_path")
            .unique()
        )
        if dangling.height == 0:
            return items
        items = (
            items.join(
                dangling.with_columns(pl.lit(True).alias("_dangling")),
                on=["file_id", "tree_path"],
                how="left",
            )
            .with_columns(
                pl.when(pl.col("_dangling").fill_null(False))
                .then(pl.lit("sr-by-reference"))
                .otherwise(pl.col("reason"))
                .alias("reason")
            )
            .drop("_dangling")
        )


def _top_most(dropped: pl.DataFrame) -> pl.DataFrame:
    """The removed items that no other removed item contains."""
    above = (
        dropped.select("file_id", "tree_path")
        .join(dropped.select("file_id", pl.col("tree_path").alias("_above")), on="file_id")
        .filter(pl.col("tree_path").str.starts_with(pl.concat_str("_above", pl.lit("."))))
        .select("file_id", "tree_path")
        .unique()
    )
    return dropped.join(above, on=["file_id", "tree_path"], how="anti")
