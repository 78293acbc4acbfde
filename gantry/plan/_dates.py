"""Vectorised date shifting for DA and DT values (multi-valued included)."""

from __future__ import annotations

import polars as pl


def shift_dates(df: pl.DataFrame, *, value: str, vr: str, days: str) -> pl.Series:
    """Shift every DA/DT value of ``df`` by its row's ``days``; null where unparseable.

    DA values are ``YYYYMMDD`` (the ACR-NEMA ``YYYY.MM.DD`` is accepted); DT values
    keep everything after their date part (time, fraction, UTC offset) unchanged.
    A value that cannot be parsed (or a DT shorter than a full date) gives null:
    the caller empties it rather than keeping an unshifted date.

    Examples
    --------
    >>> df = pl.DataFrame({"v": ["20200131", "20200101\\\\20200102", "20200301120000.5+0100", "2020"],
    ...                    "vr": ["DA", "DA", "DT", "DT"], "d": [1, -1, -1, 3]})
    >>> shift_dates(df, value="v", vr="vr", days="d").to_list()
    ['20200201', '20191231\\\\20200101', '20200229120000.5+0100', None]
    """
    work = (
        df.select(pl.col(value).alias("_v"), pl.col(vr).alias("_vr"), pl.col(days).alias("_d"))
        .with_row_index("_row")
        .with_columns(pl.col("_v").str.split("\\").alias("_parts"))
        .explode("_parts")
        .with_columns(pl.col("_parts").str.strip_chars().alias("_p"))
        .with_columns(
            pl.col("_p").str.replace_all(".", "", literal=True).str.slice(0, 8).alias("_date"),
            pl.when(pl.col("_vr") == "DT")
            .then(pl.col("_p").str.slice(8))
            .otherwise(pl.lit(""))
            .alias("_rest"),
        )
        .with_columns(
            pl.when(pl.col("_date").str.len_chars() == 8)
            .then(pl.col("_date").str.strptime(pl.Date, "%Y%m%d", strict=False))
            .alias("_parsed")
        )
        .with_columns(
            (pl.col("_parsed") + pl.duration(days=pl.col("_d"))).dt.strftime("%Y%m%d").alias("_new")
        )
        .with_columns(
            pl.when(pl.col("_vr") == "DA")
            .then(pl.col("_new"))
            .otherwise(pl.col("_new") + pl.col("_rest"))
            .alias("_out")
        )
        .group_by("_row", maintain_order=True)
        .agg(
            pl.col("_out").str.join("\\").alias("joined"),
            pl.col("_out").null_count().alias("bad"),
        )
        .sort("_row")
    )
    return work.select(
        pl.when(pl.col("bad") == 0).then(pl.col("joined")).otherwise(None).alias(value)
    ).to_series()
