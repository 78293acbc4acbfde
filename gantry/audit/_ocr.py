"""Audit rule ``burned-in-ocr``: text regions found by :func:`gantry.ocr.scan_pixels`.

Reads the latest scan of each instance (``ocr_scans``, ``text_regions``) and
turns it into two things: one finding per text region, and each scanned
instance's coverage (``clear``, ``redacted`` or ``partial``) that decides
whether the ``burned-in`` risk of that image is resolved.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import polars as pl

from gantry.audit._rules import (
    FINDINGS_SCHEMA,
    RULE_DTYPE,
    AuditContext,
    Severity,
    _msg,
    _sev,
    instance_info,
)

if TYPE_CHECKING:
    from gantry.store import Store

__all__ = ["ocr_coverage", "ocr_findings", "redacted_regions"]


def redacted_regions(regions: pl.DataFrame | pl.LazyFrame, policy: str) -> pl.LazyFrame:
    """The regions the plan redacts under ``policy`` (``"all"`` or ``"phi"``)."""
    lazy = regions.lazy()
    return lazy if policy == "all" else lazy.filter(pl.col("phi"))


def ocr_coverage(store: Store, policy: str) -> pl.LazyFrame | None:
    """``file_id, _ocr``: ``clear`` / ``redacted`` when every frame was read, else ``partial``.

    None when nothing was ever scanned.  Failed scans count as not scanned.
    """
    from gantry.ocr import current_regions, current_scans

    scans = current_scans(store).filter(pl.col("status") == "ok")
    if scans.height == 0:
        return None
    flagged = (
        redacted_regions(current_regions(store), policy).group_by("file_id").len("_n").collect()
    )
    return (
        scans.lazy()
        .join(flagged.lazy(), on="file_id", how="left")
        .select(
            "file_id",
            pl.when(~pl.col("all_frames"))
            .then(pl.lit("partial"))
            .when(pl.col("_n").fill_null(0) > 0)
            .then(pl.lit("redacted"))
            .otherwise(pl.lit("clear"))
            .alias("_ocr"),
        )
    )


def ocr_findings(store: Store, instances: pl.LazyFrame, ctx: AuditContext) -> pl.LazyFrame:
    """One ``burned-in-ocr`` finding per text region of each instance's latest scan.

    Identifying text (identity values or PHI patterns) is high, other text medium
    when the policy redacts all text, low when it keeps it; every region the
    policy redacts is resolved by the plan.
    """
    from gantry.ocr import current_regions

    regions = current_regions(store).lazy()
    redact_all = ctx.ocr_redact == "all"
    kept = ~pl.col("phi") & pl.lit(not redact_all)
    return (
        regions.select("file_id", "phi")
        .join(instance_info(instances).select("file_id", "modality", "device"), on="file_id")
        .select(
            "file_id",
            pl.lit("7FE00010").alias("path"),
            pl.lit("7FE00010").alias("tag"),
            pl.lit("PixelData").alias("keyword"),
            pl.lit("burned-in-ocr", dtype=RULE_DTYPE).alias("rule"),
            pl.when(pl.col("phi"))
            .then(_sev(Severity.HIGH))
            .when(kept)
            .then(_sev(Severity.LOW))
            .otherwise(_sev(Severity.MEDIUM))
            .alias("severity"),
            pl.when(pl.col("phi"))
            .then(_msg("burned-in-ocr:phi"))
            .when(kept)
            .then(_msg("burned-in-ocr:kept"))
            .otherwise(_msg("burned-in-ocr:text"))
            .alias("message"),
            "modality",
            "device",
            pl.lit(True).alias("resolved"),
        )
        .cast(FINDINGS_SCHEMA)
    )
