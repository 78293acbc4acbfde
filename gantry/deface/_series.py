"""Deface series of a session store: the ``deface`` table and the plan's DEFACE rows.

:func:`deface_series` loads each series' pixels once, fits the face plane
(:func:`gantry.deface.fit_face_plane`) and records one row per series in the
``deface`` table (``ok`` with the plane, or ``refused`` with the reason).
:func:`deface_plan_rows` turns the ``ok`` rows of the series the config names
into one ``DEFACE`` plan row per instance; :func:`deface_refusals` lists the
instances of those series that have no such row, so export leaves them out
instead of writing a face.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import numpy as np
import polars as pl

from gantry.deface._geometry import SliceGeometry, stack_slices
from gantry.deface._shear import fit_face_plane
from gantry.errors import DefaceError, GantryError

if TYPE_CHECKING:
    from gantry.store import Store

__all__ = ["DEFACE_SCHEMA", "deface_plan_rows", "deface_refusals", "deface_series"]

METHOD = "quickshear"
TABLE = "deface"
DEFACE_SCHEMA: dict[str, Any] = {
    "SeriesInstanceUID": pl.String,
    "method": pl.String,
    "status": pl.String,  # "ok" | "refused"
    "reason": pl.String,
    "normal": pl.List(pl.Float64),
    "offset": pl.Float64,
    "margin": pl.Float64,
    "fill": pl.Int64,
    "removed_fraction": pl.Float64,
    "head_removed_fraction": pl.Float64,
    "brain_ml": pl.Float64,
    "slices": pl.Int64,
    "files": pl.String,  # fingerprint of the instances (file ids and sizes) it was fitted on
    "seconds": pl.Float64,
    "computed_at": pl.Datetime("us"),
}


def _instances(store: Store, series: Sequence[str]) -> pl.DataFrame:
    return (
        store.scan("instances")
        .filter(pl.col("SeriesInstanceUID").is_in(list(series)))
        .select("file_id", "file_path", "file_size", "SeriesInstanceUID")
        .sort("file_id")
        .collect()
    )


def _fingerprint(rows: pl.DataFrame) -> str:
    import hashlib

    text = ",".join(f"{f}:{s}" for f, s in rows.select("file_id", "file_size").iter_rows())
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def load_volume(
    paths: Sequence[str],
) -> tuple[Any, list[SliceGeometry], float, str, dict[str, Any]]:
    """Read a series' files: ``(stored volume, geometries, step, modality, rescale)``.

    Slices come back ordered along their normal; every file must decode and
    hold one frame with geometry.
    """
    import pydicom

    from gantry.pixels import decode

    datasets = []
    for path in paths:
        ds = pydicom.dcmread(path, force=True)
        if int(ds.get("NumberOfFrames", 1) or 1) != 1:
            raise DefaceError("multi-frame images are not defaced (one slice per file is needed)")
        if int(ds.get("SamplesPerPixel", 1) or 1) != 1:
            raise DefaceError("colour images are not defaced (grey CT or MR volumes only)")
        datasets.append(ds)
    geometries = [SliceGeometry.from_dataset(ds) for ds in datasets]
    order, step = stack_slices(geometries)
    first = datasets[order[0]]
    slope = float(first.get("RescaleSlope", 1) or 1)
    intercept = float(first.get("RescaleIntercept", 0) or 0)
    volume = np.stack([np.asarray(decode(datasets[i], path=paths[i])) for i in order])
    return (
        volume,
        [geometries[i] for i in order],
        step,
        str(first.get("Modality", "")),
        {"slope": slope, "intercept": intercept},
    )


def _refused(uid: str, reason: str, margin: float, files: str, seconds: float) -> dict[str, Any]:
    return {
        "SeriesInstanceUID": uid, "method": METHOD, "status": "refused", "reason": reason,
        "normal": None, "offset": None, "margin": margin, "fill": None,
        "removed_fraction": None, "head_removed_fraction": None, "brain_ml": None,
        "slices": None, "files": files, "seconds": seconds,
    }  # fmt: skip


def deface_one(uid: str, paths: Sequence[str], *, margin: float, files: str = "") -> dict[str, Any]:
    """Fit one series and return its ``deface`` row (never raises for a bad series)."""
    started = time.perf_counter()
    try:
        volume, geometries, step, modality, rescale = load_volume(paths)
        values = volume.astype(np.float32) * rescale["slope"] + rescale["intercept"]
        fit = fit_face_plane(values, geometries, step, modality=modality, margin=margin)
    except GantryError as exc:
        if type(exc).__name__ == "MissingDependencyError":
            raise
        return _refused(uid, str(exc), margin, files, time.perf_counter() - started)
    except Exception as exc:  # unreadable file: recorded, the batch goes on
        reason = f"the series could not be read ({type(exc).__name__})"
        return _refused(uid, reason, margin, files, time.perf_counter() - started)
    return {
        "SeriesInstanceUID": uid, "method": METHOD, "status": "ok", "reason": "",
        "normal": list(fit.plane.normal), "offset": fit.plane.offset, "margin": margin,
        "fill": int(volume.min()), "removed_fraction": fit.removed_fraction,
        "head_removed_fraction": fit.head_removed_fraction, "brain_ml": fit.brain_ml,
        "slices": len(geometries), "files": files, "seconds": time.perf_counter() - started,
    }  # fmt: skip


def deface_series(
    store: Store, series: Sequence[str], *, margin: float = 4.0, refit: bool = False
) -> pl.DataFrame:
    """Fit the face plane of each series and record it in the ``deface`` table.

    A series whose row is current (same instances, same margin) is not fitted
    again unless ``refit``.  Returns the rows of ``series``.  A read-only
    store is not written: the rows are fitted and returned only.
    """
    series = list(dict.fromkeys(str(s) for s in series))
    instances = _instances(store, series)
    old = (
        store.scan(TABLE).collect() if TABLE in store.table_names() else pl.DataFrame(
            schema=DEFACE_SCHEMA)
    )  # fmt: skip
    current = {
        (uid, files, m): row
        for row in old.iter_rows(named=True)
        for uid, files, m in [(row["SeriesInstanceUID"], row["files"], row["margin"])]
    }
    now = datetime.now(UTC).replace(tzinfo=None)
    fresh = []
    for uid in series:
        rows = instances.filter(pl.col("SeriesInstanceUID") == uid)
        files = _fingerprint(rows)
        if not refit and (uid, files, margin) in current:
            continue
        if rows.height == 0:
            row = _refused(uid, "the series is not in the index", margin, files, 0.0)
        else:
            row = deface_one(uid, rows["file_path"].to_list(), margin=margin, files=files)
        fresh.append(row | {"computed_at": now})
    table = old.cast(DEFACE_SCHEMA)  # type: ignore[arg-type]
    if fresh:
        new = pl.DataFrame(fresh, schema=DEFACE_SCHEMA)
        kept = table.filter(~pl.col("SeriesInstanceUID").is_in(new["SeriesInstanceUID"].implode()))
        table = pl.concat([kept, new])
        if not store.read_only:  # a read-only session (a dry run) fits without recording
            store.write_table(TABLE, table)
    return table.filter(pl.col("SeriesInstanceUID").is_in(series))


def _configured(config: Any) -> tuple[list[str], float]:
    section = getattr(config, "deface", None)
    if section is None:
        return [], 4.0
    return list(section.series), float(section.margin)


def deface_plan_rows(store: Store, config: Any) -> pl.DataFrame:
    """One ``DEFACE`` plan row per instance of each configured series that was defaced.

    Series the ``deface`` table does not hold yet (or holds for other
    instances) are fitted first.  ``new_value`` is the plane as JSON.
    """
    series, margin = _configured(config)
    columns = ("file_id", "path", "tag", "keyword", "vr", "action", "new_value", "rule")
    if not series:
        return pl.DataFrame(schema=dict.fromkeys(columns, pl.String) | {"file_id": pl.Int64})
    table = deface_series(store, series, margin=margin).filter(pl.col("status") == "ok")
    values = {
        uid: json.dumps({"normal": normal, "offset": offset, "fill": fill, "method": METHOD})
        for uid, normal, offset, fill in table.select(
            "SeriesInstanceUID", "normal", "offset", "fill"
        ).iter_rows()
    }
    rows = _instances(store, list(values)).select("file_id", "SeriesInstanceUID")
    return rows.select(
        pl.col("file_id").cast(pl.Int64),
        pl.lit("7FE00010").alias("path"),
        pl.lit("7FE00010").alias("tag"),
        pl.lit("PixelData").alias("keyword"),
        pl.lit("OB").alias("vr"),
        pl.lit("DEFACE").alias("action"),
        pl.col("SeriesInstanceUID").replace_strict(values, return_dtype=pl.String)
        .alias("new_value"),
        pl.lit(f"deface:{METHOD}").alias("rule"),
    )  # fmt: skip


def deface_refusals(store: Store, config: Any) -> pl.DataFrame:
    """``file_id, reason``: instances of configured series the stored plan does not deface."""
    out = {"file_id": pl.Int64, "reason": pl.String}
    series, _ = _configured(config)
    if not series:
        return pl.DataFrame(schema=out)
    wanted = _instances(store, series).select("file_id", "SeriesInstanceUID")
    planned = (
        store.scan("plan").filter(pl.col("action") == "DEFACE").select("file_id").collect()
        if "plan" in store.table_names()
        else pl.DataFrame(schema={"file_id": pl.Int64})
    )
    reasons = (
        store.scan(TABLE).filter(pl.col("status") != "ok").select("SeriesInstanceUID", "reason")
        .collect() if TABLE in store.table_names()
        else pl.DataFrame(schema={"SeriesInstanceUID": pl.String, "reason": pl.String})
    )  # fmt: skip
    missing = wanted.join(planned, on="file_id", how="anti").join(
        reasons, on="SeriesInstanceUID", how="left"
    )
    return missing.select(
        pl.col("file_id").cast(pl.Int64),
        pl.concat_str(
            pl.lit("not defaced: "),
            pl.col("reason").fill_null("the plan has no DEFACE row for it; run anonymize again"),
        ).alias("reason"),
    )
