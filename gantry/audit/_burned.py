"""Burned-in text: which images likely carry text in their pixels, and what resolves it.

Split from :mod:`gantry.audit._rules` (the element rules), whose findings
schema, messages and per-instance identity it uses.
"""

from __future__ import annotations

from typing import Final

import polars as pl

from gantry.audit._rules import (
    _BURNED_REASONS,
    FINDINGS_SCHEMA,
    MESSAGE_DTYPE,
    RULE_DTYPE,
    AuditContext,
    Severity,
    _msg,
    _optional,
    _sev,
    instance_info,
)

__all__ = ["SCREEN_CONVERSION_TYPES", "SECONDARY_CAPTURE_PREFIX", "burned_in_findings"]

SECONDARY_CAPTURE_PREFIX: Final = "1.2.840.10008.5.1.4.1.1.7"
"""Secondary Capture Image Storage and its multi-frame variants (…7.1 to …7.4)."""
SCREEN_CONVERSION_TYPES: Final = ("WSD", "SD", "SI", "DRW", "DV", "DF")
"""Conversion types (0008,0064) of captured screens, scans, drawings and video."""


def burned_in_findings(
    instances: pl.LazyFrame,
    matched: pl.LazyFrame,
    ctx: AuditContext,
    ocr: pl.LazyFrame | None = None,
) -> pl.LazyFrame:
    """One finding per instance whose pixels likely carry burned-in text.

    Risk: ``BurnedInAnnotation`` YES, modality US, a secondary capture SOP class,
    or a screen capture (``ConversionType`` WSD/SD/SI/DRW/DV/DF, or
    ``ImageType`` naming a screen save).  The finding is resolved when a config
    machine with redaction zones matches the instance (``matched``, from
    :func:`~gantry.audit.match_machines`), or when an OCR scan read every frame
    (``ocr``: ``file_id, _ocr`` with ``_ocr`` one of ``clear``, ``redacted``,
    ``partial``; see :func:`gantry.audit._ocr.ocr_coverage`): no text found
    clears the image, text found is redacted by the plan.  Otherwise it is high
    and unresolved.
    """
    schema = instances.collect_schema()
    if "ImageType" in schema and isinstance(schema["ImageType"], pl.List):
        image_type = pl.col("ImageType").cast(pl.List(pl.String)).list.join("\\")
    else:
        image_type = _optional(schema, "ImageType", pl.String)
    sop = _optional(schema, "SOPClassUID", pl.String).str.strip_chars()
    annotation = (
        _optional(schema, "BurnedInAnnotation", pl.String).str.strip_chars().str.to_uppercase()
    )
    modality = _optional(schema, "Modality", pl.String).str.strip_chars().str.to_uppercase()
    conversion = _optional(schema, "ConversionType", pl.String).str.strip_chars().str.to_uppercase()
    screen = conversion.is_in(SCREEN_CONVERSION_TYPES) | image_type.str.to_uppercase().str.contains(
        "SCREEN"
    )
    reason = (
        pl.when(annotation == "YES")
        .then(pl.lit("annotation"))
        .when(modality == "US")
        .then(pl.lit("ultrasound"))
        .when(sop.str.starts_with(SECONDARY_CAPTURE_PREFIX))
        .then(pl.lit("secondary-capture"))
        .when(screen.fill_null(False))
        .then(pl.lit("screen-capture"))
    )
    zones = matched.filter(pl.col("zones").list.len() > 0).select(
        "file_id", pl.lit(True).alias("_zone")
    )
    outcome = "excluded" if ctx.exclude_without_zone else "nozone"
    message: pl.Expr = pl.lit(None, dtype=MESSAGE_DTYPE)
    for r in reversed(list(_BURNED_REASONS)):
        message = (
            pl.when((pl.col("_reason") == r) & pl.col("_zone"))
            .then(_msg(f"burned-in:{r}:zone"))
            .when((pl.col("_reason") == r) & (pl.col("_ocr") == "clear"))
            .then(_msg(f"burned-in:{r}:ocr-clear"))
            .when((pl.col("_reason") == r) & (pl.col("_ocr") == "redacted"))
            .then(_msg(f"burned-in:{r}:ocr-redacted"))
            .when((pl.col("_reason") == r) & (pl.col("_ocr") == "partial"))
            .then(_msg(f"burned-in:{r}:ocr-partial"))
            .when(pl.col("_reason") == r)
            .then(_msg(f"burned-in:{r}:{outcome}"))
            .otherwise(message)
        )
    if ocr is None:
        ocr = pl.LazyFrame(schema={"file_id": pl.Int64, "_ocr": pl.String})
    return (
        instance_info(instances)
        .join(instances.select("file_id", reason.alias("_reason")), on="file_id", how="inner")
        .filter(pl.col("_reason").is_not_null())
        .join(zones, on="file_id", how="left")
        .join(ocr.select(pl.col("file_id").cast(pl.Int64), "_ocr"), on="file_id", how="left")
        .with_columns(pl.col("_zone").fill_null(False))
        .with_columns(
            (pl.col("_zone") | pl.col("_ocr").is_in(["clear", "redacted"]).fill_null(False)).alias(
                "_resolved"
            )
        )
        .select(
            "file_id",
            pl.lit("7FE00010").alias("path"),
            pl.lit("7FE00010").alias("tag"),
            pl.lit("PixelData").alias("keyword"),
            pl.lit("burned-in", dtype=RULE_DTYPE).alias("rule"),
            pl.when(pl.col("_resolved"))
            .then(_sev(Severity.LOW))
            .otherwise(_sev(Severity.HIGH))
            .alias("severity"),
            message.alias("message"),
            "modality",
            "device",
            pl.col("_resolved").alias("resolved"),
        )
        .cast(FINDINGS_SCHEMA)
    )
