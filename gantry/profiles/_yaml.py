"""Strict, cached YAML reading shared by profiles and config.

* ``safe_load`` semantics (no Python objects), with libyaml when available;
* a key repeated in one mapping is an error (PyYAML silently keeps the last);
* syntax errors become :class:`~gantry.errors.ConfigError` naming the line;
* files are parsed once per (path, mtime, size): callers must treat the
  returned objects as read-only.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import yaml

from gantry.errors import ConfigError

__all__ = ["load_yaml_text", "read_text_file", "read_yaml"]

_Base: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _DuplicateKey(Exception):
    def __init__(self, key: object, line: int) -> None:
        super().__init__(key, line)
        self.key = key
        self.line = line


class _StrictLoader(_Base):  # type: ignore[misc]
    """Safe loader that refuses a key repeated within one mapping."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            try:
                duplicate = key in seen
            except TypeError:  # unhashable key; the base class reports it
                break
            if duplicate:
                raise _DuplicateKey(key, key_node.start_mark.line + 1)
            seen.add(key)
        return super().construct_mapping(node, deep=deep)  # type: ignore[no-any-return]


def load_yaml_text(text: str, *, source: str | Path | None = None) -> Any:
    """Parse YAML text strictly.

    Raises
    ------
    ConfigError
        On a syntax error (the key names the line and column) or a repeated key.

    Examples
    --------
    >>> load_yaml_text("a: 1\\nb: [x, y]\\n")
    {'a': 1, 'b': ['x', 'y']}
    >>> load_yaml_text("a: 1\\na: 2\\n")
    Traceback (most recent call last):
    ...
    gantry.errors.ConfigError: `line 2` must be a key not repeated in its mapping, got 'a'
    """
    try:
        return yaml.load(text, Loader=_StrictLoader)  # noqa: S506 - a SafeLoader subclass
    except _DuplicateKey as exc:
        raise ConfigError(
            f"line {exc.line}",
            expected="a key not repeated in its mapping",
            got=exc.key,
            source=source,
        ) from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "document"
        problem = exc.problem or exc.context or "syntax error"
        raise ConfigError(
            where,
            expected="valid YAML",
            got=problem,
            hint=exc.context if exc.problem and exc.context else None,
            source=source,
        ) from None
    except yaml.YAMLError as exc:
        raise ConfigError("document", expected="valid YAML", got=str(exc), source=source) from None


def read_text_file(path: str | Path) -> str:
    """Read a config or profile file as UTF-8 text.

    Raises
    ------
    ConfigError
        The file is binary or not UTF-8 (the key names the byte offset).
    FileNotFoundError
        If the file does not exist.
    """
    data = Path(path).read_bytes()
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"byte {exc.start}",
            expected="UTF-8 text (a YAML file)",
            got="binary or non-UTF-8 data",
            hint="save the file as UTF-8",
            source=path,
        ) from None
    if "\x00" in text:
        raise ConfigError(
            f"byte {data.index(0)}",
            expected="UTF-8 text (a YAML file)",
            got="binary data (a NUL byte)",
            source=path,
        )
    return text


@functools.lru_cache(maxsize=64)
def _read_cached(path: str, mtime_ns: int, size: int) -> Any:
    return load_yaml_text(read_text_file(path), source=path)


def read_yaml(path: str | Path) -> Any:
    """Parse a YAML file, reusing the parsed object while the file is unchanged.

    Raises
    ------
    FileNotFoundError
        If the file does not exist.
    ConfigError
        On a YAML syntax error or a repeated key.
    """
    p = Path(path).resolve()
    st = p.stat()
    return _read_cached(str(p), st.st_mtime_ns, st.st_size)
