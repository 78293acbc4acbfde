"""What a plan covers: its config, the index state and the edits it was built from.

The plan is only as good as the state it was computed from. Three things decide
it: the config, the indexed instances (ingest batches) and the saved object-model
edits. When ``anonymize`` writes the plan it also records:

* the config, as canonical JSON in the catalog table ``configs`` keyed by its
  SHA-256 (:func:`remember_config`), and the ``meta`` key ``plan_config`` naming it;
* one ``plan_coverage`` row per instance: the batch it was indexed in, the
  version of its latest metadata edit, the config hash, and the plan-time
  decision (``planned`` or ``excluded`` with a reason, e.g. a duplicate SOP
  Instance UID) plus the file-name suffix it is written under.

:func:`unplanned` compares a selection with that record: an instance with no
coverage row, indexed in another batch, edited since, or planned with another
config is *not covered*, and export either plans again or refuses it.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from typing import Any

import polars as pl

from gantry.store import Store

__all__ = [
    "COVERAGE_SCHEMA",
    "COVERAGE_TABLE",
    "config_hash",
    "coverage_frame",
    "current_state",
    "remember_config",
    "stored_config",
    "unplanned",
]

COVERAGE_TABLE = "plan_coverage"
PLAN_CONFIG_KEY = "plan_config"
"""``meta`` key: the hash of the config the stored plan was built with."""

COVERAGE_SCHEMA = pl.Schema(
    {
        "file_id": pl.Int64(),
        "batch": pl.String(),
        "edits_version": pl.Int64(),
        "config_hash": pl.String(),
        "status": pl.String(),
        "reason": pl.String(),
        "name_suffix": pl.String(),
    }
)
_STATE_SCHEMA = pl.Schema(
    {"file_id": pl.Int64(), "batch": pl.String(), "edits_version": pl.Int64()}
)
_CONFIGS_DDL = (
    "CREATE TABLE IF NOT EXISTS configs (hash VARCHAR PRIMARY KEY, config JSON, "
    "source VARCHAR, stored_at TIMESTAMP)"
)


def config_hash(config: Any) -> str:
    """SHA-256 of the config's canonical JSON (``Config.to_dict``, sorted keys).

    Examples
    --------
    >>> from gantry.config import Config, load_config
    >>> config_hash(Config()) == config_hash(load_config({"privacy_profile": "basic"}))
    True
    >>> config_hash(Config()) == config_hash(load_config({"date_jitter": {"min_days": -30}}))
    False
    """
    return hashlib.sha256(_canonical(config).encode("utf-8")).hexdigest()


def _canonical(config: Any) -> str:
    return json.dumps(config.to_dict(), sort_keys=True, separators=(",", ":"), default=str)


def remember_config(store: Store, config: Any) -> str:
    """Store ``config`` in the catalog (table ``configs``) and return its hash."""
    digest = config_hash(config)
    with store._mutex:
        store.con.execute(_CONFIGS_DDL)
        store.con.execute(
            "INSERT OR IGNORE INTO configs VALUES (?, ?, ?, ?)",
            [
                digest,
                _canonical(config),
                getattr(config, "source", None),
                datetime.now(UTC).replace(tzinfo=None),
            ],
        )
    return digest


def stored_config(store: Store) -> Any | None:
    """The config the stored plan was built with (a new process sees it too), or None.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> from gantry.config import load_config
    >>> store = Store(pathlib.Path(tempfile.mkdtemp()) / "s.db")
    >>> stored_config(store) is None
    True
    >>> cfg = load_config({"date_jitter": {"min_days": -30, "max_days": -10}})
    >>> store.set_meta("plan_config", remember_config(store, cfg))
    >>> stored_config(store) == cfg
    True
    >>> store.close()
    """
    digest = store.get_meta(PLAN_CONFIG_KEY)
    if digest is None or "configs" not in store.table_names():
        return None
    rows = store.sql("SELECT config FROM configs WHERE hash = ?", [digest])
    if rows.height == 0:
        return None
    from gantry.config import load_config

    return load_config(json.loads(rows["config"][0]))


def current_state(store: Store) -> pl.DataFrame:
    """``file_id, batch, edits_version`` of every indexed instance, as of now.

    ``batch`` is the ingest batch folder the instance's row lives in;
    ``edits_version`` the version of its latest saved metadata edit (0: none).
    """
    files = store.files_of("instances")
    if not files:
        return pl.DataFrame(schema=_STATE_SCHEMA)
    frames = [
        store.scan_files([f])
        .select("file_id")
        .with_columns(pl.lit(store.batch_of(f)).alias("batch"))
        for f in files
    ]
    state = pl.concat(frames).collect()
    versions = _edit_versions(store)
    return (
        state.join(versions, on="file_id", how="left")
        .with_columns(pl.col("edits_version").fill_null(0))
        .unique("file_id", keep="first")
        .cast(_STATE_SCHEMA)
    )


def _edit_versions(store: Store) -> pl.DataFrame:
    if "edits" not in store.table_names():
        return pl.DataFrame(schema={"file_id": pl.Int64, "edits_version": pl.Int64})
    return store.sql(
        "SELECT file_id, max(version)::BIGINT AS edits_version FROM edits "
        "WHERE op IN ('set', 'delete', 'revert') GROUP BY 1"
    ).cast({"file_id": pl.Int64, "edits_version": pl.Int64})


def coverage_frame(
    state: pl.DataFrame, digest: str, decisions: pl.DataFrame | None = None
) -> pl.DataFrame:
    """The ``plan_coverage`` rows for a plan over ``state`` built with config ``digest``.

    ``decisions`` (``file_id, status, reason, name_suffix``) carries the plan-time
    decisions; instances it does not name are ``planned`` under their own name.
    """
    out = state.with_columns(pl.lit(digest).alias("config_hash"))
    if decisions is not None and decisions.height:
        out = out.join(decisions, on="file_id", how="left")
    else:
        out = out.with_columns(
            pl.lit(None, pl.String).alias("status"),
            pl.lit(None, pl.String).alias("reason"),
            pl.lit(None, pl.String).alias("name_suffix"),
        )
    return (
        out.with_columns(pl.col("status").fill_null("planned"), pl.col("name_suffix").fill_null(""))
        .select(list(COVERAGE_SCHEMA))
        .cast(COVERAGE_SCHEMA)
    )


def coverage(store: Store) -> pl.DataFrame:
    """The stored ``plan_coverage`` rows (empty when no plan recorded its coverage)."""
    if COVERAGE_TABLE not in store.table_names():
        return pl.DataFrame(schema=COVERAGE_SCHEMA)
    return store.scan(COVERAGE_TABLE).collect().cast(COVERAGE_SCHEMA)


def unplanned(store: Store, selected: pl.DataFrame, digest: str) -> pl.DataFrame:
    """``file_id, reason`` of each selected instance the stored plan does not cover.

    Parameters
    ----------
    selected : polars.DataFrame
        A ``file_id`` column: the instances about to be written.
    digest : str
        Hash of the config the export runs with.

    Returns
    -------
    polars.DataFrame
        One row per instance that has no plan rows, was indexed or edited after
        the plan, or was planned with another config; empty when all are covered.
    """
    ids = selected.select(pl.col("file_id").cast(pl.Int64)).unique()
    if ids.height == 0:
        return pl.DataFrame(schema={"file_id": pl.Int64, "reason": pl.String})
    now = current_state(store).join(ids, on="file_id", how="semi")
    had = coverage(store).select(
        "file_id",
        pl.col("batch").alias("_batch"),
        pl.col("edits_version").alias("_edits"),
        pl.col("config_hash").alias("_config"),
    )
    planned_ids = _planned_ids(store, ids)
    joined = (
        ids.join(now, on="file_id", how="left")
        .join(had, on="file_id", how="left")
        .join(planned_ids, on="file_id", how="left")
    )
    reason = (
        pl.when(pl.col("_batch").is_null() | ~pl.col("_has_plan").fill_null(False))
        .then(pl.lit("not planned: indexed after the plan was built"))
        .when(pl.col("_batch") != pl.col("batch"))
        .then(pl.lit("not planned: indexed again after the plan was built"))
        .when(pl.col("_edits") != pl.col("edits_version"))
        .then(pl.lit("not planned: edited after the plan was built"))
        .when(pl.col("_config") != pl.lit(digest))
        .then(pl.lit("not planned: the plan was built with another config"))
    )
    return (
        joined.select("file_id", reason.alias("reason"))
        .filter(pl.col("reason").is_not_null())
        .sort("file_id")
    )


def _planned_ids(store: Store, ids: pl.DataFrame) -> pl.DataFrame:
    """``file_id, _has_plan``: which of ``ids`` have rows in the stored plan."""
    if "plan" not in store.table_names():
        return pl.DataFrame(schema={"file_id": pl.Int64, "_has_plan": pl.Boolean})
    return (
        store.scan("plan")
        .select(pl.col("file_id").cast(pl.Int64))
        .join(ids.lazy(), on="file_id", how="semi")
        .unique()
        .with_columns(pl.lit(True).alias("_has_plan"))
        .collect()
    )


def record_plan(store: Store, config: Any, decisions: pl.DataFrame | None = None) -> str:
    """Record what the plan just written covers; return the config hash.

    Call after the ``plan`` table is written: coverage is written second, so a
    crash between the two leaves an old coverage that covers less, never more.
    """
    digest = remember_config(store, config)
    store.write_table(COVERAGE_TABLE, coverage_frame(current_state(store), digest, decisions))
    store.set_meta(PLAN_CONFIG_KEY, digest)
    return digest
