"""Run the audit over a store: :func:`audit` → :class:`AuditReport`, :func:`unresolved`.

The element rules run one chunk of ``elements`` rows at a time
(:mod:`gantry.audit._chunks`: a batch's row groups, joined with that batch's
instances only), the per-instance rules (burned-in text, OCR) once over the
store (:func:`_query_groups`).  Each chunk's findings go to a Parquet part in a
spill folder (a temporary directory that lives as long as the report); the
report reads them lazily, so a million-instance audit never holds all its
findings in memory unless asked to (:meth:`AuditReport.to_polars`), and
:func:`save_findings` writes them part by part."""

from __future__ import annotations

import itertools
import shutil
import tempfile
import time
import weakref
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Literal

import polars as pl
import pyarrow.parquet as pq

from gantry.audit._burned import burned_in_findings
from gantry.audit._chunks import AUDIT_CHUNK_ROWS, chunk_queries, element_chunks
from gantry.audit._machines import match_machines
from gantry.audit._plugins import findings_schema, plugin_findings, plugin_rules
from gantry.audit._rules import (
    FINDINGS_SCHEMA,
    RULES,
    AuditContext,
    element_findings,
)
from gantry.errors import AuditError

if TYPE_CHECKING:
    from gantry.store import Store

__all__ = [
    "UNRESOLVED_SCHEMA",
    "AuditReport",
    "audit",
    "findings_queries",
    "save_findings",
    "unresolved",
]

#: Columns of :func:`unresolved`.
UNRESOLVED_SCHEMA: Final = pl.Schema({"file_id": pl.Int64, "rule": pl.String, "reason": pl.String})

_SUMMARY_KEYS: Final = ("rule", "tag", "modality", "device", "severity", "keyword")


def findings_queries(
    store: Store, context: AuditContext, *, kept_only: bool = False
) -> list[pl.LazyFrame]:
    """The lazy queries whose union is every finding (nothing is read yet).

    Each has the columns of :data:`~gantry.audit.FINDINGS_SCHEMA`; the queries
    of audit-rule plugins (``docs/plugins.md``) come last, their ``rule`` and
    ``message`` Enums widened to hold the plugins' values.

    Parameters
    ----------
    store : Store
        The session store (its ``elements`` and ``instances`` tables).
    context : AuditContext
        The resolved configuration.
    kept_only : bool
        Only what can be a high, unresolved finding (see :func:`unresolved`).
    """
    rules = plugin_rules()  # a broken plugin fails here, before any query runs
    instances = store.scan("instances")
    elements = store.scan("elements")
    return [
        *element_findings(elements, instances, context, kept_only=kept_only),
        *instance_queries(store, context, kept_only=kept_only),
        *plugin_findings(elements, instances, context, rules, kept_only=kept_only),
    ]


def instance_queries(
    store: Store, context: AuditContext, *, kept_only: bool = False
) -> list[pl.LazyFrame]:
    """The queries of the per-instance rules (burned-in text, OCR), over the whole store."""
    from gantry.audit._ocr import ocr_coverage, ocr_findings

    instances = store.scan("instances")
    matched = match_machines(instances, context.machines, elements=store.scan("elements"))
    coverage = ocr_coverage(store, context.ocr_redact)
    queries = [burned_in_findings(instances, matched, context, coverage)]
    if coverage is not None and not kept_only:  # its findings are all resolved
        queries.append(ocr_findings(store, instances, context))
    return queries


def _query_groups(
    store: Store, context: AuditContext, *, kept_only: bool = False
) -> Iterator[tuple[list[pl.LazyFrame], bool]]:
    """Groups of queries whose union is every finding, each with ``whole``: whether it
    reads whole tables (collect it with the streaming engine, alone).

    The element rules run one chunk of ``elements`` rows at a time
    (:mod:`gantry.audit._chunks`), the per-instance rules over the whole
    store; a store that cannot be cut runs :func:`findings_queries` whole.
    """
    rules = plugin_rules()  # a broken plugin fails here, before any query runs
    chunks = element_chunks(store, AUDIT_CHUNK_ROWS)
    if chunks is None:
        for query in findings_queries(store, context, kept_only=kept_only):
            yield [query], True
        return
    for group in chunk_queries(store, chunks, context, rules, kept_only=kept_only):
        yield group, False
    yield instance_queries(store, context, kept_only=kept_only), True


