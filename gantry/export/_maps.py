"""Mapping files (``uid_map.csv``, ``patient_map.csv``): they re-identify, keep them safe."""

from __future__ import annotations

import os
from pathlib import Path

import polars as pl

from gantry.errors import ExportError
from gantry.store import Store


def write_maps(store: Store, dest: str | os.PathLike[str]) -> dict[str, Path]:
    """Write ``uid_map.csv`` and ``patient_map.csv`` (columns ``id_old,id_new``) into ``dest``.

    ``dest`` must not be inside an export folder (a folder holding ``manifest.csv``):
    the maps re-identify the data and must travel separately.
    """
    out = Path(dest).expanduser().absolute()
    for parent in (out, *out.parents):
        if (parent / "manifest.csv").exists():
            raise ExportError(f"`dest` must be outside any export folder, got {str(out)!r}")
    if "plan" not in store.table_names():
        raise ExportError("no plan in this session: run `anonymize` first")
    out.mkdir(parents=True, exist_ok=True)
    changed = (
        store.scan("plan").filter(pl.col("action") == "U").select("file_id", "path", "new_value")
    )
    uids = (
        store.scan("elements")
        .select("file_id", "path", "value")
        .join(changed, on=["file_id", "path"])
        .select(
            pl.col("value").str.split("\\").alias("id_old"),
            pl.col("new_value").str.split("\\").alias("id_new"),
        )
        .explode("id_old", "id_new")
        .filter(pl.col("id_old") != pl.col("id_new"))
        .unique()
        .sort("id_old")
        .collect()
    )
    patients = (
        store.scan("plan")
        .filter((pl.col("path") == "00100020") & (pl.col("action") == "P"))
        .select("file_id", pl.col("new_value").alias("id_new"))
        .join(
            store.scan("instances").select(
                "file_id", pl.col("PatientID").cast(pl.String).alias("id_old")
            ),
            on="file_id",
        )
        .select("id_old", "id_new")
        .unique()
        .sort("id_new")
        .collect()
    )
    paths = {"uid_map": out / "uid_map.csv", "patient_map": out / "patient_map.csv"}
    for key, frame in (("uid_map", uids), ("patient_map", patients)):
        tmp = paths[key].with_suffix(".tmp")
        frame.write_csv(tmp)
        os.chmod(tmp, 0o600)
        os.replace(tmp, paths[key])
    return paths
