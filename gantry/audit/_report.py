"""Run the audit over a store: :func:`audit` → :class:`AuditReport`, :func:`unresolved`."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, Final, Literal

import polars as pl

from gantry.audit._machines import match_machines
from gantry.audit._rules import (
    FINDINGS_SCHEMA,
    RULES,
    AuditContext,
    burned_in_findings,
    element_findings,
)
from gantry.errors import AuditError

if TYPE_CHECKING:
    from gantry.store import Store

__all__ = [
    "UNRESOLVED_SCHEMA",
    "AuditReport",
    "audit",
    "findings_plan",
    "save_findings",
    "unresolved",
]

#: Columns of :func:`unresolved`.
UNRESOLVED_SCHEMA: Final = pl.Schema({"file_id": pl.Int64, "rule": pl.String, "reason": pl.String})

_SUMMARY_KEYS: Final = ("rule", "tag", "modality", "device", "severity", "keyword")


def findings_plan(store: Store, context: AuditContext) -> pl.LazyFrame:
    """The lazy query of every finding (nothing is read until it is collected).

    Parameters
    ----------
    store : Store
        The session store (its ``elements`` and ``instances`` tables).
    context : AuditContext
        The resolved configuration.
    """
    instances = store.scan("instances")
    elements = store.scan("elements")
    matched = match_machines(instances, context.machines)
    return pl.concat(
        [
            element_findings(elements, instances, context),
            burned_in_findings(instances, matched, context),
        ],
        how="vertical",
    ).select([pl.col(c).cast(t) for c, t in FINDINGS_SCHEMA.items()])


def _collect(lf: pl.LazyFrame) -> pl.DataFrame:
    try:
        return lf.collect(engine="streaming")
    except pl.exceptions.PolarsError as exc:
        raise AuditError(f"the audit query failed: {type(exc).__name__}") from exc


class AuditReport:
    """The findings of one audit run, with summaries.

    Build it with :meth:`gantry.Session.audit` (or :func:`audit`).  The findings
    frame has the columns of ``docs/internals.md`` plus ``resolved``: ``file_id,
    path, tag, keyword, rule, severity, message, modality, device, resolved``.
    Messages name the rule and never quote a value.

    Examples
    --------
    >>> import polars as pl
    >>> from gantry.audit._rules import FINDINGS_SCHEMA
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
    """

    def __init__(
        self, findings: pl.DataFrame, *, context: AuditContext | None = None, seconds: float = 0.0
    ) -> None:
        self._findings = findings
        self._context = context
        self.seconds = seconds
        """Wall time of the audit query."""

    def __len__(self) -> int:
        return self._findings.height

    def __repr__(self) -> str:
        return f"AuditReport(findings={len(self)}, unresolved_instances={self.unresolved().height})"

    def to_polars(self) -> pl.DataFrame:
        """The findings, one row per (element, rule); enum columns as Polars ``Enum``."""
        return self._findings

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
            self._findings.lazy()
            .group_by([pl.col(k).cast(pl.String) for k in keys])
            .agg(
                pl.len().alias("findings"),
                pl.col("file_id").n_unique().alias("instances"),
                pl.col("resolved").sum().cast(pl.UInt32).alias("resolved"),
                (~pl.col("resolved")).sum().cast(pl.UInt32).alias("unresolved"),
            )
            .sort(["findings", *keys], descending=[True, *[False] * len(keys)])
            .collect()
        )

    def unresolved(self) -> pl.DataFrame:
        """Instances that must not be exported as clean (``safe=True``): ``file_id, rule, reason``.

        A high-severity finding the configuration does not resolve makes its
        instance unresolved; one row per (instance, rule), the reason naming the
        keywords concerned (never a value).
        """
        return _unresolved_of(self._findings.lazy()).collect()


def _unresolved_of(findings: pl.LazyFrame) -> pl.LazyFrame:
    keyword = pl.coalesce(pl.col("keyword").cast(pl.String), pl.col("tag").cast(pl.String))
    return (
        findings.filter(~pl.col("resolved") & (pl.col("severity") == "high"))
        .group_by("file_id", pl.col("rule").cast(pl.String))
        .agg(
            pl.col("message").cast(pl.String).first().alias("_message"),
            keyword.unique().sort().head(5).str.join(", ").alias("_keywords"),
            keyword.n_unique().alias("_n"),
        )
        .select(
            "file_id",
            "rule",
            pl.format(
                "{}{}: {}",
                pl.col("_keywords"),
                pl.when(pl.col("_n") > 5).then(pl.lit(", …")).otherwise(pl.lit("")),
                pl.col("_message"),
            ).alias("reason"),
        )
        .sort("file_id", "rule")
    )


def audit(store: Store, config: Any = None) -> AuditReport:
    """Audit every indexed instance against ``config``.

    Parameters
    ----------
    store : Store
        The session store.
    config : Config, path, mapping or None
        The configuration (None: the default one).

    Returns
    -------
    AuditReport
    """
    context = config if isinstance(config, AuditContext) else AuditContext.from_config(config)
    started = time.perf_counter()
    findings = _collect(findings_plan(store, context))
    return AuditReport(findings, context=context, seconds=time.perf_counter() - started)


def unresolved(store: Store, config: Any = None) -> pl.DataFrame:
    """Instances that must not be exported as clean under ``safe=True``.

    The export stage calls this before writing anything: every ``file_id`` in
    the result is reported, not exported as clean.

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
        zone, a person name or identifying text the profile keeps, a UID that
        embeds the patient's identity and is kept, a private element without
        a creator that is kept, …).
    """
    context = config if isinstance(config, AuditContext) else AuditContext.from_config(config)
    lf = findings_plan(store, context)
    return _collect(_unresolved_of(lf)).cast(UNRESOLVED_SCHEMA)


def save_findings(store: Store, report: AuditReport) -> int:
    """Persist the report's findings as the ``findings`` table (one Parquet write).

    Returns the number of rows written.
    """
    findings = report.to_polars()
    with store.run("audit", {"rules": list(RULES)}) as counts:
        store.write_table("findings", findings)
        counts.update(
            {
                "findings": findings.height,
                "instances": findings["file_id"].n_unique(),
                "unresolved_instances": report.unresolved()["file_id"].n_unique(),
                "seconds": round(report.seconds, 3),
            }
        )
    return findings.height