def _failed(exc: Exception) -> AuditError:
    # the engine's message may quote data: name the error type only
    return AuditError(f"the audit query failed ({type(exc).__name__})")


class AuditReport:
    """The findings of one audit run, with summaries.

    Build it with :meth:`gantry.Session.audit` (or :func:`audit`).  The findings
    have the columns of ``docs/internals.md`` plus ``resolved``: ``file_id,
    path, tag, keyword, rule, severity, message, modality, device, resolved``
    (text columns are Polars ``Categorical`` / ``Enum`` to keep tens of millions
    of rows small).  Messages name the rule and never quote a value.

    Parameters
    ----------
    findings : DataFrame or LazyFrame
        The findings (schema :data:`~gantry.audit.FINDINGS_SCHEMA`).
    seconds : float
        Wall time the audit took.

    Examples
    --------
    >>> import polars as pl
    >>> from gantry.audit import FINDINGS_SCHEMA
    >>> df = pl.DataFrame(
    ...     {"file_id": [1, 1, 2], "path": ["00100010", "7FE00010", "00100010"],
    ...      "tag": ["00100010", "7FE00010", "00100010"],
    ...      "keyword": ["PatientName", "PixelData", "PatientName"],
    ...      "rule": ["person-name", "burned-in", "person-name"],
    ...      "severity": ["high", "high", "high"],
    ...      "message": ["person name value present"] * 3,
    ...      "modality": ["US", "US", "CT"], "device": [None, None, None],
    ...      "resolved": [True, False, True]},
    ... ).cast(FINDINGS_SCHEMA)
    >>> report = AuditReport(df)
    >>> len(report)
    3
    >>> report.summary("rule")
    shape: (2, 5)
    ┌─────────────┬──────────┬───────────┬──────────┬────────────┐
    │ rule        ┆ findings ┆ instances ┆ resolved ┆ unresolved │
    │ ---         ┆ ---      ┆ ---       ┆ ---      ┆ ---        │
    │ str         ┆ u32      ┆ u32       ┆ u32      ┆ u32        │
    ╞═════════════╪══════════╪═══════════╪══════════╪════════════╡
    │ person-name ┆ 2        ┆ 2         ┆ 2        ┆ 0          │
    │ burned-in   ┆ 1        ┆ 1         ┆ 0        ┆ 1          │
    └─────────────┴──────────┴───────────┴──────────┴────────────┘
    >>> report.unresolved()["reason"].to_list()
    ['PixelData: person name value present']
    """

    def __init__(self, findings: pl.DataFrame | pl.LazyFrame, *, seconds: float = 0.0) -> None:
        self._frame = findings if isinstance(findings, pl.DataFrame) else None
        self._lazy = findings.lazy()
        self._rows: int | None = None if self._frame is None else self._frame.height
        self._parts: list[Path] = []
        self.seconds = seconds
        """Wall time of the audit (seconds)."""

    @classmethod
    def _from_parts(
        cls, parts: list[Path], folder: Path, *, seconds: float, schema: pl.Schema = FINDINGS_SCHEMA
    ) -> AuditReport:
        """A report reading spilled Parquet parts; the folder goes with the report."""
        if parts:
            lazy = pl.scan_parquet([str(p) for p in parts], schema=schema)
        else:
            lazy = pl.LazyFrame(schema=schema)
        report = cls(lazy, seconds=seconds)
        report._parts = parts
        report._rows = sum(pq.ParquetFile(p).metadata.num_rows for p in parts)
        weakref.finalize(report, shutil.rmtree, folder, True)
        return report

    def __len__(self) -> int:
        if self._rows is None:
            self._rows = int(self._lazy.select(pl.len()).collect().item())
        return self._rows

    def __repr__(self) -> str:
        return f"AuditReport(findings={len(self)}, seconds={self.seconds:.2f})"

    def lazy(self) -> pl.LazyFrame:
        """The findings as a ``LazyFrame`` (streams from disk for large audits)."""
        return self._lazy

    def to_polars(self) -> pl.DataFrame:
        """The findings, one row per (element, rule), read into memory once."""
        if self._frame is None:
            try:
                self._frame = self._lazy.collect(engine="streaming")
            except pl.exceptions.PolarsError as exc:
                raise _failed(exc) from exc
        return self._frame

    def summary(
        self, by: Literal["rule", "tag", "modality", "device", "severity", "keyword"] = "rule"
    ) -> pl.DataFrame:
        """Counts of findings grouped by one column, largest first.

        Parameters
        ----------
        by : {"rule", "tag", "modality", "device", "severity", "keyword"}
            The grouping column.  ``tag`` also shows the keyword.

        Returns
        -------
        DataFrame
            ``<by>`` (text), ``findings``, ``instances`` (distinct files),
            ``resolved`` and ``unresolved`` (finding counts).
        """
        if by not in _SUMMARY_KEYS:
            raise AuditError(
                f"`by` must be one of {', '.join(repr(k) for k in _SUMMARY_KEYS)}, got {by!r}"
            )
        keys = ["tag", "keyword"] if by == "tag" else [by]
        return (
            self._lazy.group_by(keys)
            .agg(
                pl.len().alias("findings"),
                pl.col("file_id").n_unique().cast(pl.UInt32).alias("instances"),
                pl.col("resolved").sum().cast(pl.UInt32).alias("resolved"),
                (~pl.col("resolved")).sum().cast(pl.UInt32).alias("unresolved"),
            )
            .with_columns(pl.col(keys).cast(pl.String))
            .sort(["findings", *keys], descending=[True, *[False] * len(keys)])
            .collect(engine="streaming")
        )

    def unresolved(self) -> pl.DataFrame:
        """Instances that must not be exported as clean (``safe=True``): ``file_id, rule, reason``.

        A high-severity finding the configuration does not resolve makes its
        instance unresolved; one row per (instance, rule), the reason naming the
        keywords concerned and the rule's message (never a value).
        """
        return _unresolved_of([self._lazy])

    def write_parquet(self, path: str | Path) -> int:
        """Write every finding to one Parquet file; return the rows written."""
        self._lazy.sink_parquet(str(path))
        return len(self)


