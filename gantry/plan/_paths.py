"""Element paths such as ``0040A730[0].0040A123``: the sequences above an element."""

from __future__ import annotations

from typing import TypeVar

import polars as pl

__all__ = ["sequence_ancestors"]

F = TypeVar("F", pl.DataFrame, pl.LazyFrame)


def sequence_ancestors(frame: F) -> F:
    """One row per (element, sequence above it): ``_anc`` is the sequence's path, ``_item``
    the index of the item the element sits in.

    Examples
    --------
    >>> df = pl.DataFrame({"path": ["0040A730[1].0040A730[0].0040A123"]})
    >>> sequence_ancestors(df).select("_anc", "_item").rows()
    [('0040A730', 1), ('0040A730[1].0040A730', 0)]
    """
    return (
        frame.with_columns(pl.col("path").str.split(".").alias("_parts"))
        .with_columns(pl.int_ranges(1, pl.col("_parts").list.len()).alias("_k"))
        .explode("_k")
        .with_columns(pl.col("_parts").list.head(pl.col("_k")).list.join(".").alias("_head"))
        .with_columns(
            pl.col("_head").str.replace(r"\[\d+\]$", "").alias("_anc"),
            pl.col("_head").str.extract(r"\[(\d+)\]$", 1).cast(pl.Int64).alias("_item"),
        )
        .drop("_parts", "_k", "_head")
    )
