"""The ``sr_content`` table: one row per Structured Report content item.

The content tree of an SR is already in ``elements`` (every element at every
depth, with its path).  :func:`content_table` regroups those rows per content
item with whole-column Polars expressions - no dataset is parsed again and no
per-file Python runs - so it inherits whatever the ingest readers accept
(depth limits included) and cannot fail on a file the readers indexed.

A content item is the document root (a top-level Value Type) or any item of
a Content Sequence (0040,A730) reached from the root through Content
Sequences only.  Its ``tree_path`` follows PS3.3's content item identifier
notation: the root is ``1``, its second child ``1.2``, that child's first
child ``1.2.1``.  ``item_path`` is the element-path prefix of the item
(``0040A730[1].`` for ``1.2``; empty for the root), so ``item_path ||
'0040A160'`` is the path of the item's Text Value in ``elements`` and in the
plan.  By-reference items (a Referenced Content Item Identifier instead of a
value) have a null ``value_type`` and the target in ``referenced_item``.
"""

from __future__ import annotations

import logging
from typing import Final

import polars as pl
import pyarrow as pa

__all__ = ["SR_CONTENT_SCHEMA", "content_table"]

log = logging.getLogger(__name__)

CONTENT_SEQUENCE: Final = "0040A730"

SR_CONTENT_SCHEMA: Final = pa.schema(
    [
        ("file_id", pa.int64()),
        ("tree_path", pa.string()),
        ("parent_path", pa.string()),
        ("depth", pa.int16()),
        ("item_path", pa.string()),
        ("relationship_type", pa.string()),
        ("value_type", pa.string()),
        ("concept_code", pa.string()),
        ("concept_scheme", pa.string()),
        ("concept_meaning", pa.string()),
        ("text_value", pa.string()),
        ("code_value", pa.string()),
        ("code_scheme", pa.string()),
        ("code_meaning", pa.string()),
        ("numeric_value", pa.float64()),
        ("unit_code", pa.string()),
        ("unit_scheme", pa.string()),
        ("unit_meaning", pa.string()),
        ("date_value", pa.date32()),
        ("time_value", pa.string()),
        ("datetime_value", pa.string()),
        ("uid_value", pa.string()),
        ("person_name", pa.string()),
        ("graphic_type", pa.string()),
        ("graphic_data", pa.list_(pa.float64())),
        ("temporal_range_type", pa.string()),
        ("referenced_sop_class", pa.string()),
        ("referenced_sop_instance", pa.string()),
        ("referenced_item", pa.string()),
        ("observation_datetime", pa.string()),
        ("template_id", pa.string()),
    ]
)
"""Columns of ``sr_content`` (documented in ``docs/queries.md``)."""

# element path inside an item -> the raw column it feeds
_FIELDS: Final = {
    "0040A010": "relationship_type",
    "0040A040": "value_type",
    "0040A043[0].00080100": "_concept_code",
    "0040A043[0].00080119": "_concept_long",
    "0040A043[0].00080120": "_concept_urn",
    "0040A043[0].00080102": "concept_scheme",
    "0040A043[0].00080104": "concept_meaning",
    "0040A160": "text_value",
    "0040A168[0].00080100": "_code_code",
    "0040A168[0].00080119": "_code_long",
    "0040A168[0].00080120": "_code_urn",
    "0040A168[0].00080102": "code_scheme",
    "0040A168[0].00080104": "code_meaning",
    "0040A300[0].0040A30A": "_numeric_text",
    "0040A300[0].0040A161": "_numeric_float",
    "0040A300[0].004008EA[0].00080100": "unit_code",
    "0040A300[0].004008EA[0].00080102": "unit_scheme",
    "0040A300[0].004008EA[0].00080104": "unit_meaning",
    "0040A121": "_date",
    "0040A122": "time_value",
    "0040A120": "datetime_value",
    "0040A124": "uid_value",
    "0040A123": "person_name",
    "00700023": "graphic_type",
    "00700022": "_graphic_data",
    "0040A130": "temporal_range_type",
    "00081199[0].00081150": "referenced_sop_class",
    "00081199[0].00081155": "referenced_sop_instance",
    "0040DB73": "_referenced_item",
    "0040A032": "observation_datetime",
    "0040A504[0].0040DB00": "_own_template",
}
_ITEM_MARKERS: Final = ("0040A040", "0040DB73")
_PREFIX_RE: Final = rf"^((?:{CONTENT_SEQUENCE}\[\d+\]\.)*)"