def _blocked_rows(query: pl.LazyFrame) -> pl.DataFrame:
    """The high, unresolved findings of one query: ``file_id, rule, message, keyword``."""
    keyword = pl.coalesce(pl.col("keyword").cast(pl.String), pl.col("tag").cast(pl.String))
    wanted = query.filter(~pl.col("resolved") & (pl.col("severity") == "high")).select(
        "file_id",
        pl.col("rule").cast(pl.String),
        pl.col("message").cast(pl.String),
        keyword.alias("keyword"),
    )
    try:
        return wanted.collect(engine="streaming")
    except pl.exceptions.PolarsError as exc:
        raise _failed(exc) from exc


def _unresolved_of(queries: Iterable[pl.LazyFrame]) -> pl.DataFrame:
    """Group the high, unresolved findings of each query by (instance, rule).

    The queries are collected one by one as ``queries`` yields them.
    """
    return _grouped([_blocked_rows(q) for q in queries])


def _grouped(blocked: list[pl.DataFrame]) -> pl.DataFrame:
    """One row per (instance, rule) of :func:`_blocked_rows` frames, with its reason."""
    empty = {"file_id": pl.Int64, "rule": pl.String, "message": pl.String, "keyword": pl.String}
    rows = [pl.DataFrame(schema=empty), *blocked]
    return (
        pl.concat(rows)
        .group_by("file_id", "rule")
        .agg(
            pl.col("message").first(),
            pl.col("keyword").unique().sort().head(5).str.join(", ").alias("_keywords"),
            pl.col("keyword").n_unique().alias("_n"),
        )
        .select(
            "file_id",
            "rule",
            pl.format(
                "{}{}: {}",
                pl.col("_keywords"),
                pl.when(pl.col("_n") > 5).then(pl.lit(", …")).otherwise(pl.lit("")),
                pl.col("message"),
            ).alias("reason"),
        )
        .sort("file_id", "rule")
        .cast(UNRESOLVED_SCHEMA)
    )


