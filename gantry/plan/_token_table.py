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

__all__ = ["KEY_META", "TABLE", "PlanTokenWriter", "plan_digests", "tokens_for"]

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


class PlanTokenWriter:
    """Compute each plan part's tokens as the part is built; store them after the plan.

    ``add(scope, part)`` takes a plan part and the store its chunk was planned from
    (its ``elements`` hold only the chunk's rows), so every element row is read once
    in all, not once per chunk; the tokens are spilled to a temporary folder and
    :meth:`write` stores them as the ``plan_tokens`` table (then the key).
    """

    def __init__(self, store: Store, config: Any) -> None:
        self.store, self.config = store, config
        self.key = _key(store, config)
        store.set_meta(KEY_META, "")  # until both tables are written, nothing stored is used
        self.spill = store.layout.new_tmp_dir("plan-tokens")
        self.files: list[Path] = []
        self.keys: list[pl.DataFrame] = []

    def add(self, scope: Store, part: pl.DataFrame) -> None:
        from gantry.export._verification import token_frame

        self.keys.append(plan_digests(part))
        frame = token_frame(scope, part, self.config)
        if frame.height:
            path = self.spill / f"part-{len(self.files):05d}.parquet"
            frame.write_parquet(path)
            self.files.append(path)

    def write(self) -> None:
        from gantry.plan._tokens import TOKEN_SCHEMA

        def parts() -> Iterator[pl.DataFrame]:
            for path in self.files:
                yield pl.read_parquet(path)
            if not self.files:
                yield pl.DataFrame(schema=TOKEN_SCHEMA)

        self.store.write_table_parts(TABLE, parts())
        self.store.write_table_parts(
            KEYS, self.keys or [pl.DataFrame(schema={"file_id": pl.Int64, "digest": pl.UInt64})]
        )
        self.store.set_meta(KEY_META, self.key)

    def close(self) -> None:
        """Remove the spilled tokens (after :meth:`write`, or on an error)."""
        import shutil

        shutil.rmtree(self.spill, ignore_errors=True)


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
