"""``manifest.html``: the export's manifest for people, with before/after thumbnails."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Final, Literal

import polars as pl

from gantry._messages import capture_warnings
from gantry.errors import ExportError
from gantry.report._charts import bar_chart
from gantry.report._png import data_uri, display_frame, outline, pixelate, png_bytes, thumbnail
from gantry.report._render import MAX_ROWS, render
from gantry.store import Store

__all__ = ["write_manifest_html"]

Original = Literal["pixelated", "full", "none"]
_THUMB: Final = 240
_FULL: Final = 1024
"""Largest side of the full-size image a thumbnail opens (zones still outlined)."""


def _store(session: Any) -> Store:
    store = getattr(session, "store", session)
    if not isinstance(store, Store):
        raise TypeError(f"`session` must be a Session or a Store, got {type(session).__name__}")
    return store


def _exported(store: Store, dest: Path) -> pl.DataFrame:
    if "exports" not in store.table_names():
        raise ExportError(f"no export recorded in this session for {str(dest)!r}")
    rows = store.sql(
        "SELECT * FROM exports WHERE dest = ? AND status = 'ok' ORDER BY output_path, exported_at",
        [str(dest)],
    ).unique("output_path", keep="last", maintain_order=True)
    if rows.height == 0:
        raise ExportError(f"no export recorded in this session for {str(dest)!r}")
    return rows.filter(
        pl.col("output_path").map_elements(
            lambda rel: (dest / rel).is_file(), return_dtype=pl.Boolean
        )
    )


def _thumb(path: str | Path, zones: list[tuple[int, int, int, int]], mode: str) -> tuple[str, str]:
    """The thumbnail and the full-size image of ``path``'s first frame, zones outlined."""
    import pydicom

    from gantry.pixels import decode

    with capture_warnings():
        ds = pydicom.dcmread(path, force=True)
        arr = decode(ds, frame=0) if int(ds.get("NumberOfFrames", 1) or 1) > 1 else decode(ds)
    samples = int(ds.get("SamplesPerPixel", 1) or 1)
    image = display_frame(
        arr, samples=samples, photometric=str(ds.get("PhotometricInterpretation", ""))
    )
    if mode == "pixelated":
        pixelate(image, zones, block=max(8, max(image.shape[:2]) // 24))
    small, factor = thumbnail(image, _THUMB)
    full, full_factor = thumbnail(image, _FULL)
    return (
        data_uri(png_bytes(outline(small, zones, factor))),
        data_uri(png_bytes(outline(full, zones, full_factor))),
    )


def _thumbnails(
    store: Store, dest: Path, rows: pl.DataFrame, limit: int, original: str
) -> tuple[list[dict[str, Any]], int, list[str]]:
    if "plan" not in store.table_names() or limit <= 0:
        return [], 0, []
    redact = (
        store.scan("plan")
        .filter(pl.col("action") == "REDACT")
        .select("file_id", pl.col("new_value").alias("_zones"), "rule")
        .collect()
    )
    picked = (
        rows.join(redact, on="file_id", how="inner")
        .join(store.sql("SELECT file_id, file_path FROM instances"), on="file_id", how="left")
        .with_columns(pl.int_range(pl.len()).over("SeriesInstanceUID").alias("_k"))
        .sort("_k", "output_path")
    )
    total = picked.height
    thumbs: list[dict[str, Any]] = []
    errors: list[str] = []
    for rel, src, zones_json, rule in picked.select(
        "output_path", "file_path", "_zones", "rule"
    ).iter_rows():
        if len(thumbs) >= limit:
            break
        zones = [tuple(int(v) for v in z) for z in json.loads(zones_json).get("zones", [])]
        try:
            after, after_full = _thumb(dest / rel, zones, "after")  # type: ignore[arg-type]
            before, before_full = (
                _thumb(src, zones, original) if original != "none" else (None, None)  # type: ignore[arg-type]
            )
        except Exception as exc:  # a thumbnail is a courtesy: report it, never fail the page
            errors.append(f"{rel}: {type(exc).__name__}")
            continue
        thumbs.append(
            {
                "output_path": rel,
                "before": before,
                "before_full": before_full,
                "after": after,
                "after_full": after_full,
                "zones": zones,
                "rule": rule,
            }
        )
    return thumbs, total, errors


def write_manifest_html(
    session: Any,
    export_dir: str | os.PathLike[str],
    *,
    out: str | os.PathLike[str] | None = None,
    max_thumbnails: int = 24,
    original: Original = "pixelated",
) -> Path:
    """Write ``manifest.html`` (counts, one table row per series, thumbnails) for an export.

    Parameters
    ----------
    session : Session or Store
        The session that made the export (its ``exports`` table lists the files).
    export_dir : path
        The export folder; ``manifest.html`` goes beside ``manifest.csv`` unless ``out``.
    out : path, optional
        Write the page here instead (a file path).
    max_thumbnails : int
        Redacted instances shown as before/after pairs (one per series first).
    original : {"pixelated", "full", "none"}
        How the *before* image is shown.  ``"pixelated"`` (the default) coarsens the
        inside of each redaction zone so its position shows but burned-in text cannot
        be read: the page sits in the export folder, which must hold no PHI.
        ``"full"`` shows the original pixels: write that page outside the export
        (``out=``) and keep it with the session.  ``"none"`` shows only *after*.

    Returns
    -------
    Path
        The page written.  The *after* thumbnails are decoded from the exported
        files, the *before* ones from the originals, both with the zones outlined.
    """
    store = _store(session)
    dest = Path(export_dir).expanduser().absolute()
    if original not in ("pixelated", "full", "none"):
        raise ValueError(f"`original` must be 'pixelated', 'full' or 'none', got {original!r}")
    target = Path(out).expanduser().absolute() if out is not None else dest / "manifest.html"
    if original == "full" and (target.parent == dest or dest in target.parents):
        raise ExportError(
            "`original='full'` puts original pixels in the page: write it outside the export "
            "folder with `out=`"
        )
    rows = _exported(store, dest)
    series = (
        rows.group_by("SeriesInstanceUID")
        .agg(
            pl.col("PatientID").first(),
            pl.col("StudyInstanceUID").first(),
            pl.col("Modality").first(),
            pl.col("SeriesDescription").first(),
            pl.len().alias("files"),
            pl.col("size").sum().alias("bytes"),
            pl.col("TransferSyntaxUID").unique().sort().str.join(", ").alias("syntaxes"),
        )
        .sort("PatientID", "StudyInstanceUID", "SeriesInstanceUID")
    )
    by_modality = rows.group_by("Modality").len("n").sort("n", "Modality", descending=[True, False])
    by_syntax = rows.group_by("TransferSyntaxUID").len("n").sort("n", descending=True)
    thumbs, n_redacted, errors = _thumbnails(store, dest, rows, max_thumbnails, original)
    from pydicom.uid import UID

    counts = {
        "files": rows.height,
        "patients": rows["PatientID"].n_unique(),
        "studies": rows["StudyInstanceUID"].n_unique(),
        "series": rows["SeriesInstanceUID"].n_unique(),
        "bytes": int(rows["size"].sum() or 0),
        "redacted": n_redacted,
    }
    html = render(
        "manifest.html.j2",
        dest=str(dest),
        counts=counts,
        series=series.head(MAX_ROWS).to_dicts(),
        series_more=max(0, series.height - MAX_ROWS),
        syntaxes=[
            {"uid": u, "name": UID(u).name if u else "", "n": n} for u, n in by_syntax.iter_rows()
        ],
        chart_modality=bar_chart(
            [m or "(none)" for m in by_modality["Modality"].to_list()],
            by_modality["n"].to_list(),
            title="Files per modality",
        ),
        thumbs=thumbs,
        original=original,
        thumb_errors=errors,
    )
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.tmp")
    tmp.write_text(html, encoding="utf-8")
    os.replace(tmp, target)
    return target
