"""Reading and writing config files."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from gantry.config._model import Config
from gantry.config._template import DEFAULT_CONFIG_YAML
from gantry.config._validate import validate
from gantry.errors import ConfigError
from gantry.profiles._spec import available_profiles
from gantry.profiles._yaml import load_yaml_text, read_text_file

__all__ = ["load_config", "write_default_config"]


def load_config(source: str | Path | Mapping[str, Any] | None = None) -> Config:
    """Load and strictly validate a configuration.

    Parameters
    ----------
    source : str, Path, Mapping or None
        A YAML file, already-parsed data, a built-in profile's name (``"basic"``:
        the defaults with that profile), or None for the defaults.  A
        ``privacy_profile`` path in a file is taken relative to that file; a
        file in the working directory named like a built-in profile wins.

    Returns
    -------
    Config

    Raises
    ------
    ConfigError
        For any mistake: unknown key, wrong type, bad tag, unknown action,
        option or profile, bad range, zone, UID root or template, YAML syntax,
        a binary or non-UTF-8 file.  The error names the key path and the file.
    FileNotFoundError
        If the file does not exist.

    Examples
    --------
    >>> cfg = load_config({"privacy_profile": "research", "keep": ["0008,103E"]})
    >>> cfg.keep, cfg.profile().name
    (('0008103E',), 'research')
    >>> load_config("research").privacy_profile
    'research'
    >>> load_config({"privacy_profil": "basic"})
    Traceback (most recent call last):
    ...
    gantry.errors.ConfigError: `privacy_profil` must be a known key, got 'privacy_profil' (did you mean 'privacy_profile'?)
    """
    if source is None:
        return Config()
    if isinstance(source, Mapping):
        return validate(source)
    if not isinstance(source, (str, Path)):
        raise ConfigError("source", expected="a path, a mapping or None", got=type(source).__name__)
    path = Path(source).expanduser()
    if isinstance(source, str) and not path.exists() and source.strip() in available_profiles():
        return validate({"privacy_profile": source.strip()})  # a built-in profile's name
    data = load_yaml_text(read_text_file(path), source=path)
    return validate(data, source=str(path), base_dir=path.resolve().parent)


def write_default_config(path: str | Path, *, overwrite: bool = False) -> Path:
    """Write the commented default configuration to ``path``.

    Every key is present with its default value and explained in comments;
    loading the file gives ``Config()``.

    Raises
    ------
    FileExistsError
        If ``path`` exists and ``overwrite`` is false.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> written = write_default_config(folder / "gantry.yaml")
    >>> load_config(written) == load_config()
    True
    """
    target = Path(path).expanduser()
    if target.exists() and not overwrite:
        raise FileExistsError(f"{target} exists; pass overwrite=True to replace it")
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.tmp")
    tmp.write_text(DEFAULT_CONFIG_YAML, encoding="utf-8")
    tmp.replace(target)
    return target
