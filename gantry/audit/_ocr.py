"""Audit rule ``burned-in-ocr``: text regions found by :func:`gantry.ocr.scan_pixels`.

Reads the latest scan of each instance (``ocr_scans``, ``text_regions``) and
turns it into two things: one finding per text region, and each scanned
instance's coverage (``clear``, ``redacted`` or ``partial``) that decides
whether the ``burned-in`` risk of that image is resolved.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

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

__all__ = ["OcrStatus", "ocr_coverage", "ocr_findings", "ocr_status", "redacted_regions"]


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


@dataclasses.dataclass(frozen=True)
class OcrStatus:
    """Where the OCR scan stands, in images (see :func:`ocr_status`).

    Attributes
    ----------
    scanned : int
        Images whose latest scan read every frame.
    with_text : int
        Of those, images with text the policy redacts (the plan redacts them).
    cleared : int
        Of those, images with no such text (their burned-in risk is cleared).
    partial : int
        Images whose latest scan read only some frames (a sample): not cleared.
    failed : int
        Images whose latest scan could not read the pixels.
    needs_scan : int
        Images with a burned-in text risk that no machine zone and no complete
        scan resolves: a safe export excludes them until they are scanned.
    regions : int
        Text regions the plan redacts, in the ``with_text`` images.
    """

    scanned: int = 0
    with_text: int = 0
    cleared: int = 0
    partial: int = 0
    failed: int = 0
    needs_scan: int = 0
    regions: int = 0

    def as_dict(self) -> dict[str, int]:
        return dataclasses.asdict(self)

    def __str__(self) -> str:
        return (
            f"{self.scanned} images scanned in full: {self.cleared} cleared (no text), "
            f"{self.with_text} with text to redact ({self.regions} regions); "
            f"{self.partial} scanned in part, {self.failed} failed, "
            f"{self.needs_scan} still need a scan"
        )


def ocr_status(store: Store, config: Any = None) -> OcrStatus:
    """Count scanned, cleared and text-bearing images, and those that still need a scan.

    ``config`` (a config, mapping, path, :class:`~gantry.audit.AuditContext` or None)
    decides the policy (``burned_in.ocr_redact``) and the machine zones.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> from gantry import Session
    >>> from gantry.testing import make_instance
    >>> tmp = pathlib.Path(tempfile.mkdtemp())
    >>> _ = make_instance(tmp / "dicom" / "us.dcm", modality="US")
    >>> with Session(tmp / "p.db") as s:
    ...     _ = s.ingest(tmp / "dicom", workers=1, progress=False)
    ...     print(ocr_status(s.store))
    0 images scanned in full: 0 cleared (no text), 0 with text to redact (0 regions); \
0 scanned in part, 0 failed, 1 still need a scan
    """
    from gantry.audit._burned import burned_in_findings
    from gantry.audit._machines import match_machines
    from gantry.audit._rules import AuditContext
    from gantry.ocr import current_regions, current_scans

    ctx = config if isinstance(config, AuditContext) else AuditContext.from_config(config)
    if "instances" not in store.table_names():
        return OcrStatus()
    instances = store.scan("instances")
    matched = match_machines(instances, ctx.machines, elements=store.scan("elements"))
    coverage = ocr_coverage(store, ctx.ocr_redact)
    risk = burned_in_findings(instances, matched, ctx, coverage).collect()
    scans = current_scans(store)
    counts: dict[str, int] = {}
    if coverage is not None:
        counts = dict(coverage.group_by("_ocr").len().collect().iter_rows())
    flagged = redacted_regions(current_regions(store), ctx.ocr_redact)
    redacted_ids = (
        coverage.filter(pl.col("_ocr") == "redacted").select("file_id")
        if coverage is not None
        else pl.LazyFrame(schema={"file_id": pl.Int64})
    )
    return OcrStatus(
        scanned=counts.get("clear", 0) + counts.get("redacted", 0),
        with_text=counts.get("redacted", 0),
        cleared=counts.get("clear", 0),
        partial=counts.get("partial", 0),
        failed=int((scans["status"] != "ok").sum()),
        needs_scan=int((~risk["resolved"]).sum()),
        regions=flagged.join(redacted_ids, on="file_id", how="semi").collect().height,
    )
