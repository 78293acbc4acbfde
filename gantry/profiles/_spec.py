"""Profile files: locating them and validating their contents.

A profile file is one of three kinds, told apart by its top-level key:

* a *table* (``profile:`` and no ``extends:``), such as the generated
  ``basic.yaml``: every row carries the standard's ``code`` and the resolved
  ``action``;
* an *option* (``option:``), such as ``retain-uids.yaml``: the rows one option
  column overrides;
* a *derived* profile (``profile:`` or none, with ``extends:``), such as
  ``research.yaml`` or a user's own file: a parent, options, and rows that
  override or add to the parent.
"""

from __future__ import annotations

import difflib
import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from gantry.errors import ConfigError
from gantry.profiles._codes import Action, ProfileOption, resolve_code
from gantry.profiles._patterns import Pattern, parse_pattern
from gantry.profiles._yaml import read_yaml

__all__ = [
    "ProfileSpec",
    "RowSpec",
    "available_profiles",
    "data_dir",
    "locate",
    "normalise_options",
    "read_option",
    "read_spec",
]

_TOP_KEYS: Final = frozenset(
    {"format", "profile", "option", "title", "description", "edition", "source", "extends"}
    | {"options", "rows", "cid7050", "column"}
)
_ROW_KEYS: Final = frozenset(
    {"pattern", "tag", "name", "keyword", "code", "basic_code", "action", "note"}
)
_OPTION_NAMES: Final = tuple(o.value for o in ProfileOption)


def did_you_mean(word: object, choices: Sequence[str]) -> str | None:
    """A "did you mean …?" hint for ``word`` among ``choices``, or None."""
    if not isinstance(word, str):
        return None
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    if not close:
        close = difflib.get_close_matches(word.lower(), [c.lower() for c in choices], n=1)
        close = [c for c in choices if close and c.lower() == close[0]]
    return f"did you mean {close[0]!r}?" if close else None


def _one_of(choices: Sequence[str]) -> str:
    return "one of " + ", ".join(repr(c) for c in choices)


def _data_candidates(package_dir: Path) -> tuple[Path, Path]:
    """Where the built-in profiles may be, in order: wheel layout, then checkout."""
    return package_dir / "_data", package_dir.parents[1] / "profiles"


@functools.cache
def data_dir() -> Path:
    """The folder holding the built-in profile files.

    In an installed wheel the repository's ``profiles/`` folder is mapped to
    ``gantry/profiles/_data``; in a source or editable checkout it is read in
    place.
    """
    candidates = _data_candidates(Path(__file__).resolve().parent)
    for candidate in candidates:
        if (candidate / "basic.yaml").is_file():
            return candidate
    raise FileNotFoundError(
        "built-in profiles not found in " + " or ".join(str(c) for c in candidates)
    )


def available_profiles() -> list[str]:
    """Names of the built-in profiles (not the option files).

    Examples
    --------
    >>> available_profiles()
    ['basic', 'comprehensive', 'research']
    """
    stems = sorted(p.stem for p in data_dir().glob("*.yaml"))
    return [s for s in stems if s not in _OPTION_NAMES]


def _is_path_like(ref: str | Path) -> bool:
    if isinstance(ref, Path):
        return True
    return "/" in ref or "\\" in ref or ref.endswith((".yaml", ".yml"))


def locate(ref: str | Path, *, base: Path | None = None, key: str = "profile") -> Path:
    """Resolve a profile reference: a built-in name or a path.

    Relative paths are taken relative to ``base`` (the folder of the file that
    refers to them) when given, else to the working directory.
    """
    if _is_path_like(ref):
        path = Path(ref).expanduser()
        if not path.is_absolute() and base is not None:
            path = base / path
        if not path.is_file():
            raise ConfigError(
                key,
                expected="a built-in profile name or an existing profile file",
                got=str(ref),
                hint="no such file",
            )
        return path.resolve()
    name = str(ref).strip()
    if name in _OPTION_NAMES:
        raise ConfigError(
            key,
            expected="a profile, not an option",
            got=name,
            hint=f"use a profile such as 'basic' and list {name!r} under options",
        )
    builtins = available_profiles()
    if name not in builtins:
        raise ConfigError(
            key,
            expected=_one_of(builtins) + " or a path to a .yaml file",
            got=name,
            hint=did_you_mean(name, builtins),
        )
    return data_dir() / f"{name}.yaml"


