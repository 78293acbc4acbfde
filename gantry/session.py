"""The :class:`Session` facade: the one object most users touch."""

from __future__ import annotations

import os
import threading
import warnings
import weakref
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gantry.errors import ConfigError, StoreError, StoreNotFoundError
from gantry.store._layout import Layout

# Everything else is imported where it is used: ``from gantry import Session``
# must not pay for pydicom, Polars, DuckDB and PyArrow before the first verb
# (tests/test_import.py holds this).
if TYPE_CHECKING:
    import polars as pl

    from gantry.audit import AuditReport
    from gantry.export import ExportResult
    from gantry.ingest._limits import IngestLimits
    from gantry.ingest._runner import IngestResult, ProgressCallback
    from gantry.model import Collection, Instance, Model, Patient, SaveResult
    from gantry.net import ListenResult, PullResult
    from gantry.nifti import NiftiResult
    from gantry.ocr import ScanResult
    from gantry.report import ComplianceReport
    from gantry.store import Store
    from gantry.vault import VaultKey

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

    def to_dict(self) -> dict[str, Any]:
        """The same counts as plain JSON-ready data (what ``gantry info --json`` prints).

        Count tables become lists of row objects, largest first.

        Examples
        --------
        >>> import polars as pl
        >>> info = SessionInfo(
        ...     totals={"patients": 1, "instances": 3},
        ...     by_modality=pl.DataFrame({"Modality": ["CT"], "instances": [3]}),
        ...     by_manufacturer=pl.DataFrame({"Manufacturer": ["ACME"], "instances": [3]}),
        ...     skipped_by_reason=pl.DataFrame(schema={"reason": pl.String, "files": pl.Int64}),
        ... )
        >>> info.to_dict()["by_modality"]
        [{'Modality': 'CT', 'instances': 3}]
        >>> info.to_dict()["skipped_by_reason"]
        []
        """
        return {
            "totals": dict(self.totals),
            "by_modality": self.by_modality.to_dicts(),
            "by_manufacturer": self.by_manufacturer.to_dicts(),
            "skipped_by_reason": self.skipped_by_reason.to_dicts(),
        }

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
        The session catalog file. Data lives in a sibling folder named after it
        (``project.db`` → ``project.gantry/``). Only :meth:`ingest` creates a
        session (and the low-level :attr:`store` handle): constructing
        ``Session("new.db")`` writes nothing, and any other verb on a path where no
        session exists raises :class:`~gantry.errors.StoreNotFoundError` (a
        mistyped path never turns into an empty session).
    read_only : bool
        Open without the writer lock; writing verbs then raise ``StoreError``.
        A read-only session must exist (``StoreNotFoundError`` otherwise).
    data : str, optional
        Keep the session's Parquet tables on object storage
        (``"s3://bucket/prefix"``, an empty prefix) while the catalog stays at
        ``path``; DuckDB and Polars read them remotely.  Named once, when the
        session is made: the catalog remembers it, and naming another place
        later raises :class:`~gantry.errors.StoreError` (docs/storage.md).
    data_options : mapping, optional
        fsspec options for ``data`` (credentials, endpoint); never stored.

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

    def __init__(
        self,
        path: str | os.PathLike[str] = "gantry.db",
        *,
        read_only: bool = False,
        data: str | None = None,
        data_options: Mapping[str, Any] | None = None,
    ):
        self._layout = Layout.for_catalog(path)
        self._read_only = read_only
        self._data = (data, data_options)
        self._opened: Store | None = None
        self._closed_because: str | None = None
        self._model_of: Model | None = None
        self._model_lock = threading.Lock()
        self._vault_key: VaultKey | None = None
        if read_only or self._layout.catalog.exists():
            self._open(create=False)

    # -- lifecycle -------------------------------------------------------------------------

    def _open(self, *, create: bool) -> Store:
        """The store, opened on first use; only ``create=True`` (ingest) may make one."""
        if self._closed_because is not None:
            raise StoreError(f"this Session on `{self.path}` {self._closed_because}")
        if self._opened is None:
            if not create and not self._layout.catalog.exists():
                raise StoreNotFoundError(self._layout.catalog)
            if not self._read_only:
                _replace_earlier_writer(self)
            from gantry.store import Store

            self._opened = Store(
                self._layout.catalog,
                read_only=self._read_only,
                data=self._data[0],
                storage_options=self._data[1],
            )
            if not self._read_only:
                _WRITERS[_writer_key(self._layout.catalog)] = self
        return self._opened

    @property
    def _store(self) -> Store:
        return self._open(create=False)

    @property
    def _model(self) -> Model:
        store = self._open(create=False)
        with self._model_lock:  # made on first use: it imports pydicom, which SQL never needs
            if self._model_of is None:
                from gantry.model import Model

                self._model_of = Model(store)
        return self._model_of

    @property
    def path(self) -> Path:
        """The catalog file."""
        return self._layout.catalog

    @property
    def store(self) -> Store:
        """The underlying :class:`~gantry.store.Store` (for stage modules and power users).

        Like :meth:`ingest`, this low-level handle creates the session when none
        exists yet (test builders write an index through it); the verbs that only
        read never do.
        """
        return self._open(create=True)

    def close(self) -> None:
        """Release the session (connection and writer lock); closing twice does nothing.

        A closed Session cannot be used again: open a new one on the same path.
        ``with Session(path) as s:`` closes on leaving the block, and opening a
        second writing Session on the same path in this process closes the first.

        Examples
        --------
        >>> import tempfile, pathlib
        >>> from gantry.testing import make_instance
        >>> tmp = pathlib.Path(tempfile.mkdtemp())
        >>> _ = make_instance(tmp / "dicom" / "ct1.dcm")
        >>> s = Session(tmp / "p.db")
        >>> _ = s.ingest(tmp / "dicom", workers=1, progress=False)
        >>> again = Session(tmp / "p.db")   # a re-run notebook cell: replaces `s`
        >>> again.sql("SELECT count(*) AS n FROM instances")["n"][0]
        1
        >>> again.close()
        """
        self._release("was closed; open a new Session on the same path")

    def _release(self, because: str) -> None:
        if self._closed_because is None:
            self._closed_because = because
        if self._opened is not None:
            self._opened.close()
            self._opened = None
            self._model_of = None
        key = _writer_key(self._layout.catalog)
        if _WRITERS.get(key) is self:
            del _WRITERS[key]

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

    # -- object model ----------------------------------------------------------------------

    @property
    def patients(self) -> Collection[Patient]:
        """Every patient, as a :class:`~gantry.model.Collection` (index it by ``PatientID``).

        Navigate with ``patient.studies``, ``study.series``, ``series.instances`` and
        back with ``instance.series.study.patient``. Built from the index only: no
        file is read until an instance's header or pixels are asked for.
        """
        return self._model.patients

    def instance(self, sop_instance_uid: str) -> Instance:
        """The instance with this ``SOPInstanceUID`` (``KeyError`` when not indexed)."""
        return self._model.instance(sop_instance_uid)

    def instances(self, where: str | pl.Expr | None = None) -> Collection[Instance]:
        """Instances matching ``where``: a SQL ``WHERE`` over ``instances`` or a Polars
        expression (a bad one raises :class:`~gantry.errors.QueryError`)."""
        return self._model.instances(where)

    def edit(
        self,
        *,
        where: str | pl.Expr | None,
        set: dict[str, Any] | None = None,
        delete: Iterable[str] = (),
        vr: dict[str, str] | None = None,
    ) -> int:
        """Set (``set={"InstitutionName": "X"}``) or ``delete`` elements in every instance
        matching ``where`` (None: all); values are checked first. Returns the instances
        matched; :meth:`save` persists."""
        return self._model.edit(where=where, set=set, delete=delete, vr=vr)

    @property
    def pending_edits(self) -> int:
        """Edits made in this session and not yet saved."""
        return self._model.pending

    def save(self) -> SaveResult:
        """Persist pending edits atomically (pixel blobs first, then one catalog transaction)."""
        return self._model.save()

    def compact(self) -> int:
        """Rewrite the pixel sidecar without superseded blobs; returns the bytes reclaimed."""
        return self._model.compact()

    # -- ingest ----------------------------------------------------------------------------

    def ingest(
        self,
        paths: str | os.PathLike[str] | Iterable[str | os.PathLike[str]],
        *,
        workers: int | None = None,
        progress: bool | None = None,
        callback: ProgressCallback | None = None,
        executor: Executor | Any | None = None,
        cluster: str | Any | None = None,
        limits: IngestLimits | Mapping[str, int] | None = None,
        storage_options: Mapping[str, Any] | None = None,
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
        executor : concurrent.futures.Executor or distributed.Client, optional
            Run the per-batch tasks on this executor instead of a local process pool.
        cluster : str or distributed.Client, optional
            A Dask scheduler address (``"tcp://host:8786"``) to run the tasks on; the
            ``GANTRY_EXECUTOR`` environment variable sets a default. Workers must see
            the inputs and the store folder at the same paths (docs/cluster.md).
        limits : IngestLimits or mapping, optional
            Per-file limits (``max_depth``, ``max_element_bytes``,
            ``max_inflated_bytes``, ``max_frames``); a file over one is recorded
            in ``skipped`` with reason ``over_limit`` and the run goes on.
        storage_options : mapping, optional
            For object storage URLs (``s3://bucket/prefix``, ``gs://``, ``az://``):
            options handed to fsspec as they are (endpoint, credentials); never
            stored. Without them each SDK's environment chain applies
            (docs/storage.md). Headers are read by ranged requests, never the
            pixel data; an object whose ETag changed is read again.

        Notes
        -----
        Files already indexed (or recorded as skipped) by an earlier run are not read
        again; an interrupted run resumes where its last committed batch ended.
        """
        from gantry.storage import is_url

        urls = [paths] if isinstance(paths, str | os.PathLike) else list(paths)
        local_pool = executor is None and cluster is None and not os.environ.get("GANTRY_EXECUTOR")
        if local_pool and not any(map(is_url, urls)):
            from gantry._pool import warm_pool

            warm_pool(workers)  # the workers' imports overlap this process's own set-up
        from gantry.cluster import open_backend
        from gantry.ingest._limits import IngestLimits
        from gantry.ingest._runner import run_ingest
        from gantry.ingest._scan import as_paths

        if any(is_url(u) for u in urls):
            return self._ingest_urls(
                urls, workers=workers, progress=progress, callback=callback,
                executor=executor, cluster=cluster, limits=limits,
                storage_options=storage_options,
            )  # fmt: skip
        found = as_paths(urls)
        missing = [p for p in found if not p.exists()]
        if missing:  # before a session is created for nothing
            raise FileNotFoundError(str(missing[0]))
        self._open(create=True)  # the one verb that creates a session
        with open_backend(
            executor, cluster=cluster, writable=[self._store.layout.tmp], readable=found[:1]
        ) as backend:
            return run_ingest(
                self._store,
                found,
                workers=workers if workers is not None else backend.workers,
                progress=progress,
                callback=callback,
                executor=backend.executor,
                limits=IngestLimits.of(limits),
            )

    def _ingest_urls(
        self,
        urls: list[Any],
        *,
        storage_options: Mapping[str, Any] | None,
        executor: Executor | Any | None,
        cluster: str | Any | None,
        limits: IngestLimits | Mapping[str, int] | None,
        **options: Any,
    ) -> IngestResult:
        from gantry.cluster import open_backend
        from gantry.ingest._limits import IngestLimits
        from gantry.storage import is_url, run_remote_ingest
        from gantry.storage._ingest import list_sources

        local = [u for u in urls if not is_url(u)]
        if local:
            raise ConfigError(
                "paths", expected="all local or all object storage URLs", got=str(local[0])
            )
        names = [str(u).rstrip("/") for u in urls]
        # a missing bucket or refused credentials fail here, before a session exists
        listed = list_sources(names, storage_options)
        self._open(create=True)
        with open_backend(
            executor, cluster=cluster, writable=[self._store.layout.tmp], readable=[]
        ) as backend:
            return run_remote_ingest(
                self._store,
                names,
                storage_options=storage_options,
                listed=listed,
                executor=backend.executor,
                limits=IngestLimits.of(limits),
                **options,
            )

    # -- audit -----------------------------------------------------------------------------

    def audit(self, config: Any = None) -> AuditReport:
        """Audit every indexed instance for PHI; write nothing.

        Parameters
        ----------
        config : Config, mapping, path or None
            The YAML config v2 (``None``: the defaults); it decides which
            findings are ``resolved`` (the plan will remove or replace them).

        Returns
        -------
        gantry.audit.AuditReport
            ``len(report)``, ``report.to_polars()``, ``report.summary(by=...)``,
            ``report.unresolved()``; persist it with :meth:`save_analysis`.
        """
        from gantry.audit import audit

        cfg = self._config_or_stored(config)  # a config mistake is reported first
        return audit(self._store, cfg)

    def save_analysis(self, report: AuditReport) -> int:
        """Persist an audit report as the ``findings`` table; return the rows written."""
        from gantry.audit import save_findings

        return save_findings(self._store, report)

    def preview(self, config: Any = None, *, include_kept: bool = False) -> pl.DataFrame:
        """Dry run: counts of what anonymization would do per rule, tag and action.

        See :func:`gantry.audit.preview`; nothing is written. ``config`` defaults to
        the one the stored plan was built with (:meth:`stored_config`).
        """
        from gantry.audit import preview

        cfg = self._config_or_stored(config)
        return preview(self._store, cfg, include_kept=include_kept)

    def preview_failures(self, config: Any = None) -> pl.DataFrame:
        """Instances that export verification would fail, before any file is written.

        The plan is built in memory from ``config`` (nothing is written) and the
        verification rules of export are applied to the index: one row per
        predicted hit with ``file_id``, the output element ``path``, the source
        attribute (``tag``, ``keyword``), ``identity``, ``value_hash`` (what an
        ``acknowledged`` entry of the config names) and the ``reason`` export
        would give; never the value.  See
        :func:`gantry.export._verification.predict_failures`.
        """
        from gantry.export._verification import predict_failures

        cfg = self._config_or_stored(config)
        return predict_failures(self._store, cfg)

    def create_config(self, path: str | os.PathLike[str], *, overwrite: bool = False) -> Path:
        """Write the commented default config (YAML v2) to ``path`` and return it.

        An existing file is kept as it is (so a script can run again) unless
        ``overwrite=True``; the path is returned either way.
        """
        from gantry.config import write_default_config

        target = Path(path).expanduser()
        if target.exists() and not overwrite:
            return target
        return write_default_config(target, overwrite=overwrite)

    # -- defacing ---------------------------------------------------------------------------

    def deface(
        self, series: str | Sequence[str], *, margin: float = 4.0, refit: bool = False
    ) -> pl.DataFrame:
        """Fit the face cut of head CT/MR series → table ``deface`` (``docs/deface.md``).

        Each series' pixels are read once; the row records the plane (patient
        coordinates), the share of voxels it removes, or why the series cannot
        be defaced.  The plan defaces the series the config's ``deface.series``
        lists (fitting them itself when needed); this verb lets you look first.
        Needs ``pip install 'gantry[deface]'``.

        Parameters
        ----------
        series : str or sequence of str
            SeriesInstanceUIDs.
        margin : float
            Distance (mm) the cut keeps from the brain.
        refit : bool
            Fit again a series whose row is current.

        Returns
        -------
        polars.DataFrame
            The ``deface`` rows of ``series`` (:data:`gantry.deface.DEFACE_SCHEMA`).
        """
        from gantry.deface import deface_series

        uids = [series] if isinstance(series, str) else list(series)
        with self._store.run("deface", {"series": len(uids), "margin": margin}) as counts:
            table = deface_series(self._store, uids, margin=margin, refit=refit)
            counts["ok"] = int((table["status"] == "ok").sum())
            counts["refused"] = table.height - counts["ok"]
        return table

    def deface_preview(self, series: str) -> Any:
        """Before/after side projections (PNG) of a series in the ``deface`` table.

        Returns a :class:`gantry.deface.DefacePreview`; ``StoreError`` when the
        series has no ``ok`` row (run :meth:`deface` first).
        """
        from gantry.deface import FacePlane, load_volume, render_deface_preview

        rows = (
            self.sql(
                'SELECT normal, "offset", fill FROM deface WHERE SeriesInstanceUID = ? '
                "AND status = 'ok'",
                [series],
            )
            if "deface" in self._store.table_names()
            else None
        )
        if rows is None or rows.height == 0:
            raise StoreError("the series has no defacing plane: run `deface` on it first")
        normal, offset, fill = rows.row(0)
        paths = self.sql("SELECT file_path FROM instances WHERE SeriesInstanceUID = ?", [series])[
            "file_path"
        ].to_list()
        volume, geometries, _, _, _ = load_volume(paths)
        return render_deface_preview(volume, geometries, FacePlane(tuple(normal), offset), fill)

    # -- burned-in text (OCR) ----------------------------------------------------------------

    def scan_pixels(
        self,
        *,
        query: str | None = None,
        engine: str = "rapidocr",
        frames: str | int | Sequence[int] | None = None,
        safe: bool = False,
        min_confidence: float = 0.5,
        rescan: bool = False,
        workers: int | None = None,
        progress: bool | None = None,
        executor: Executor | Any | None = None,
        cluster: str | Any | None = None,
    ) -> ScanResult:
        """OCR the pixels of the selected instances → tables ``text_regions``, ``ocr_scans``.

        Parameters
        ----------
        query : str, optional
            SQL ``WHERE`` over ``instances`` (default: every instance).
        engine : {"rapidocr", "tesseract"} or a plugin name
            ``rapidocr`` needs ``pip install 'gantry[ocr]'``; ``tesseract`` also the
            ``tesseract-ocr`` program; any other name is a pixel-detector plugin
            (``docs/plugins.md``).
        frames : {"sample", "all"}, int or frame numbers, optional
            Frames of a multi-frame image to read: first, middle and last by default,
            every frame with ``safe=True``. Only a scan of every frame clears an image.
        safe : bool
            Read every frame (the default for ``frames`` becomes ``"all"``).
        min_confidence : float
            Text recognised with a lower score is ignored.
        rescan : bool
            Scan again instances an earlier scan with this engine covers.
        workers, progress
            Worker processes (default: every core) and the progress bar.
        executor, cluster
            Where the per-chunk tasks run, as for :meth:`ingest` (a
            ``concurrent.futures`` executor, a ``distributed.Client`` or a Dask
            scheduler address; ``GANTRY_EXECUTOR`` sets a default). Workers must
            read the instances at the same paths; each runs one engine with one
            ONNX thread per task slot.

        Notes
        -----
        Frames are rendered as a viewer shows them (VOI LUT or window, MONOCHROME1
        inverted, colour converted, overlays burned in). Resumable: a killed scan
        goes on where it stopped. ``docs/ocr.md`` describes the tables.

        Examples
        --------
        >>> import tempfile, pathlib
        >>> from gantry.testing._text import make_text_instance
        >>> tmp = pathlib.Path(tempfile.mkdtemp())
        >>> _ = make_text_instance(tmp / "dicom" / "us.dcm", rows=64, columns=160, size=14,
        ...                        texts=[("ID 4471234", True)])
        >>> with Session(tmp / "project.db") as s:
        ...     _ = s.ingest(tmp / "dicom", workers=1, progress=False)
        ...     result = s.scan_pixels(workers=1, progress=False)
        ...     print(s.sql("SELECT frame, phi, match FROM text_regions"))
        shape: (1, 3)
        ┌───────┬──────┬────────────┐
        │ frame ┆ phi  ┆ match      │
        │ ---   ┆ ---  ┆ ---        │
        │ i32   ┆ bool ┆ str        │
        ╞═══════╪══════╪════════════╡
        │ 0     ┆ true ┆ pattern:id │
        └───────┴──────┴────────────┘
        """
        from gantry.cluster import open_backend
        from gantry.ocr import scan_pixels

        chosen = frames if frames is not None else ("all" if safe else "sample")
        first = self._store.sql(
            "SELECT file_path FROM instances WHERE pixel_offset IS NOT NULL LIMIT 1"
        )["file_path"].to_list()
        with open_backend(executor, cluster=cluster, readable=first) as backend:
            return scan_pixels(
                self._store,
                query=query,
                engine=engine,
                frames=chosen,
                min_confidence=min_confidence,
                rescan=rescan,
                workers=workers if workers is not None else backend.workers,
                progress=progress,
                executor=backend.executor,
            )

    # -- anonymize and export ---------------------------------------------------------------

    def anonymize(self, config: Any = None) -> pl.DataFrame:
        """Compute and persist the remediation plan; write no DICOM file.

        Parameters
        ----------
        config : Config, mapping, path or None
            The YAML config v2 (``None``: the defaults, see ``create_config``).

        Returns
        -------
        polars.DataFrame
            Counts of planned actions by ``action`` and ``rule``. The full plan is the
            ``plan`` table: ``session.sql("SELECT * FROM plan")``.

        Notes
        -----
        The plan records what it covers (table ``plan_coverage``): the config, kept
        in the store with its hash (a new process exporting without a config uses
        it), the ingest batch and edit version of every instance, and the
        plan-time decisions, such as which of several files sharing a SOP Instance
        UID is exported (config key ``duplicates``).
        """
        from gantry.plan._coverage import record_plan
        from gantry.plan._duplicates import duplicate_decisions
        from gantry.plan._parts import write_plan

        cfg = _load_config(config)
        with self._store.run("anonymize", {"profile": str(cfg.privacy_profile)}) as counts:
            summary, rows, instances = write_plan(self._store, cfg)
            decisions = duplicate_decisions(self._store, cfg.duplicates)
            counts["config_hash"] = record_plan(self._store, cfg, decisions)
            counts.update(
                {
                    "rows": rows,
                    "instances": instances,
                    "duplicates_excluded": int((decisions["status"] == "excluded").sum()),
                }
            )
        from gantry.vault._vault import seal_pending

        seal_pending(self._store, self._vault_key)  # locks asked for before this plan
        return summary

    def stored_config(self) -> Any:
        """The config the stored plan was built with (kept in the store), or None.

        ``export``, ``preview``, ``audit`` and ``compliance_report`` use it when no
        config is given, in this process or any later one.
        """
        from gantry.plan._coverage import stored_config

        return stored_config(self._store)

    def _config_or_stored(self, config: Any) -> Any:
        """``config`` loaded; else the stored plan's config; else the defaults."""
        if config is not None:
            return _load_config(config)
        stored = self.stored_config()
        return stored if stored is not None else _load_config(None)

    def export(
        self,
        dest: str | os.PathLike[str],
        *,
        config: Any = None,
        safe: bool = True,
        query: str | None = None,
        compression: str | None = None,
        workers: int | None = None,
        verify: bool = True,
        progress: bool | None = None,
        executor: Executor | Any | None = None,
        cluster: str | Any | None = None,
        strict: bool = False,
        storage_options: Mapping[str, Any] | None = None,
    ) -> ExportResult:
        """Write clean copies of the selected instances into ``dest`` (resumable).

        Parameters
        ----------
        dest : path or URL
            Output folder; layout ``<pseudonym>/<study>/<series>/<instance>.dcm``
            built only from pseudonymised values, plus ``manifest.csv``/``.json``.
            Or a network peer, ``"dicom://CALLED_AET@host:port"`` (C-STORE) or a
            DICOMweb base URL (STOW-RS): the verified files are staged beside the
            catalog and sent, with a per-file status in ``exports`` and ``transfers``
            (see :func:`gantry.net.export_to_peer`, docs/network.md).
            Or ``"plugin://<name>/<destination>"``: staged and verified the same
            way, then handed to that exporter plugin (docs/plugins.md).
        config : Config, mapping, path or None
            The config to export with (default: the one the stored plan was built
            with, kept in the store; else the defaults).
        safe : bool
            Export only instances with no unresolved finding (e.g. burned-in text
            risk without a redaction zone); the rest are listed with reasons.
        query : str, optional
            SQL ``WHERE`` over ``instances`` selecting what to export.
        compression : {None, "rle", "j2k", "jpegls", "htj2k", ...}
            ``None`` keeps the original encoding (pixel bytes copied unchanged);
            any :class:`gantry.pixels.Compression` value. Checked before anything
            runs (``ConfigError`` naming the valid choices; no aliases such as
            ``"jpeg2000"``, which could mean the lossless or the lossy syntax).
            Objects without pixel data (SR, RTPLAN, ...) pass through untouched.
        workers : int, optional
            Worker processes (default: every core).
        verify : bool
            Read every written file back; a file holding a removed element or an
            original identifying value is deleted and reported as failed.
        executor, cluster
            Where the per-chunk tasks run, as for :meth:`ingest`; workers must see
            ``dest`` at the same path.
        strict : bool
            Never plan during an export: a selected instance the stored plan does not
            cover (indexed or edited after it, or planned with another config) is
            refused and listed in ``excluded`` with the reason. By default such
            instances are planned again (``anonymize`` with this config) first.
            Either way nothing unplanned is ever written.
        storage_options : mapping, optional
            fsspec options (endpoint, credentials; never stored) for a bucket
            ``dest`` (``s3://bucket/prefix``, ``gs://``, ``az://``) and for sources
            ingested from object storage. A bucket export is staged and verified
            beside the catalog, then each file is published whole and read back,
            the manifest last (docs/storage.md).
        """
        from gantry.export import run_export
        from gantry.export._plugin import export_to_plugin, is_plugin_url
        from gantry.net._peer import is_dicom_url, is_web_url
        from gantry.storage import is_url

        if is_plugin_url(dest):  # an exporter plugin: stage, verify, hand over
            return export_to_plugin(
                self, str(dest), config=config, safe=safe, query=query, verify=verify,
                compression=compression, workers=workers, progress=progress,
                executor=executor, cluster=cluster, strict=strict,
            )  # fmt: skip
        if is_dicom_url(dest) or is_web_url(dest):  # a network peer: stage, verify, send
            from gantry.net import export_to_peer

            return export_to_peer(
                self, str(dest), config=config, safe=safe, query=query, verify=verify,
                compression=compression, workers=workers, progress=progress,
                executor=executor, cluster=cluster, strict=strict,
            )  # fmt: skip
        if is_url(dest):  # object storage: stage, verify, publish, read back
            from gantry.storage import export_to_bucket

            return export_to_bucket(
                self, str(dest), storage_options=storage_options, config=config, safe=safe,
                query=query, verify=verify, compression=compression, workers=workers,
                progress=progress, executor=executor, cluster=cluster, strict=strict,
            )  # fmt: skip
        from gantry.export._runner import check_compression, check_dest, selected_ids
        from gantry.plan._coverage import config_hash, unplanned

        compression = check_compression(compression)
        check_dest(self._store, dest)
        selected = selected_ids(self._store, query)  # a bad query fails before any write
        local_pool = executor is None and cluster is None and not os.environ.get("GANTRY_EXECUTOR")
        if local_pool:
            from gantry._pool import warm_pool

            warm_pool(workers, selected.height)  # imports overlap loading the config, planning
        cfg = self._config_or_stored(config)
        stale = 0 if strict else unplanned(self._store, selected, config_hash(cfg)).height
        if stale:
            self.anonymize(cfg)
        encrypt_key = None
        if cfg.encrypted_attributes:  # carry the originals encrypted under the vault key
            from gantry.vault._vault import require_key

            encrypt_key = require_key(self._store, self._vault_key).material
        from gantry.cluster import open_backend

        out = Path(dest).expanduser().absolute()
        seen = out if out.exists() else next(p for p in out.parents if p.exists())
        with open_backend(
            executor,
            cluster=cluster,
            writable=[out] if out.exists() else [],
            readable=[] if out.exists() else [seen],
        ) as backend:
            result = run_export(
                self._store,
                dest,
                config=cfg,
                safe=safe,
                query=query,
                compression=compression,
                workers=workers if workers is not None else backend.workers,
                verify=verify,
                progress=progress,
                executor=backend.executor,
                encrypt_key=encrypt_key,
                source_options=storage_options,
            )
        result.planned_again = stale
        return result

    def export_nifti(
        self,
        dest: str | os.PathLike[str],
        *,
        query: str | None = None,
        layout: str = "bids",
        rules: Any = None,
        config: Any = None,
        safe: bool = True,
        workers: int | None = None,
        progress: bool | None = None,
    ) -> NiftiResult:
        """Write the selected series as NIfTI (``.nii.gz`` + JSON sidecars), BIDS or flat.

        The plan is applied first by the ordinary verified :meth:`export` into a
        staging folder inside ``dest`` (deleted afterwards); only those
        de-identified copies are converted. Needs ``pip install 'gantry[nifti]'``.

        Parameters
        ----------
        dest : path
            Output folder.
        query : str, optional
            SQL ``WHERE`` over ``instances`` selecting what to convert.
        layout : {"bids", "flat"}
            ``"bids"``: ``sub-<pseudonym>/ses-<n>/<datatype>/…`` with
            ``dataset_description.json`` and ``participants.tsv``; series no rule
            matches are listed as ``unmatched``. ``"flat"``:
            ``<pseudonym>/ses-<n>/<SeriesNumber>_<Modality>.nii.gz`` for every series.
        rules : path, list or None
            BIDS datatype/suffix rules (YAML/JSON file or list of mappings, see
            :func:`gantry.nifti.load_bids_rules`); default
            :data:`gantry.nifti.DEFAULT_BIDS_RULES`.
        config, safe, workers, progress
            As for :meth:`export`; ``workers`` processes also convert series in parallel.

        Returns
        -------
        gantry.nifti.NiftiResult
            ``result.conversions`` (also appended to the ``conversions`` table): one
            row per series with its output path, or the reason it was not converted.
        """
        from gantry.nifti import run_nifti_export

        def stage(folder: Path) -> ExportResult:
            return self.export(
                folder, config=config, safe=safe, query=query, workers=workers, progress=progress
            )

        return run_nifti_export(
            self._store,
            dest,
            stage=stage,
            layout=layout,
            rules=rules,
            workers=workers,
            progress=progress,
        )

    def pull(
        self,
        source: str,
        *,
        query: dict[str, Any] | None = None,
        level: str = "STUDY",
        method: str = "move",
        ae_title: str = "GANTRY",
        port: int | None = None,
        dest: str | os.PathLike[str] | None = None,
        tls: Any = None,
        timeout: float | None = None,
    ) -> PullResult:
        """Query a DICOM peer, retrieve what matches, and ingest it.

        Parameters
        ----------
        source : str
            ``"dicom://CALLED_AET@host:port"``, or a DICOMweb base URL
            (``"http://host:8042/dicom-web"``: QIDO-RS then WADO-RS).
        query : dict, optional
            Matching keys, e.g. ``{"PatientID": "123", "StudyDate": "20240101-"}``.
        level : {"PATIENT", "STUDY", "SERIES", "IMAGE"}
            What each match is, and so what each retrieve asks for.
        method : {"move", "get"}
            C-MOVE (the peer sends to ``ae_title`` at ``port``, which it must know) or
            C-GET (files come back on the same association; no port needed).
        ae_title, port : str, int
            Our AE title; the port our storage server listens on during a C-MOVE.
        dest : path, optional
            Where the received files are kept (default ``<catalog stem>.received/``
            beside the catalog); the index points at them.
        tls : ssl.SSLContext, optional
            DICOM over TLS (see :func:`gantry.net.tls_context`).
        timeout : float, optional
            Seconds to wait for the peer at each step (default 30).

        Returns
        -------
        gantry.net.PullResult
            ``matched``, ``retrieved``, ``failed``, and the ``ingest`` result. Pulling
            again is safe: a file already received is not duplicated.
        """
        from gantry.net import pull

        return pull(
            self, source, query=query, level=level, method=method,  # type: ignore[arg-type]
            ae_title=ae_title, port=port, dest=dest, tls=tls, timeout=timeout,
        )  # fmt: skip

    def listen(
        self,
        dest: str | os.PathLike[str],
        *,
        port: int,
        ae_title: str = "GANTRY",
        **options: Any,
    ) -> ListenResult:
        """Run a C-STORE server that writes into ``dest`` and ingests in batches.

        Blocks until ``stop`` (a ``threading.Event`` in ``options``) is set or
        Ctrl-C; see :func:`gantry.net.listen` for ``host``, ``allow`` (calling AE
        titles), ``batch_size``, ``batch_seconds`` and ``tls``.
        """
        from gantry.net import listen

        return listen(self, dest, port=port, ae_title=ae_title, **options)

    def export_maps(
        self,
        dest: str | os.PathLike[str],
        *,
        storage_options: Mapping[str, Any] | None = None,
    ) -> dict[str, Path | str]:
        """Write ``uid_map.csv`` and ``patient_map.csv`` (``id_old,id_new``) into ``dest``.

        They re-identify the export, so ``dest`` must be outside the export folder.
        ``dest`` may be a URL (``s3://bucket/maps``; docs/storage.md).
        """
        from gantry.export import write_maps

        return write_maps(self._store, dest, storage_options=storage_options)

    # -- analytics and reports ---------------------------------------------------------------

    def to_parquet(
        self,
        path: str | os.PathLike[str],
        *,
        level: str = "instance",
        partition_by: str | None = None,
        storage_options: Mapping[str, Any] | None = None,
    ) -> Path | str:
        """Write the index flattened at ``level`` to Parquet, plus ``<path>.schema.json``.

        ``level`` is ``"instance"`` (every attribute plus series, study and patient
        aggregates), ``"series"``, ``"study"`` or ``"patient"``; ``partition_by``
        (``"PatientID"`` or ``"Modality"``) writes a hive-partitioned folder.
        ``path`` may be a URL (``s3://bucket/cohort.parquet``; docs/storage.md).
        See :func:`gantry.report.to_parquet`.
        """
        from gantry.report import to_parquet

        return to_parquet(
            self._store,
            path,
            level=level,
            partition_by=partition_by,
            storage_options=storage_options,
        )

    def to_polars(self, level: str = "instance") -> pl.DataFrame:
        """The table :meth:`to_parquet` writes, as a Polars DataFrame."""
        from gantry.report import to_polars

        return to_polars(self._store, level)

    def compliance_report(
        self,
        export: str | os.PathLike[str] | ExportResult,
        *,
        profile: Any = None,
        out: str | os.PathLike[str] | None = None,
    ) -> ComplianceReport:
        """Verify an export folder by reading every written file back.

        Parameters
        ----------
        export : path or ExportResult
            The export folder (or what :meth:`export` returned).
        profile : Config, mapping, path, Profile or None
            What the files must satisfy (default: the config of the last
            :meth:`anonymize`, else the defaults).
        out : path, optional
            Also write ``compliance.html``, ``compliance.json`` and ``compliance.csv``
            into this folder.

        Returns
        -------
        gantry.report.ComplianceReport
            ``report.compliant``, ``report.problems`` (keyword, tag, file; never a
            value), per-rule and per-file tables. See ``docs/reports.md``.
        """
        from gantry.report import compliance_report

        config = profile if profile is not None else self._config_or_stored(None)
        return compliance_report(self._store, export, config=config, out=out)

    def audit_report(
        self,
        path: str | os.PathLike[str],
        *,
        format: str = "csv",
        storage_options: Mapping[str, Any] | None = None,
    ) -> Path | str:
        """Write what the plan changes in each instance, and why (``csv`` or ``parquet``).

        See :func:`gantry.report.audit_table`. The file names original identifiers:
        keep it with the session, never in an export folder. ``path`` may be a URL
        (``s3://bucket/audit.csv``; docs/storage.md).
        """
        from gantry.report import write_audit_report

        return write_audit_report(self._store, path, format=format, storage_options=storage_options)

    # -- reversible anonymization (the identity vault) ------------------------------------

    def enable_reversible_anonymization(
        self,
        key_path: str | os.PathLike[str] = "gantry.key",
        *,
        passphrase: str | bytes | None = None,
    ) -> Path:
        """Create a vault key file (mode ``0o600``, never overwriting one) for this session.

        The session records the key's fingerprint (never the key) so :meth:`load_key`
        later refuses a wrong key. With ``passphrase`` the file is protected by scrypt.
        Keep the key apart from the data: whoever holds both can re-identify.
        """
        from gantry.vault._vault import enable

        path, self._vault_key = enable(self._store, key_path, passphrase=passphrase)
        return path

    def load_key(
        self, key_path: str | os.PathLike[str], passphrase: str | bytes | None = None
    ) -> None:
        """Load the vault key from ``key_path``; a wrong or missing key raises ``VaultKeyError``."""
        from gantry.vault._vault import load_key

        self._vault_key = load_key(self._store, key_path, passphrase=passphrase)

    def lock_identities(
        self, patients: Iterable[str] | None = None, *, query: str | None = None
    ) -> int:
        """Encrypt the original identity of each selected patient into ``identities``.

        Parameters
        ----------
        patients : iterable of str, optional
            Original PatientIDs (default: every patient).
        query : str, optional
            SQL ``WHERE`` over ``instances``; patients with a matching instance are
            locked whole.

        Returns
        -------
        int
            Patients locked. Needs a loaded key. Before any plan exists (locking
            before ``anonymize``, as the original README does) the selection is
            recorded and sealed by the next :meth:`anonymize`, once the
            pseudonyms exist.
        """
        from gantry.vault._vault import lock

        return lock(self._store, self._vault_key, patients, query=query)

    def recover_patient_identity(self, pseudonym: str) -> dict[str, Any]:
        """The original identity locked under ``pseudonym`` (needs the loaded key)."""
        from gantry.vault._vault import identities, recover_identity, require_key

        key = require_key(self._store, self._vault_key)
        return recover_identity(identities(self._store), key, pseudonym)

    def recover_uid(self, new_uid: str) -> str:
        """The original UID behind a remapped Study/Series/SOP Instance UID."""
        from gantry.vault._vault import identities, recover_uid_row, require_key

        key = require_key(self._store, self._vault_key)
        return recover_uid_row(identities(self._store), key, new_uid)[0]

    def rotate_key(
        self, new_key_path: str | os.PathLike[str], *, passphrase: str | bytes | None = None
    ) -> Path:
        """Re-encrypt the whole vault under a new key file; the old key stops working."""
        from gantry.vault._vault import rotate

        path, self._vault_key = rotate(
            self._store, self._vault_key, new_key_path, passphrase=passphrase
        )
        return path

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


def _load_config(config: Any) -> Any:
    """Accept a Config, a mapping, a YAML path, or None (the defaults)."""
    from gantry.config import Config, load_config

    if isinstance(config, Config):
        return config
    return load_config(config)


# One writing Session per store in this process: re-running ``s = Session(path)`` in a
# notebook replaces the earlier handle instead of failing on its own lock.
_WRITERS: weakref.WeakValueDictionary[str, Session] = weakref.WeakValueDictionary()


def _writer_key(catalog: Path) -> str:
    return str(catalog.resolve())


def _replace_earlier_writer(session: Session) -> None:
    earlier = _WRITERS.get(_writer_key(session.path))
    if earlier is None or earlier is session:
        return
    pending = earlier._model_of.pending if earlier._model_of is not None else 0
    if pending:
        warnings.warn(
            f"an earlier Session on `{session.path}` had {pending} unsaved edits; "
            "they are discarded (call save() before opening the session again)",
            stacklevel=4,
        )
    earlier._release("was replaced by a newer Session on the same path; use that one")
