"""Plugins: audit rules, plan actions, pixel detectors and exporters from other packages.

A package extends Gantry by declaring entry points in one of four groups
(:data:`GROUPS`); see ``docs/plugins.md``.  Discovery reads metadata only;
a plugin is imported the first time its kind is needed, and a broken one
raises :class:`~gantry.errors.PluginError` naming it.

Examples
--------
>>> from gantry.plugins import GROUPS, PluginKind
>>> GROUPS[PluginKind.AUDIT_RULE]
'gantry.audit_rules'
"""

from __future__ import annotations

from gantry.plugins._kinds import (
    GROUPS,
    AuditRulePlugin,
    Exporter,
    PixelDetector,
    PlanActionPlugin,
    PluginKind,
)
from gantry.plugins._registry import (
    Plugin,
    discover,
    load_plugin,
    load_plugins,
    plugins_table,
    refresh,
)

__all__ = [
    "GROUPS",
    "AuditRulePlugin",
    "Exporter",
    "PixelDetector",
    "PlanActionPlugin",
    "Plugin",
    "PluginKind",
    "discover",
    "load_plugin",
    "load_plugins",
    "plugins_table",
    "refresh",
]