def normalise_options(
    options: Sequence[str | ProfileOption] | Any, *, key: str = "options", source: Any = None
) -> tuple[ProfileOption, ...]:
    """Options as :class:`ProfileOption` members, in order, unknown names refused."""
    if isinstance(options, (str, ProfileOption)):
        raise ConfigError(
            key,
            expected="a list of option names",
            got=str(options),
            hint=f"write [{options}]",
            source=source,
        )
    try:
        options = list(options)
    except TypeError:
        raise ConfigError(
            key, expected="a list of option names", got=options, source=source
        ) from None
    out = []
    for i, raw in enumerate(options):
        if isinstance(raw, ProfileOption):
            out.append(raw)
            continue
        try:
            out.append(ProfileOption(str(raw).strip().lower().replace("_", "-")))
        except ValueError:
            raise ConfigError(
                f"{key}[{i}]",
                expected=_one_of(_OPTION_NAMES),
                got=raw,
                hint=did_you_mean(raw, _OPTION_NAMES),
                source=source,
            ) from None
    return tuple(out)


@dataclass(frozen=True, slots=True)
class RowSpec:
    """One row of a profile file."""

    pattern: Pattern
    action: Action
    name: str | None = None
    keyword: str | None = None
    code: str | None = None
    basic_code: str | None = None


@dataclass(frozen=True, slots=True)
class ProfileSpec:
    """A validated profile or option file."""

    path: Path
    name: str
    kind: str  # "table" | "derived" | "option"
    extends: str | None
    options: tuple[ProfileOption, ...]
    rows: tuple[RowSpec, ...]
    edition: str | None


def _str_or_none(value: Any, key: str, source: Path) -> str | None:
    if value is None or isinstance(value, str):
        return value
    raise ConfigError(key, expected="a string", got=value, source=source)


def _parse_row(raw: Any, key: str, source: Path) -> RowSpec:
    if not isinstance(raw, Mapping):
        raise ConfigError(
            key,
            expected="a mapping such as {pattern: '(0010,0010)', action: X}",
            got=raw,
            source=source,
        )
    for k in raw:
        if k not in _ROW_KEYS:
            raise ConfigError(
                f"{key}.{k}",
                expected="not present (unknown key)",
                got=k,
                hint=did_you_mean(k, sorted(_ROW_KEYS)) or _one_of(sorted(_ROW_KEYS)),
                source=source,
            )
    if "pattern" in raw and "tag" in raw:
        raise ConfigError(
            f"{key}.tag",
            expected="absent when `pattern` is given",
            got=raw["tag"],
            source=source,
        )
    text = raw.get("pattern", raw.get("tag"))
    pkey = f"{key}.{'pattern' if 'pattern' in raw else 'tag'}"
    if not isinstance(text, str):
        raise ConfigError(
            pkey,
            expected="a quoted tag or pattern such as '(0010,0010)' or '(60xx,3000)'",
            got=text,
            hint="quote tags in YAML" if isinstance(text, int) else None,
            source=source,
        )
    try:
        pattern = parse_pattern(text)
    except ValueError:
        raise ConfigError(
            pkey,
            expected="a tag or pattern such as '(0010,0010)' or '(60xx,3000)'",
            got=text,
            source=source,
        ) from None
    code = _str_or_none(raw.get("code"), f"{key}.code", source)
    basic_code = _str_or_none(raw.get("basic_code"), f"{key}.basic_code", source)
    action_raw = raw.get("action")
    if action_raw is None and code is None:
        raise ConfigError(
            f"{key}.action", expected="an action X, Z, D, K, C or U", got=None, source=source
        )
    try:
        action = resolve_code(str(action_raw if action_raw is not None else code))
    except ValueError:
        bad = action_raw if action_raw is not None else code
        which = "action" if action_raw is not None else "code"
        raise ConfigError(
            f"{key}.{which}",
            expected="an action X, Z, D, K, C or U (or a PS3.15 code)",
            got=bad,
            source=source,
        ) from None
    if code is not None:
        try:
            resolve_code(code)
        except ValueError:
            raise ConfigError(
                f"{key}.code", expected="a PS3.15 action code", got=code, source=source
            ) from None
    name = _str_or_none(raw.get("name"), f"{key}.name", source)
    keyword = _str_or_none(raw.get("keyword"), f"{key}.keyword", source)
    if keyword is not None and pattern.exact:
        from pydicom.datadict import keyword_for_tag

        expected_kw = keyword_for_tag(pattern.value)
        if expected_kw and keyword != expected_kw:
            raise ConfigError(
                f"{key}.keyword",
                expected=f"{expected_kw!r}, the keyword of {pattern.text}",
                got=keyword,
                source=source,
            )
    return RowSpec(pattern, action, name, keyword, code, basic_code)


