"""The :class:`Session` facade: the one object most users touch."""

from __future__ import annotations

import os
from collections.abc import Iterable
from concurrent.futures import Executor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl

from gantry.ingest._runner import IngestResult, ProgressCallback, run_ingest
from gantry.ingest._scan import as_paths
from gantry.store import Store

__all__ = ["Session", "SessionInfo"]


@dataclass(frozen=True)
class SessionInfo:
    """Counts that describe a session (what ``gantry info`` prints).

    Attributes
    ----------
    totals : dict of str to int
        patients, studies, series, instances, elements, skipped, duplicate SOP UIDs.
    by_modality, by_manufacturer, skipped_by_reason : polars.DataFrame
        Count tables, largest first.
    """

    totals: dict[str, int]
    by_modality: pl.DataFrame
    by_manufacturer: pl.DataFrame
    skipped_by_reason: pl.DataFrame

    def __str__(self) -> str:
        lines = ["Session summary"]
        lines += [f"  {k:<20} {v:>10,}" for k, v in self.totals.items()]
        for title, df in (
            ("By modality", self.by_modality),
            ("By manufacturer", self.by_manufacturer),
            ("Skipped files by reason", self.skipped_by_reason),
        ):
            if df.height:
                lines.append(title)
                for row in df.iter_rows():
                    lines.append(f"  {str(row[0]):<30} {row[1]:>10,}")
        return "\n".join(lines)


class Session:
    """A Gantry session: an index of DICOM headers and everything derived from it.

    Parameters
    ----------
    path : str or Path
        The session catalog file (created when missing). Data lives in a sibling
        folder named after it (``project.db`` → ``project.gantry/``).
    read_only : bool
        Open without the writer lock; writing verbs then raise ``StoreError``.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> from gantry.testing import make_instance
    >>> tmp = pathlib.Path(tempfile.mkdtemp())
    >>> _ = make_instance(tmp / "dicom" / "ct1.dcm", modality="CT")
    >>> with Session(tmp / "project.db") as s:
    ...     _ = s.ingest(tmp / "dicom", workers=1, progress=False)
    ...     print(s.sql("SELECT Modality, count(*) AS n FROM instances GROUP BY 1"))
    shape: (1, 2)
    ┌──────────┬─────┐
    │ Modality ┆ n   │
    │ ---      ┆ --- │
    │ str      ┆ i64 │
    ╞══════════╪═════╡
    │ CT       ┆ 1   │
    └──────────┴─────┘
    """

    def __init__(self, path: str | os.PathLike[str] = "gantry.db", *, read_only: bool = False):
        self._store = Store(path, read_only=read_only)

    # -- lifecycle -------------------------------------------------------------------------

    @property
    def path(self) -> Path:
        """The catalog file."""
        return self._store.layout.catalog

    @property
    def store(self) -> Store:
        """The underlying :class:`~gantry.store.Store` (for stage modules and power users)."""
        return self._store

    def close(self) -> None:
        """Release the session (connection and writer lock)."""
        self._store.close()

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Session({str(self.path)!r})"

    # -- queries ---------------------------------------------------------------------------

    def sql(self, query: str, params: list[Any] | dict[str, Any] | None = None) -> pl.DataFrame:
        """Run a DuckDB SQL query over every table and view; return a Polars DataFrame.

        Tables: ``instances``, ``elements``, ``skipped``, ``runs`` and every derived
        table (``findings``, ``plan``, …); views ``patients``, ``studies``, ``series``,
        ``duplicates``. A failing query raises :class:`~gantry.errors.QueryError`.
        """
        return self._store.sql(query, params)

    def table(self, name: str) -> pl.LazyFrame:
        """A Polars ``LazyFrame`` over table ``name`` (Parquet-backed tables scan lazily)."""
        return self._store.scan(name)

    def tables(self) -> list[str]:
        """Names of the tables and views available to :meth:`sql`."""
        return self._store.table_names()

    # -- ingest ----------------------------------------------------------------------------

    def ingest(
        self,
        paths: str | os.PathLike[str] | Iterable[str | os.PathLike[str]],
        *,
        workers: int | None = None,
        progress: bool | None = None,
        callback: ProgressCallback | None = None,
        executor: Executor | None = None,
    ) -> IngestResult:
        """Index every file under ``paths`` (recursively); resumable and idempotent.

        Parameters
        ----------
        paths : path or paths
            Files and folders to scan.
        workers : int, optional
            Worker processes (default: every core). ``1`` reads in this process.
        progress : bool, optional
            Show a progress bar (default: when stderr is a terminal).
        callback : callable, optional
            ``callback(done, total)`` after each committed batch (for notebooks).
        executor : concurrent.futures.Executor, optional
            Run the per-batch tasks on this executor instead of a local process pool.

        Files already indexed (or recorded as skipped) by an earlier run are not read
        again; an interrupted run resumes where its last committed batch ended.
        """
        return run_ingest(
            self._store,
            as_paths(paths),
            workers=workers,
            progress=progress,
            callback=callback,
            executor=executor,
        )

    def info(self) -> SessionInfo:
        """Counts by level, modality, manufacturer, and skipped files by reason."""
        s = self._store
        cols = set(s.sql("SELECT column_name FROM (DESCRIBE instances)")["column_name"].to_list())
        one = s.sql(
            "SELECT (SELECT count(*) FROM patients) AS patients,"
            " (SELECT count(*) FROM studies) AS studies,"
            " (SELECT count(*) FROM series) AS series,"
            " (SELECT count(*) FROM instances) AS instances,"
            " (SELECT count(*) FROM elements) AS elements,"
            " (SELECT count(*) FROM skipped) AS skipped,"
            " (SELECT count(*) FROM duplicates) AS duplicate_sop_uids"
        ).row(0, named=True)

        def by(col: str) -> pl.DataFrame:
            expr = f'"{col}"' if col in cols else "NULL::VARCHAR"
            return s.sql(
                f"SELECT coalesce({expr}, '(none)') AS {col}, count(*) AS instances "
                "FROM instances GROUP BY 1 ORDER BY 2 DESC, 1"
            )

        reasons = s.sql(
            "SELECT reason, count(*) AS files FROM skipped GROUP BY 1 ORDER BY 2 DESC, 1"
        )
        return SessionInfo(
            totals={k: int(v) for k, v in one.items()},
            by_modality=by("Modality"),
            by_manufacturer=by("Manufacturer"),
            skipped_by_reason=reasons,
        )
