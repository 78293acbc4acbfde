"""Build an installed distribution that declares Gantry plugins (for tests)."""

from __future__ import annotations

import textwrap
from collections.abc import Mapping
from pathlib import Path

__all__ = ["make_plugin_distribution"]


def make_plugin_distribution(
    root: str | Path,
    name: str,
    *,
    modules: Mapping[str, str],
    entry_points: Mapping[str, Mapping[str, str]],
    version: str = "0.1.0",
) -> Path:
    """Write modules and a ``<name>-<version>.dist-info`` into ``root``; return ``root``.

    With ``root`` on ``sys.path`` this is an installed distribution as far as
    :mod:`importlib.metadata` is concerned (what ``pip install`` writes, less
    the record), so Gantry discovers its entry points after
    :func:`gantry.plugins.refresh`.

    Parameters
    ----------
    root : path
        The folder to write into (created).
    name : str
        The distribution's name.
    modules : mapping
        Module name → source (dedented).
    entry_points : mapping
        Group → {entry-point name → ``"module:attribute"``}.

    Examples
    --------
    >>> import tempfile
    >>> from importlib.metadata import distributions
    >>> root = make_plugin_distribution(
    ...     tempfile.mkdtemp(), "demo-plugins", modules={"demo_rules": "X = 1"},
    ...     entry_points={"gantry.exporters": {"demo": "demo_rules:X"}},
    ... )
    >>> [ep.value for d in distributions(path=[str(root)]) for ep in d.entry_points]
    ['demo_rules:X']
    """
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    for module, source in modules.items():
        (root / f"{module}.py").write_text(textwrap.dedent(source))
    info = root / f"{name.replace('-', '_')}-{version}.dist-info"
    info.mkdir(exist_ok=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    lines = []
    for group, points in entry_points.items():
        lines.append(f"[{group}]")
        lines += [f"{ep} = {target}" for ep, target in points.items()]
        lines.append("")
    (info / "entry_points.txt").write_text("\n".join(lines))
    return root