def _parse(path: Path, data: Any) -> ProfileSpec:
    if not isinstance(data, Mapping):
        raise ConfigError(
            "(document)", expected="a mapping of profile keys", got=type(data).__name__, source=path
        )
    for k in data:
        if k not in _TOP_KEYS:
            raise ConfigError(
                str(k),
                expected="not present (unknown key)",
                got=k,
                hint=did_you_mean(k, sorted(_TOP_KEYS)),
                source=path,
            )
    if "option" in data:
        kind = "option"
        name_raw = data["option"]
        if name_raw not in _OPTION_NAMES:
            raise ConfigError("option", expected=_one_of(_OPTION_NAMES), got=name_raw, source=path)
    else:
        kind = "derived" if data.get("extends") is not None else "table"
        name_raw = data.get("profile", path.stem)
    name = _str_or_none(name_raw, "profile", path) or path.stem
    extends = _str_or_none(data.get("extends"), "extends", path)
    options = normalise_options(data.get("options") or [], key="options", source=path)
    if kind != "derived" and options:
        raise ConfigError(
            "options",
            expected="empty in a file without `extends`",
            got=list(options),
            hint="add `extends: basic`",
            source=path,
        )
    rows_raw = data.get("rows") or []
    if not isinstance(rows_raw, list):
        raise ConfigError(
            "rows", expected="a list of rows", got=type(rows_raw).__name__, source=path
        )
    rows = tuple(_parse_row(r, f"rows[{i}]", path) for i, r in enumerate(rows_raw))
    seen: dict[str, int] = {}
    for i, row in enumerate(rows):
        if row.pattern.text in seen:
            raise ConfigError(
                f"rows[{i}].pattern",
                expected="a pattern not already listed",
                got=row.pattern.text,
                hint=f"also at rows[{seen[row.pattern.text]}]",
                source=path,
            )
        seen[row.pattern.text] = i
    if kind == "table" and not rows:
        raise ConfigError(
            "rows", expected="at least one row (or `extends:` a profile)", got=[], source=path
        )
    edition = data.get("edition")
    return ProfileSpec(
        path=path,
        name=name,
        kind=kind,
        extends=extends,
        options=options,
        rows=rows,
        edition=str(edition) if edition is not None else None,
    )


@functools.lru_cache(maxsize=64)
def _spec_cached(path: str, mtime_ns: int, size: int) -> ProfileSpec:
    return _parse(Path(path), read_yaml(path))


def read_spec(path: Path) -> ProfileSpec:
    """Read and validate a profile or option file (cached while it is unchanged)."""
    p = Path(path).resolve()
    st = p.stat()
    return _spec_cached(str(p), st.st_mtime_ns, st.st_size)


def read_option(option: ProfileOption) -> ProfileSpec:
    """The built-in file of one option."""
    spec = read_spec(data_dir() / f"{option.value}.yaml")
    if spec.kind != "option":  # pragma: no cover - packaging error
        raise ConfigError("option", expected="an option file", got=spec.kind, source=spec.path)
    return spec