def _context(config: Any) -> AuditContext:
    return config if isinstance(config, AuditContext) else AuditContext.from_config(config)


def audit(store: Store, config: Any = None) -> AuditReport:
    """Audit every indexed instance against ``config``.

    The queries run one after the other, each streaming its findings to a
    Parquet part, so memory stays bounded whatever the size of the index.

    Parameters
    ----------
    store : Store
        The session store.
    config : Config, path, mapping or None
        The configuration (None: the default one).

    Returns
    -------
    AuditReport

    Examples
    --------
    >>> import tempfile, pathlib
    >>> from gantry import Session
    >>> from gantry.testing import make_instance
    >>> tmp = pathlib.Path(tempfile.mkdtemp())
    >>> _ = make_instance(tmp / "dicom" / "us.dcm", modality="US")
    >>> with Session(tmp / "p.db") as s:
    ...     _ = s.ingest(tmp / "dicom", workers=1, progress=False)
    ...     report = audit(s.store)
    >>> report.summary("rule").select("rule", "findings", "unresolved")
    shape: (8, 3)
    ┌───────────────────────┬──────────┬────────────┐
    │ rule                  ┆ findings ┆ unresolved │
    │ ---                   ┆ ---      ┆ ---        │
    │ str                   ┆ u32      ┆ u32        │
    ╞═══════════════════════╪══════════╪════════════╡
    │ profile-action        ┆ 60       ┆ 0          │
    │ date-time             ┆ 13       ┆ 5          │
    │ private-element       ┆ 7        ┆ 0          │
    │ person-name           ┆ 4        ┆ 0          │
    │ text-patient-identity ┆ 4        ┆ 0          │
    │ burned-in             ┆ 1        ┆ 1          │
    │ kept-identifier       ┆ 1        ┆ 1          │
    │ text-address          ┆ 1        ┆ 0          │
    └───────────────────────┴──────────┴────────────┘
    """
    context = _context(config)
    started = time.perf_counter()
    # outside the store: a writer opening the store empties its tmp/, and the
    # report may outlive the session (findings hold no values, only keys)
    folder = Path(tempfile.mkdtemp(prefix="gantry-audit-"))
    parts: list[Path] = []
    try:
        schema = findings_schema(plugin_rules())
        # a few chunks at once (Polars releases the GIL): both cores stay busy
        # while one chunk is read or its part written
        with ThreadPoolExecutor(max_workers=_IN_FLIGHT) as pool:
            pending: deque[Future[Path | None]] = deque()
            for i, (group, whole) in enumerate(_query_groups(store, context)):
                part = folder / f"part-{i:05d}.parquet"
                pending.append(pool.submit(_spill, group, schema, part, whole))
                del group
                while len(pending) >= _IN_FLIGHT or (pending and whole):
                    done = pending.popleft().result()
                    parts += [done] if done is not None else []
            while pending:
                done = pending.popleft().result()
                parts += [done] if done is not None else []
    except pl.exceptions.PolarsError as exc:
        shutil.rmtree(folder, ignore_errors=True)
        raise _failed(exc) from exc
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    return AuditReport._from_parts(
        parts, folder, seconds=time.perf_counter() - started, schema=schema
    )


_IN_FLIGHT: Final = 2
"""Chunks audited at the same time (threads)."""


