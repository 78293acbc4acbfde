"""Audit rules from plugins (:class:`gantry.plugins.AuditRulePlugin`) as findings queries.

Each plugin rule is one streaming query over the elements, with the same
effective actions and per-instance columns as the built-in rules; the
findings schema is widened so the ``rule`` and ``message`` Enums also hold
the plugins' values (:func:`findings_schema`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Final

import polars as pl

from gantry.audit._rules import (
    FINDINGS_SCHEMA,
    MESSAGES,
    RULES,
    AuditContext,
    _prepare,
    instance_info,
)
from gantry.errors import PluginError

if TYPE_CHECKING:
    from gantry.plugins import AuditRulePlugin

__all__ = ["findings_schema", "plugin_findings", "plugin_rules"]

_KEPT: Final = ("K", "C")


def plugin_rules() -> list[AuditRulePlugin]:
    """The installed audit-rule plugins, loaded and checked (a broken one raises PluginError)."""
    from gantry.plugins import PluginKind, load_plugins

    rules: list[AuditRulePlugin] = load_plugins(PluginKind.AUDIT_RULE)
    return rules


def findings_schema(rules: Sequence[AuditRulePlugin] = ()) -> pl.Schema:
    """:data:`~gantry.audit.FINDINGS_SCHEMA`, its ``rule`` and ``message`` Enums widened for ``rules``.

    Examples
    --------
    >>> import polars as pl
    >>> from gantry.plugins import AuditRulePlugin
    >>> r = AuditRulePlugin("site-x", "low", "x", "x present", pl.lit(True))
    >>> findings_schema([r])["rule"].categories.to_list()[-1]
    'site-x'
    """
    if not rules:
        return FINDINGS_SCHEMA
    ids = [*RULES, *(r.id for r in rules)]
    messages = list(dict.fromkeys([*MESSAGES.values(), *(r.message for r in rules)]))
    return pl.Schema({**FINDINGS_SCHEMA, "rule": pl.Enum(ids), "message": pl.Enum(messages)})


def _error(rule: AuditRulePlugin, reason: str) -> PluginError:
    """A PluginError naming the entry point that gave ``rule`` (or the rule id)."""
    from gantry.plugins import GROUPS, PluginKind, discover, load_plugin

    kind = PluginKind.AUDIT_RULE
    for plugin in discover(kind):
        if load_plugin(kind, plugin.name) is rule:
            return PluginError(plugin.name, GROUPS[kind], reason, distribution=plugin.distribution)
    return PluginError(rule.id, GROUPS[kind], reason)


def plugin_findings(
    elements: pl.LazyFrame,
    instances: pl.LazyFrame,
    ctx: AuditContext,
    rules: Sequence[AuditRulePlugin],
    *,
    kept_only: bool = False,
) -> list[pl.LazyFrame]:
    """One findings query per rule (schema :func:`findings_schema` of ``rules``).

    With ``kept_only``, only high rules over kept elements (what can block an export).
    An expression that does not fit the element columns raises ``PluginError``
    before anything is read.
    """
    schema = findings_schema(rules)
    info = instance_info(instances).select(
        "file_id", pl.col("modality").cast(pl.Categorical), pl.col("device").cast(pl.Categorical)
    )
    base = _prepare(elements, ctx, None).join(info, on="file_id", how="left")
    if kept_only:
        base = base.filter(pl.col("action").is_in(_KEPT))
    queries = []
    for rule in rules:
        if kept_only and rule.severity != "high":
            continue
        expr = rule.expression()
        try:
            dtype = base.select(expr.alias("_where")).collect_schema()["_where"]
        except pl.exceptions.PolarsError as exc:
            raise _error(rule, f"`where` is not valid ({type(exc).__name__}: {exc})") from exc
        if dtype != pl.Boolean:
            raise _error(rule, f"`where` must be a Boolean expression, got {dtype}")
        queries.append(
            base.filter(expr.fill_null(False))
            .select(
                "file_id",
                "path",
                "tag",
                "keyword",
                pl.lit(rule.id).alias("rule"),
                pl.lit(rule.severity).alias("severity"),
                pl.lit(rule.message).alias("message"),
                "modality",
                "device",
                (~pl.col("action").is_in(_KEPT)).alias("resolved"),
            )
            .cast(schema)
        )
    return queries
