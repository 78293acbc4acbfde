"""Analytics and reporting: flat tables, compliance and audit reports, export manifests.

- :func:`to_parquet` / :func:`to_polars` — the index flattened per level
  (instance, series, study, patient) with a column-by-column schema;
- :func:`compliance_report` — verify an export folder by reading every file back;
- :func:`audit_table` / :func:`write_audit_report` — what changed in each instance, and why;
- :func:`write_manifest_html` — a readable manifest with before/after thumbnails;
- :func:`bar_chart`, :func:`histogram`, :func:`text_bars` — dependency-free charts.

``docs/reports.md`` describes every output.

Examples
--------
>>> from gantry.report import CHECKS
>>> [c for c in CHECKS][:3]
['readable', 'provenance', 'removed']
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from gantry.report._charts import Chart, bar_chart, histogram, pass_fail_bar, text_bars
from gantry.report._tables import LEVELS, schema_of_level, to_parquet, to_polars

if TYPE_CHECKING:
    from gantry.report._audit_report import ACTION_NAMES, audit_table, write_audit_report
    from gantry.report._checks import CHECKS, Check
    from gantry.report._compliance import REPORT_FILES, ComplianceReport, compliance_report
    from gantry.report._manifest_html import write_manifest_html

# the checks, the audit report and the manifest bring the plan, pydicom's readers and
# jinja2 (about a second on a busy machine): loaded on first use, so that writing a
# flat table (``Session.to_parquet``) does not pay for them
_LAZY = {
    "ACTION_NAMES": "_audit_report",
    "audit_table": "_audit_report",
    "write_audit_report": "_audit_report",
    "CHECKS": "_checks",
    "Check": "_checks",
    "REPORT_FILES": "_compliance",
    "ComplianceReport": "_compliance",
    "compliance_report": "_compliance",
    "write_manifest_html": "_manifest_html",
}

__all__ = [
    "ACTION_NAMES",
    "CHECKS",
    "LEVELS",
    "REPORT_FILES",
    "Chart",
    "Check",
    "ComplianceReport",
    "audit_table",
    "bar_chart",
    "compliance_report",
    "histogram",
    "pass_fail_bar",
    "schema_of_level",
    "text_bars",
    "to_parquet",
    "to_polars",
    "write_audit_report",
    "write_manifest_html",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'gantry.report' has no attribute {name!r}")
    from importlib import import_module

    value = getattr(import_module(f"gantry.report.{module}"), name)
    globals()[name] = value
    return value
