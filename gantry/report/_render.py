"""Render the HTML reports from the package's Jinja2 templates (autoescaped)."""

from __future__ import annotations

import functools
from datetime import UTC, datetime
from typing import Any, Final, Protocol

import jinja2
import polars as pl

from gantry._version import __version__
from gantry.report._charts import bar_chart, pass_fail_bar

__all__ = ["CompliancePage", "render", "render_compliance"]

MAX_ROWS: Final = 500
"""Rows shown per HTML table; the JSON and CSV outputs hold everything."""


@functools.cache
def _env() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.PackageLoader("gantry.report", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def render(template: str, **context: Any) -> str:
    """Render ``templates/<template>`` with ``context`` (plus version and time)."""
    context.setdefault("gantry_version", __version__)
    context.setdefault("generated_at", datetime.now(UTC).isoformat(timespec="seconds"))
    return _env().get_template(template).render(**context)


class CompliancePage(Protocol):
    """What :func:`render_compliance` reads of a compliance report.

    :class:`gantry.report._compliance.ComplianceReport` is one; it calls
    :func:`render_compliance` on itself, so this module names the shape rather
    than importing the class. ``compliance.html.j2`` reads the report's other
    fields (``verdict``, ``profile``, ``settings``…) by name.
    """

    @property
    def summary(self) -> dict[str, int]: ...
    @property
    def rules(self) -> pl.DataFrame: ...
    @property
    def files(self) -> pl.DataFrame: ...
    @property
    def problems(self) -> pl.DataFrame: ...
    @property
    def excluded(self) -> pl.DataFrame: ...
    @property
    def codecs(self) -> pl.DataFrame: ...
    @property
    def leaks(self) -> pl.DataFrame: ...
    @property
    def generated_at(self) -> str: ...


def _rows(frame: pl.DataFrame, limit: int = MAX_ROWS) -> tuple[list[dict[str, Any]], int]:
    return frame.head(limit).to_dicts(), max(0, frame.height - limit)


def render_compliance(report: CompliancePage) -> str:
    """``compliance.html`` for ``report``."""
    s = report.summary
    failing = report.rules.filter(pl.col("files_failed") > 0)
    charts = {
        "files": pass_fail_bar(s["files_passed"], s["files_failed"] + s["files_missing"]),
        "rules": bar_chart(
            failing["title"].to_list(),
            failing["files_failed"].to_list(),
            title="Files failing",
            color="#c62828",
        )
        if failing.height
        else "",
        "codecs": bar_chart(
            [n or u for u, n in report.codecs.select("transfer_syntax", "name").iter_rows()],
            report.codecs["files"].to_list(),
            title="Files per transfer syntax",
        )
        if report.codecs.height
        else "",
        "excluded": "",
    }
    if report.excluded.height:
        by = (
            report.excluded.group_by("status", "reason")
            .len("n")
            .sort("n", descending=True)
            .head(20)
        )
        charts["excluded"] = bar_chart(
            [f"{st}: {re}" for st, re in by.select("status", "reason").iter_rows()],
            by["n"].to_list(),
            title="Instances not exported",
            color="#ef6c00",
        )
    leak_rules = report.leaks["rule"].unique().to_list()
    leak_summary = (
        report.leaks.group_by("rule", "keyword", "tag")
        .agg(pl.col("output_path").n_unique().alias("files"), pl.len().alias("findings"))
        .sort(["files", "rule", "keyword"], descending=[True, False, False])
    )
    leaks, leaks_more = _rows(report.leaks)
    others, others_more = _rows(report.problems.filter(~pl.col("rule").is_in(leak_rules)))
    excluded, excluded_more = _rows(
        report.excluded.group_by("status", "reason", "Modality", "device")
        .agg(pl.len().alias("instances"), pl.col("file_id").min().alias("example"))
        .sort(
            "instances",
            "status",
            "reason",
            "Modality",
            "device",
            descending=[True, False, False, False, False],
            nulls_last=True,
        )  # fmt: skip
    )
    files, files_more = _rows(
        report.files.sort(
            pl.col("status").replace_strict({"fail": 0, "missing": 1, "pass": 2}, default=3),
            "output_path",
        )
    )
    return render(
        "compliance.html.j2",
        r=report,
        s=s,
        rules=report.rules.to_dicts(),
        charts=charts,
        leaks=leaks,
        leaks_more=leaks_more,
        leak_summary=leak_summary.head(MAX_ROWS).to_dicts(),
        others=others,
        others_more=others_more,
        excluded=excluded,
        excluded_more=excluded_more,
        codecs=report.codecs.to_dicts(),
        files=files,
        files_more=files_more,
        generated_at=report.generated_at,
    )