def content_table(elements: pa.Table | pl.DataFrame) -> pa.Table:
    """Regroup ``elements`` rows into one ``sr_content`` row per content item.

    Parameters
    ----------
    elements : pyarrow.Table or polars.DataFrame
        Rows of the ``elements`` table (at least ``file_id``, ``path``,
        ``depth`` and ``value``), for any number of files.

    Returns
    -------
    pyarrow.Table
        Rows with :data:`SR_CONTENT_SCHEMA`, ordered by file and tree path;
        empty for files that hold no SR content.

    Notes
    -----
    Never raises for the content of a file: should the batch as a whole fail
    to convert, each file is converted alone and a file that still fails
    contributes no rows (logged by ``file_id``, never by value).

    Examples
    --------
    >>> import polars as pl
    >>> rows = pl.DataFrame({
    ...     "file_id": [7, 7, 7, 7, 7, 7],
    ...     "path": ["0040A040", "0040A730[0].0040A010", "0040A730[0].0040A040",
    ...              "0040A730[0].0040A043[0].00080104", "0040A730[0].0040A300[0].0040A30A",
    ...              "0040A730[0].0040A300[0].004008EA[0].00080100"],
    ...     "depth": [0, 1, 1, 2, 2, 3],
    ...     "value": ["CONTAINER", "CONTAINS", "NUM", "Mean CTDIvol", "12.5", "mGy"],
    ... })
    >>> sr = pl.from_arrow(content_table(rows))
    >>> sr.select("tree_path", "value_type", "concept_meaning", "numeric_value", "unit_code")
    shape: (2, 5)
    ┌───────────┬────────────┬─────────────────┬───────────────┬───────────┐
    │ tree_path ┆ value_type ┆ concept_meaning ┆ numeric_value ┆ unit_code │
    │ ---       ┆ ---        ┆ ---             ┆ ---           ┆ ---       │
    │ str       ┆ str        ┆ str             ┆ f64           ┆ str       │
    ╞═══════════╪════════════╪═════════════════╪═══════════════╪═══════════╡
    │ 1         ┆ CONTAINER  ┆ null            ┆ null          ┆ null      │
    │ 1.1       ┆ NUM        ┆ Mean CTDIvol    ┆ 12.5          ┆ mGy       │
    └───────────┴────────────┴─────────────────┴───────────────┴───────────┘
    """
    frame = elements if isinstance(elements, pl.DataFrame) else pl.from_arrow(elements)
    assert isinstance(frame, pl.DataFrame)
    if frame.height == 0:
        return SR_CONTENT_SCHEMA.empty_table()
    frame = frame.select("file_id", "path", "depth", "value")
    try:
        return _content(frame)
    except Exception:  # a bug here must not sink a batch: isolate the file that trips it
        log.warning("sr_content: batch conversion failed; converting file by file")
    parts = []
    for (fid,), one in frame.group_by("file_id"):
        try:
            parts.append(_content(one))
        except Exception:
            log.warning("sr_content: file_id %s skipped: content could not be converted", fid)
    return pa.concat_tables(parts) if parts else SR_CONTENT_SCHEMA.empty_table()