def _spill(group: list[pl.LazyFrame], schema: pl.Schema, part: Path, whole: bool) -> Path | None:
    """Collect one group of queries into the Parquet file ``part`` (None: no finding)."""
    engine: Any = "streaming" if whole else "in-memory"
    frames = pl.collect_all([q.cast(schema) for q in group], engine=engine)
    frame = pl.concat(frames) if len(frames) > 1 else frames[0]
    if not frame.height:
        return None
    frame.write_parquet(part)
    return part


def unresolved(store: Store, config: Any = None) -> pl.DataFrame:
    """Instances that must not be exported as clean under ``safe=True``.

    The export stage calls this before writing anything: every ``file_id`` in
    the result is reported, not exported as clean.  Only the elements the
    configuration keeps are examined, by the rules that can find something
    high, so this costs a fraction of a full :func:`audit`; the answer is the
    same as ``audit(store, config).unresolved()``.

    Parameters
    ----------
    store : Store
        The session store.
    config : Config, path, mapping or None
        The configuration the export uses.

    Returns
    -------
    DataFrame
        ``file_id`` (Int64), ``rule`` (String), ``reason`` (String, no PHI):
        one row per (instance, rule) with a high-severity finding the
        configuration does not resolve (burned-in text without a redaction
        zone, a person name or identifying text the configuration keeps, a
        kept UID that embeds the patient's identity, a kept private element
        without a creator, …).

    Examples
    --------
    >>> import tempfile, pathlib
    >>> from gantry import Session
    >>> from gantry.testing import make_instance
    >>> tmp = pathlib.Path(tempfile.mkdtemp())
    >>> _ = make_instance(tmp / "dicom" / "us.dcm", modality="US")
    >>> with Session(tmp / "p.db") as s:
    ...     _ = s.ingest(tmp / "dicom", workers=1, progress=False)
    ...     blocked = unresolved(s.store)
    >>> blocked.select("rule", "reason").rows()  # doctest: +NORMALIZE_WHITESPACE
    [('burned-in', 'PixelData: burned-in text risk (BurnedInAnnotation is YES);
      no redaction zone for the device: excluded from export')]
    """
    groups = _query_groups(store, _context(config), kept_only=True)
    return _unresolved_of(itertools.chain.from_iterable(g for g, _ in groups))


def save_findings(store: Store, report: AuditReport) -> int:
    """Persist the report's findings as the ``findings`` table.

    A report spilled in parts (:func:`audit`) is written one part at a time.

    Also records an ``audit`` row in ``runs``.  Returns the number of rows written.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> from gantry import Session
    >>> from gantry.testing import make_instance
    >>> tmp = pathlib.Path(tempfile.mkdtemp())
    >>> _ = make_instance(tmp / "dicom" / "ct.dcm", modality="CT")
    >>> with Session(tmp / "p.db") as s:
    ...     _ = s.ingest(tmp / "dicom", workers=1, progress=False)
    ...     n = save_findings(s.store, audit(s.store))
    ...     n == s.sql("SELECT count(*) FROM findings").item()
    True
    """
    rules = [*RULES, *(r.id for r in plugin_rules())]
    ids: list[pl.Series] = []
    blocked: list[pl.DataFrame] = []

    def counted(frame: pl.DataFrame) -> pl.DataFrame:
        ids.append(frame.get_column("file_id").unique())
        blocked.append(_blocked_rows(frame.lazy()))
        return frame

    with store.run("audit", {"rules": rules}) as counts:
        if report._parts and report._frame is None:
            # one spilled part at a time: memory bounded by a part, not the report;
            # the counts are taken on the way (no second pass over the findings)
            schema = report.lazy().collect_schema()
            parts = (counted(pl.read_parquet(p, schema=schema)) for p in report._parts)
            store.write_table_parts("findings", parts)
        else:
            store.write_table("findings", counted(report.to_polars()))
        counts.update(
            {
                "findings": len(report),
                "instances": pl.concat(ids).n_unique() if ids else 0,
                "unresolved_instances": _grouped(blocked)["file_id"].n_unique(),
                "seconds": round(report.seconds, 3),
            }
        )
    return len(report)
