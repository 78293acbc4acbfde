"""Where things live inside a session store, and how files get there atomically."""

from __future__ import annotations

import os
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pyarrow as pa

EXPORT_MARKER = ".gantry-export"
"""File at the top of every export folder; ingest skips folders holding it."""

SCHEMA_VERSION = 1
"""Version of the on-disk layout; bump when a reader of the old layout would misread the new."""


@dataclass(frozen=True)
class Layout:
    """Paths of one session store.

    Examples
    --------
    >>> lay = Layout.for_catalog("/data/project.db")
    >>> lay.data_dir.name
    'project.gantry'
    >>> lay.batches.name
    'batches'
    """

    catalog: Path
    data_dir: Path

    @classmethod
    def for_catalog(cls, catalog: str | os.PathLike[str]) -> Layout:
        cat = Path(catalog).expanduser().absolute()
        stem = cat.name[: -len(cat.suffix)] if cat.suffix else cat.name
        return cls(catalog=cat, data_dir=cat.with_name(stem + ".gantry"))

    @property
    def batches(self) -> Path:
        return self.data_dir / "batches"

    @property
    def tables(self) -> Path:
        return self.data_dir / "tables"

    @property
    def tmp(self) -> Path:
        return self.data_dir / "tmp"

    @property
    def lock(self) -> Path:
        return self.data_dir / ".lock"

    @property
    def sidecar(self) -> Path:
        return self.data_dir / "pixels.bin"

    def make_dirs(self) -> None:
        for d in (self.data_dir, self.batches, self.tables, self.tmp):
            d.mkdir(parents=True, exist_ok=True)

    def new_tmp_dir(self, prefix: str) -> Path:
        d = self.tmp / f"{prefix}-{uuid.uuid4().hex}"
        d.mkdir(parents=True)
        return d


def write_parquet_atomic(table: pa.Table, dest: Path) -> None:
    """Write ``table`` to ``dest`` through a temporary name and an atomic rename."""
    import pyarrow.parquet as pq  # here: the layout is read by ``import gantry``

    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.{uuid.uuid4().hex}.tmp")
    pq.write_table(table, tmp, compression="zstd")
    with open(tmp, "rb") as fh:
        os.fsync(fh.fileno())
    os.replace(tmp, dest)


def replace_dir_atomic(src: Path, dest: Path) -> None:
    """Move the finished folder ``src`` to ``dest``, replacing an older ``dest`` atomically.

    The old folder is first renamed aside, so at every instant either the old or the
    new folder is complete under ``dest`` (or, for a moment, neither, which readers
    treat as an empty table — never a half-written one).
    """
    dest.parent.mkdir(parents=True, exist_ok=True)
    old: Path | None = None
    if dest.exists():
        old = dest.with_name(f".{dest.name}.old-{uuid.uuid4().hex}")
        os.replace(dest, old)
    os.replace(src, dest)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
