"""What an export derives from the session besides the plan, shared by the runner,
verification and the compliance report (a leaf: it imports neither of them).

* :func:`_out_paths`: each instance's output path, built only from pseudonymised values;
* :func:`_name_suffixes`: the plan-time file-name suffix of instances sharing a SOP
  Instance UID;
* :func:`_session_edits`: saved object-model edits and pixel-edit blob locations.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import polars as pl

from gantry.plan._pseudonyms import safe_path_component
from gantry.store import Store

__all__: list[str] = []


def _out_paths(
    plan: pl.DataFrame, inst: pl.DataFrame, suffixes: dict[int, str] | None = None
) -> pl.DataFrame:
    """``file_id, out_rel`` built only from pseudonymised values.

    ``suffixes`` gives the plan-time file-name suffix of an instance that shares
    its SOP Instance UID with another (config ``duplicates: suffix``).
    """
    suffixes = suffixes or {}

    def pick(tag: str, name: str) -> pl.DataFrame:
        return (
            plan.filter(
                (pl.col("tag") == tag)
                & (pl.col("path") == tag)
                & pl.col("action").is_in(["P", "U", "R", "H", "D", "A"])
            )
            .select("file_id", pl.col("new_value").alias(name))
            .unique("file_id")
        )

    keys = inst.select("file_id", "StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID")
    for tag, name in (
        ("00100020", "_pid"),
        ("0020000D", "_study"),
        ("0020000E", "_series"),
        ("00080018", "_sop"),
    ):
        keys = keys.join(pick(tag, name), on="file_id", how="left")
    keys = keys.with_columns(
        pl.col("_pid").fill_null("UNKNOWN"),
        pl.coalesce("_study", "StudyInstanceUID", pl.lit("study")).alias("_study"),
        pl.coalesce("_series", "SeriesInstanceUID", pl.lit("series")).alias("_series"),
        pl.coalesce("_sop", "SOPInstanceUID", pl.col("file_id").cast(pl.String)).alias("_sop"),
    )
    rels = [
        "/".join(safe_path_component(str(x)) for x in (p, st, se))
        + "/"
        + safe_path_component(str(so))
        + suffixes.get(fid, "")
        + ".dcm"
        for fid, p, st, se, so in keys.select(
            "file_id", "_pid", "_study", "_series", "_sop"
        ).iter_rows()
    ]
    return keys.select("file_id").with_columns(pl.Series("out_rel", rels, dtype=pl.String))


def _name_suffixes(store: Store) -> dict[int, str]:
    from gantry.plan._coverage import coverage

    cov = coverage(store).filter(pl.col("name_suffix") != "")
    return dict(cov.select("file_id", "name_suffix").iter_rows())


def _session_edits(
    store: Store,
) -> tuple[dict[int, list[tuple[str, str, str | None]]], dict[int, Any]]:
    """Saved object-model edits: metadata per file, and pixel-edit blob locations."""
    edits: dict[int, list[tuple[str, str, str | None, str | None]]] = defaultdict(list)
    pixel: dict[int, Any] = {}
    try:
        from gantry.model import load_edits, pixel_edit_locations
    except ImportError:
        return edits, pixel
    frame = load_edits(store)
    for fid, tag, op, value, vr in frame.select("file_id", "tag", "op", "value", "vr").iter_rows():
        if op in ("set", "delete"):
            edits[fid].append((tag, op, value, vr))
    pixel.update(pixel_edit_locations(store))
    return edits, pixel
