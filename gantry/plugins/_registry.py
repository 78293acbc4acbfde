"""Discover plugins through entry points; load and check them on first use.

Discovery reads the installed distributions' ``entry_points.txt`` only (no
plugin code runs) and is cached for the process; a plugin's module is
imported the first time its kind is needed (:func:`load_plugins`).  Whatever
goes wrong while loading (an import error, an object of the wrong type, a
rule id that clashes) raises :class:`~gantry.errors.PluginError` naming the
entry point, its group and its distribution.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from importlib.metadata import EntryPoint, entry_points
from typing import Any

import polars as pl

from gantry.errors import PluginError
from gantry.plugins._kinds import (
    GROUPS,
    AuditRulePlugin,
    Exporter,
    PixelDetector,
    PlanActionPlugin,
    PluginKind,
)

__all__ = ["Plugin", "discover", "load_plugin", "load_plugins", "plugins_table", "refresh"]


@dataclass(frozen=True)
class Plugin:
    """One declared plugin (an entry point), not loaded yet.

    Attributes
    ----------
    kind : PluginKind
    name : str
        The entry point's name.
    target : str
        ``module:attribute`` it points to.
    distribution : str or None
        The distribution that declares it, with ``version``.
    """

    kind: PluginKind
    name: str
    target: str
    distribution: str | None
    version: str | None

    @property
    def group(self) -> str:
        """The entry-point group."""
        return GROUPS[self.kind]


def _plugin(kind: PluginKind, ep: EntryPoint) -> Plugin:
    dist = ep.dist
    return Plugin(
        kind=kind,
        name=ep.name,
        target=ep.value,
        distribution=dist.name if dist is not None else None,
        version=dist.version if dist is not None else None,
    )


@functools.cache
def _entry_points() -> tuple[tuple[Plugin, EntryPoint], ...]:
    found = []
    for kind, group in GROUPS.items():
        for ep in sorted(entry_points(group=group), key=lambda e: e.name):
            found.append((_plugin(kind, ep), ep))
    return tuple(found)


def discover(kind: PluginKind | str | None = None) -> list[Plugin]:
    """The declared plugins (of one kind, or all), by kind then name; nothing is imported.

    Examples
    --------
    >>> [p for p in discover("audit_rule") if p.name == "no-such-plugin"]
    []
    """
    wanted = None if kind is None else PluginKind(kind)
    return [p for p, _ in _entry_points() if wanted is None or p.kind is wanted]


def refresh() -> None:
    """Forget what was discovered and loaded (after installing or removing a plugin)."""
    from gantry.ocr._engine import get_engine

    _entry_points.cache_clear()
    _load.cache_clear()
    get_engine.cache_clear()  # pixel-detector plugins are built and cached there


def _error(plugin: Plugin, reason: str) -> PluginError:
    return PluginError(plugin.name, plugin.group, reason, distribution=plugin.distribution)


def _check(plugin: Plugin, obj: Any) -> Any:
    """``obj`` if it is what ``plugin.kind`` expects (building it if it is a factory)."""
    expected: type[Any] = {
        PluginKind.AUDIT_RULE: AuditRulePlugin,
        PluginKind.PLAN_ACTION: PlanActionPlugin,
        PluginKind.PIXEL_DETECTOR: PixelDetector,
        PluginKind.EXPORTER: Exporter,
    }[plugin.kind]
    if plugin.kind is PluginKind.PIXEL_DETECTOR:
        if not callable(obj) or (isinstance(obj, PixelDetector) and not isinstance(obj, type)):
            return _wrong(plugin, "a factory of PixelDetector", obj)
        return obj  # built with the engine options by gantry.ocr.get_engine
    if isinstance(obj, type) or (not isinstance(obj, expected) and callable(obj)):
        obj = obj()  # a class or a factory (a class would pass a Protocol check itself)
    if not isinstance(obj, expected):
        return _wrong(plugin, expected.__name__, obj)
    if isinstance(obj, AuditRulePlugin):
        from gantry.audit import RULES

        problems = obj.problems(set(RULES))
        try:
            obj.expression()
        except Exception as exc:  # a plugin's own code: any failure is reported as its
            problems.append(f"`where` failed ({type(exc).__name__}: {exc})")
        if problems:
            raise _error(plugin, "; ".join(problems))
    return obj


def _wrong(plugin: Plugin, expected: str, obj: Any) -> Any:
    raise _error(plugin, f"expected {expected}, got {type(obj).__name__}")


@functools.cache
def _load(kind: PluginKind, name: str) -> Any:
    matches = [(p, ep) for p, ep in _entry_points() if p.kind is kind and p.name == name]
    if not matches:
        names = ", ".join(repr(p.name) for p in discover(kind)) or "none installed"
        raise PluginError(name, GROUPS[kind], f"no such plugin ({names})")
    if len(matches) > 1:
        dists = ", ".join(str(p.distribution) for p, _ in matches)
        raise _error(matches[0][0], f"declared by more than one distribution ({dists})")
    plugin, ep = matches[0]
    try:
        obj = ep.load()
    except Exception as exc:  # import errors, and whatever the module raises on import
        raise _error(plugin, f"could not be imported ({type(exc).__name__}: {exc})") from exc
    try:
        return _check(plugin, obj)
    except PluginError:
        raise
    except Exception as exc:  # the factory itself failed
        raise _error(plugin, f"could not be built ({type(exc).__name__}: {exc})") from exc


def load_plugin(kind: PluginKind | str, name: str) -> Any:
    """The plugin ``name`` of ``kind``, imported and checked once per process.

    Raises
    ------
    PluginError
        No such plugin, several distributions declare it, it cannot be
        imported, or it is not what its kind expects.

    Examples
    --------
    >>> load_plugin("exporter", "no-such-exporter")
    Traceback (most recent call last):
    ...
    gantry.errors.PluginError: plugin `no-such-exporter` (gantry.exporters) failed: no such plugin (none installed)
    """
    return _load(PluginKind(kind), name)


def load_plugins(kind: PluginKind | str) -> list[Any]:
    """Every plugin of ``kind``, loaded and checked (the first failure raises).

    Audit rules are also checked against each other: two plugins may not share a rule id.
    """
    kind = PluginKind(kind)
    loaded = [load_plugin(kind, p.name) for p in discover(kind)]
    if kind is PluginKind.AUDIT_RULE:
        seen: dict[str, str] = {}
        for plugin, rule in zip(discover(kind), loaded, strict=True):
            if rule.id in seen:
                raise _error(plugin, f"rule id {rule.id!r} is also the id of `{seen[rule.id]}`")
            seen[rule.id] = plugin.name
    return loaded


_TABLE_COLUMNS = ("kind", "name", "distribution", "version", "target", "status")


def plugins_table() -> pl.DataFrame:
    """Every declared plugin with the outcome of loading it (``gantry plugins``).

    Columns: ``kind, name, distribution, version, target, status`` where
    ``status`` is ``"ok"`` or the error.

    Examples
    --------
    >>> plugins_table().columns
    ['kind', 'name', 'distribution', 'version', 'target', 'status']
    """
    rows = []
    for plugin in discover():
        try:
            load_plugin(plugin.kind, plugin.name)
            status = "ok"
        except PluginError as exc:
            status = f"error: {exc.reason}"
        rows.append(
            (
                plugin.kind.value,
                plugin.name,
                plugin.distribution,
                plugin.version,
                plugin.target,
                status,
            )
        )
    return pl.DataFrame(
        rows,
        schema={c: pl.String for c in _TABLE_COLUMNS},
        orient="row",
    )
