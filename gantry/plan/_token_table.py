"""Verification tokens computed with the plan, so export only reads them.

``anonymize`` writes the ``plan_tokens`` table (the tokens of every planned
instance, schema ``TOKEN_SCHEMA`` of :mod:`gantry.plan._tokens`) and the
``plan_token_keys`` table (``file_id, digest``: a digest of the instance's plan
rows the tokens were computed from), in the plan's chunks.  A catalog key
names what holds for every instance: the acknowledged values, the index's
element files and the Polars version the digests come from.

:func:`tokens_for` gives export the tokens of a slice of the plan: the stored
ones of each instance whose plan rows still have the stored digest, and
tokens gathered anew for the others (a plan edited or replaced after
``anonymize``).  When the catalog key differs, or nothing is stored, every
token is gathered anew, so stored tokens are only ever the ones gathering
would give.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import polars as pl

if TYPE_CHECKING:
    from gantry.store import Store

__all__ = ["KEY_META", "TABLE", "plan_digests", "tokens_for", "write_plan_tokens"]

TABLE: Final = "plan_tokens"
KEYS: Final = "plan_token_keys"
KEY_META: Final = "plan_tokens_key"


def plan_digests(plan: pl.DataFrame) -> pl.DataFrame:
    """``file_id, digest``: one digest per instance over its plan rows (any order).

    Examples
    --------
    >>> rows = {"file_id": [1, 1, 2], "path": ["a", "b", "a"], "tag": ["t", "u", "t"],
    ...         "vr": ["LO", "LO", "LO"], "action": ["X", "K", "X"], "new_value": [None] * 3}
    >>> d = plan_digests(pl.DataFrame(rows)).sort("file_id")
    >>> d.height, d["digest"][0] != d["digest"][1]
    (2, True)
    >>> swapped = plan_digests(pl.DataFrame(rows).reverse()).sort("file_id")
    >>> swapped["digest"].to_list() == d["digest"].to_list()
    True
    """
    cols = [c for c in plan.columns if c != "file_id"]
    return (
        plan.select("file_id", pl.struct(cols).hash(seed=24).alias("_h"))
        .group_by("file_id")
        .agg(pl.col("_h").sort())
        .select("file_id", pl.col("_h").hash(seed=24).alias("digest"))
    )


def _key(store: Store, config: Any) -> str:
    """What every stored token depends on besides the instance's own plan rows."""
    from gantry.export._verification import acknowledged

    files = []
    for f in store.files_of("elements"):
        if isinstance(f, Path):
            st = f.stat()
            files.append(f"{f}:{st.st_size}:{st.st_mtime_ns}")
        else:
            files.append(str(f))
    text = json.dumps(
        {
            "acknowledged": sorted(acknowledged(config)),
            "elements": files,
            "polars": pl.__version__,
        }
    )
    return hashlib.sha256(text.encode()).hexdigest()


def write_plan_tokens(store: Store, config: Any, file_ids: list[pl.Series]) -> None:
    """Compute and store the tokens of the planned instances ``file_ids`` (the plan's chunks)."""
    from gantry.export._verification import token_frame
    from gantry.plan._tokens import TOKEN_SCHEMA

    key = _key(store, config)
    store.set_meta(KEY_META, "")  # until both tables are written, nothing stored is used
    keys: list[pl.DataFrame] = []

    def parts() -> Iterator[pl.DataFrame]:
        empty = True
        for ids in file_ids:
            plan = store.scan("plan").filter(pl.col("file_id").is_in(ids.implode())).collect()
            keys.append(plan_digests(plan))
            frame = token_frame(store, plan, config)
            if frame.height:
                empty = False
                yield frame
        if empty:
            yield pl.DataFrame(schema=TOKEN_SCHEMA)

    store.write_table_parts(TABLE, parts())
    store.write_table_parts(
        KEYS, keys or [pl.DataFrame(schema={"file_id": pl.Int64, "digest": pl.UInt64})]
    )
    store.set_meta(KEY_META, key)


def tokens_for(store: Store, plan: pl.DataFrame, config: Any) -> pl.DataFrame:
    """The tokens of the instances ``plan`` covers: stored where still valid, else gathered."""
    from gantry.export._verification import token_frame

    tables = store.table_names()
    if TABLE not in tables or KEYS not in tables or store.get_meta(KEY_META) != _key(store, config):
        return token_frame(store, plan, config)
    ids = plan.select("file_id").unique()["file_id"]
    stored = store.scan(KEYS).filter(pl.col("file_id").is_in(ids.implode())).collect()
    fresh = plan_digests(plan).join(stored, on=["file_id", "digest"], how="semi")["file_id"]
    tokens = store.scan(TABLE).filter(pl.col("file_id").is_in(fresh.implode())).collect()
    if fresh.len() == ids.len():
        return tokens
    stale = plan.filter(~pl.col("file_id").is_in(fresh.implode()))
    return pl.concat([tokens, token_frame(store, stale, config)], how="vertical_relaxed")
