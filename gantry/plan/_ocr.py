"""REDACT zones from OCR: each text box the policy redacts, padded and clipped."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import polars as pl

if TYPE_CHECKING:
    from gantry.store import Store

__all__ = ["ocr_zones"]

ZONES_DTYPE = pl.List(pl.List(pl.Int64))


def ocr_zones(store: Store, config: Any) -> pl.DataFrame:
    """``file_id, ocr_zones``: the padded boxes of every region redacted under the policy.

    A box found on any scanned frame is redacted on every frame (burned-in
    labels stay put across a cine loop, and an unread frame is safer blanked).
    """
    from gantry.audit._ocr import redacted_regions
    from gantry.ocr import current_regions, current_scans

    empty = pl.DataFrame(schema={"file_id": pl.Int64, "ocr_zones": ZONES_DTYPE})
    if "text_regions" not in store.table_names():
        return empty
    burned = getattr(config, "burned_in", None)
    policy = str(getattr(burned, "ocr_redact", "all"))
    pad = int(getattr(burned, "ocr_padding", 4))
    sizes = current_scans(store).select("file_id", "rows", "columns").lazy()
    boxes = (
        redacted_regions(current_regions(store), policy)
        .join(sizes, on="file_id", how="left")
        .select(
            "file_id",
            pl.concat_list(
                (pl.col("r1") - pad).clip(lower_bound=0),
                (pl.col("r2") + pad).clip(upper_bound=pl.col("rows")),
                (pl.col("c1") - pad).clip(lower_bound=0),
                (pl.col("c2") + pad).clip(upper_bound=pl.col("columns")),
            )
            .cast(pl.List(pl.Int64))
            .alias("_box"),
        )
        .unique()
        .sort("file_id", "_box")
        .group_by("file_id", maintain_order=True)
        .agg(pl.col("_box").alias("ocr_zones"))
        .collect()
    )
    return boxes.cast({"file_id": pl.Int64, "ocr_zones": ZONES_DTYPE}) if boxes.height else empty


def stale_ocr(store: Store, config: Any) -> pl.DataFrame:
    """``file_id, reason`` of instances whose OCR boxes are not all in the stored plan.

    A scan made (or redone) after ``anonymize`` can find text the plan does not
    redact; such an instance must not be written as clean until the plan is
    built again.
    """
    import json

    out = {"file_id": pl.Int64, "reason": pl.String}
    wanted = ocr_zones(store, config)
    if wanted.height == 0:
        return pl.DataFrame(schema=out)
    planned: dict[int, set[tuple[int, ...]]] = {}
    if "plan" in store.table_names():
        rows = store.sql("SELECT file_id, new_value FROM plan WHERE action = 'REDACT'")
        for fid, value in rows.iter_rows():
            zones = json.loads(value).get("zones", []) if value else []
            planned.setdefault(int(fid), set()).update(tuple(int(v) for v in z) for z in zones)
    stale = [
        fid
        for fid, zones in wanted.iter_rows()
        if not {tuple(z) for z in zones} <= planned.get(int(fid), set())
    ]
    reason = "OCR found text the plan does not redact (scanned after the plan): run anonymize again"
    return pl.DataFrame({"file_id": stale, "reason": [reason] * len(stale)}, schema=out)


def overlay_burns(store: Store, config: Any) -> pl.DataFrame:
    """``file_id, overlays``: the overlay groups (``"6000"``) to burn into each image.

    Empty unless the config's ``overlays`` is ``burn``; then every instance with
    Overlay Data at the top level gets its groups, and OCR must be installed
    (each burned image is read again at export), or ``MissingDependencyError``.
    """
    empty = pl.DataFrame(schema={"file_id": pl.Int64, "overlays": pl.List(pl.String)})
    if str(getattr(config, "overlays", "remove") or "remove") != "burn":
        return empty
    found = (
        store.scan("elements")
        .filter((pl.col("depth") == 0) & pl.col("tag").str.contains(r"^60[01][0-9A-E]3000$"))
        .filter(pl.col("tag").str.slice(3, 1).is_in(list("02468ACE")))
        .group_by("file_id")
        .agg(pl.col("tag").str.slice(0, 4).unique().sort().alias("overlays"))
        .collect()
    )
    if found.height:
        from gantry.ocr import get_engine

        get_engine("rapidocr")  # burned overlays are read again: OCR must be there
    return found.select(pl.col("file_id").cast(pl.Int64), "overlays")