def _content(frame: pl.DataFrame) -> pa.Table:
    wanted = list(_FIELDS)
    candidates = frame.filter(
        pl.col("path").str.starts_with(CONTENT_SEQUENCE)
        | pl.col("path").is_in(wanted)  # the root item's fields
    )
    split = candidates.with_columns(
        pl.col("path").str.extract(_PREFIX_RE, 1).alias("item_path")
    ).with_columns(pl.col("path").str.slice(pl.col("item_path").str.len_chars()).alias("_field"))
    split = split.filter(pl.col("_field").is_in(wanted))
    items = (
        split.filter(pl.col("_field").is_in(list(_ITEM_MARKERS)))
        .select("file_id", "item_path")
        .unique()
    )
    if items.height == 0:
        return SR_CONTENT_SCHEMA.empty_table()
    values = split.join(items, on=["file_id", "item_path"], how="semi").with_columns(
        pl.col("_field").replace_strict(_FIELDS, return_dtype=pl.String)
    )
    wide = values.pivot(
        on="_field", index=["file_id", "item_path"], values="value", aggregate_function="first"
    )
    missing = [c for c in _FIELDS.values() if c not in wide.columns]
    wide = wide.with_columns([pl.lit(None, pl.String).alias(c) for c in missing])
    wide = items.join(wide, on=["file_id", "item_path"], how="left")
    numbers = (
        pl.col("item_path")
        .str.replace_all(rf"{CONTENT_SEQUENCE}\[(\d+)\]\.", "$1.")
        .str.strip_suffix(".")
    )
    ordinals = (
        pl.when(numbers == "")
        .then(pl.lit([], dtype=pl.List(pl.Int64)))
        .otherwise(numbers.str.split(".").list.eval(pl.element().cast(pl.Int64) + 1))
    )
    out = wide.with_columns(ordinals.alias("_ordinals")).with_columns(
        pl.concat_list(pl.lit(1, pl.Int64), pl.col("_ordinals"))
        .list.eval(pl.element().cast(pl.String))
        .list.join(".")
        .alias("tree_path"),
        pl.col("_ordinals").list.len().cast(pl.Int16).alias("depth"),
        pl.coalesce("_concept_code", "_concept_long", "_concept_urn").alias("concept_code"),
        pl.coalesce("_code_code", "_code_long", "_code_urn").alias("code_value"),
        pl.coalesce(
            pl.col("_numeric_float").str.split("\\").list.first().cast(pl.Float64, strict=False),
            pl.col("_numeric_text")
            .str.split("\\")
            .list.first()
            .str.strip_chars()
            .cast(pl.Float64, strict=False),
        ).alias("numeric_value"),
        pl.when(pl.col("_date").str.contains(r"^\d{8}$"))
        .then(pl.col("_date").str.strptime(pl.Date, "%Y%m%d", strict=False))
        .alias("date_value"),
        pl.col("_graphic_data")
        .str.split("\\")
        .list.eval(pl.element().str.strip_chars().cast(pl.Float64, strict=False))
        .alias("graphic_data"),
        pl.col("_referenced_item")
        .str.replace_all("\\", ".", literal=True)
        .alias("referenced_item"),
    )
    out = out.with_columns(
        pl.when(pl.col("depth") > 0)
        .then(pl.col("tree_path").str.replace(r"\.\d+$", ""))
        .alias("parent_path")
    )
    out = _inherit_template(out)
    out = out.sort("file_id", "_ordinals").select(SR_CONTENT_SCHEMA.names)
    return out.to_arrow().cast(SR_CONTENT_SCHEMA)


def _inherit_template(out: pl.DataFrame) -> pl.DataFrame:
    """``template_id``: the item's own Template Identifier, else its nearest ancestor's."""
    out = out.with_columns(pl.col("_own_template").alias("template_id"))
    deepest = int(out["depth"].max() or 0)
    for level in range(1, deepest + 1):
        parents = out.filter(pl.col("depth") == level - 1).select(
            "file_id",
            pl.col("tree_path").alias("parent_path"),
            pl.col("template_id").alias("_parent_template"),
        )
        out = (
            out.join(parents, on=["file_id", "parent_path"], how="left")
            .with_columns(
                pl.when(pl.col("depth") == level)
                .then(pl.coalesce("template_id", "_parent_template"))
                .otherwise(pl.col("template_id"))
                .alias("template_id")
            )
            .drop("_parent_template")
        )
    return out
