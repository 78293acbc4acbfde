"""Export through an exporter plugin: ``s.export("plugin://<name>/<destination>")``.

The selected instances are exported and verified into a staging folder
beside the catalog (``<stem>.outbox/plugin-<name>/``, resumable like any
export), then the plugin's ``send(folder, destination)`` delivers them; the
send is recorded in ``runs`` (kind ``send``, the plugin's name and count).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Final

from gantry.errors import ConfigError, PluginError
from gantry.export._runner import ExportResult

__all__ = ["PluginExportResult", "export_to_plugin", "is_plugin_url", "parse_plugin_url"]

PLUGIN_SCHEME: Final = "plugin://"


@dataclasses.dataclass
class PluginExportResult(ExportResult):
    """An :class:`~gantry.export.ExportResult` delivered by an exporter plugin.

    The export's own counts are those of the staging folder (``dest``);
    ``sent`` is what the plugin's ``send`` returned.
    """

    plugin: str = ""
    destination: str = ""
    sent: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            **super().as_dict(),
            "plugin": self.plugin,
            "destination": self.destination,
            "sent": self.sent,
        }


def is_plugin_url(dest: object) -> bool:
    """True for ``plugin://<name>/<destination>``.

    Examples
    --------
    >>> is_plugin_url("plugin://s3/bucket/prefix"), is_plugin_url("out")
    (True, False)
    """
    return isinstance(dest, str) and dest.startswith(PLUGIN_SCHEME)


def parse_plugin_url(url: str) -> tuple[str, str]:
    """``(exporter name, destination)`` of a ``plugin://`` destination.

    Examples
    --------
    >>> parse_plugin_url("plugin://s3/bucket/prefix")
    ('s3', 'bucket/prefix')
    >>> parse_plugin_url("plugin:///x")
    Traceback (most recent call last):
    ...
    gantry.errors.ConfigError: `dest` must be plugin://<exporter name>/<destination>, got 'plugin:///x'
    """
    name, _, destination = url.removeprefix(PLUGIN_SCHEME).partition("/")
    if not name.strip():
        raise ConfigError("dest", expected="plugin://<exporter name>/<destination>", got=url)
    return name.strip(), destination


def export_to_plugin(
    session: Any, url: str, *, verify: bool = True, **export_options: Any
) -> PluginExportResult:
    """Stage a verified export, then hand the folder to the exporter plugin named in ``url``.

    Raises
    ------
    PluginError
        The exporter cannot be loaded (before anything is written), or its
        ``send`` raised (the staged files stay; run the export again).
    """
    from gantry.plugins import GROUPS, PluginKind, load_plugin

    name, destination = parse_plugin_url(url)
    if not verify:
        raise ConfigError(
            "verify",
            expected="True for a plugin destination (only verified files are sent)",
            got=verify,
        )
    exporter = load_plugin(PluginKind.EXPORTER, name)
    data_dir: Path = session.store.layout.data_dir
    staging = (
        data_dir.with_name(data_dir.name.removesuffix(".gantry") + ".outbox") / f"plugin-{name}"
    )
    staged = session.export(staging, verify=True, **export_options)
    with session.store.run(
        "send", {"destination": f"{PLUGIN_SCHEME}{name}", "plugin": name}
    ) as counts:
        try:
            sent = int(exporter.send(staged.dest, destination))
        except Exception as exc:  # the plugin's own code
            raise PluginError(
                name, GROUPS[PluginKind.EXPORTER], f"`send` failed ({type(exc).__name__})"
            ) from exc
        counts.update({"sent": sent, "staged": staged.exported + staged.already_done})
    fields = {f.name: getattr(staged, f.name) for f in dataclasses.fields(ExportResult)}
    return PluginExportResult(**fields, plugin=name, destination=destination, sent=sent)
