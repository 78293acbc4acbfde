"""Persistence: the DuckDB catalog and the Parquet shards of a session."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from gantry.store._layout import SCHEMA_VERSION, Layout

if TYPE_CHECKING:
    from gantry.store._store import BATCH_TABLES, Store

__all__ = ["BATCH_TABLES", "SCHEMA_VERSION", "Layout", "Store"]


def __getattr__(name: str) -> Any:
    # ``Store`` brings DuckDB, Polars and PyArrow: loaded on first use, so that
    # ``import gantry`` (which reads the layout) stays light.
    if name in ("BATCH_TABLES", "Store"):
        from gantry.store import _store

        return getattr(_store, name)
    raise AttributeError(f"module 'gantry.store' has no attribute {name!r}")
