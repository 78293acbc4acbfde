"""Mapping files (``uid_map.csv``, ``patient_map.csv``): they re-identify, keep them safe."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import polars as pl

from gantry.errors import ExportError
from gantry.store import Store


def write_maps(
    store: Store,
    dest: str | os.PathLike[str],
    *,
    storage_options: Mapping[str, Any] | None = None,
) -> dict[str, Path | str]:
    """Write ``uid_map.csv`` and ``patient_map.csv`` (columns ``id_old,id_new``) into ``dest``.

    ``dest`` must not be inside an export folder (a folder holding ``manifest.csv``):
    the maps re-identify the data and must travel separately.  ``dest`` may be a
    URL (``s3://bucket/maps``; ``storage_options`` go to fsspec): the maps are
    written locally (mode ``0o600``, in a private temporary folder), then each is
    published whole; no prefix above ``dest`` may hold an export's ``manifest.csv``.
    """
    from gantry.storage._fs import is_url
    from gantry.storage._outputs import publish_output

    if is_url(dest):
        url = os.fspath(dest).rstrip("/")
        _refuse_export_prefix(url, storage_options)
        publish_output(url, lambda local: write_maps(store, local), storage_options)
        return {key: f"{url}/{key}.csv" for key in ("uid_map", "patient_map")}
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
    paths: dict[str, Path | str] = {}
    for key, frame in (("uid_map", uids), ("patient_map", patients)):
        paths[key] = path = out / f"{key}.csv"
        tmp = path.with_suffix(".tmp")
        frame.write_csv(tmp)
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    return paths


def _refuse_export_prefix(url: str, storage_options: Mapping[str, Any] | None) -> None:
    """Raise when ``url`` or a prefix above it holds an export's ``manifest.csv``."""
    from gantry.storage._fs import open_storage

    scheme, _, rest = url.partition("://")
    bucket, _, key = rest.partition("/")
    storage = open_storage(f"{scheme}://{bucket}", storage_options)
    parts = [p for p in key.split("/") if p]
    for depth in range(len(parts) + 1):
        if storage.info("/".join([*parts[:depth], "manifest.csv"])) is not None:
            raise ExportError(f"`dest` must be outside any export folder, got {url!r}")
