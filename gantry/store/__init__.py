"""Persistence: the DuckDB catalog and the Parquet shards of a session."""

from gantry.store._layout import SCHEMA_VERSION, Layout
from gantry.store._store import BATCH_TABLES, Store

__all__ = ["BATCH_TABLES", "SCHEMA_VERSION", "Layout", "Store"]
