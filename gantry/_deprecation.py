"""Deprecation policy: a public name warns for one minor version, then goes.

A name deprecated in ``0.N`` keeps working in every ``0.N.x`` release and
emits :class:`GantryDeprecationWarning` naming its replacement; it is removed
in ``0.(N+1).0`` (from 1.0 on: deprecated in ``X.N``, removed in ``X.(N+1)``).
Every use of :func:`deprecated` is recorded in :data:`DEPRECATIONS`, and a test
fails when the running version has reached a recorded removal version, so a
deprecated name cannot outstay its announced release. Each deprecation is also
listed under "Deprecated" in ``CHANGELOG.md``.

Examples
--------
>>> import warnings
>>> @deprecated(since="0.1", instead="new_add")
... def old_add(a: int, b: int) -> int:
...     return a + b
>>> with warnings.catch_warnings(record=True) as caught:
...     warnings.simplefilter("always")
...     old_add(1, 2)
3
>>> print(caught[0].message)
`old_add` is deprecated since 0.1 and will be removed in 0.2; use `new_add` instead
"""

from __future__ import annotations

import functools
import re
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import ParamSpec, TypeVar

P = ParamSpec("P")
R = TypeVar("R")

__all__ = [
    "DEPRECATIONS",
    "Deprecation",
    "GantryDeprecationWarning",
    "deprecated",
    "removal_version",
    "warn_deprecated",
]


class GantryDeprecationWarning(DeprecationWarning):
    """A Gantry name that still works but goes in the next minor version.

    A subclass of :class:`DeprecationWarning`, so
    ``warnings.simplefilter("error", GantryDeprecationWarning)`` (or pytest's
    ``-W error::gantry._deprecation.GantryDeprecationWarning``) finds every use
    in a code base before an upgrade.
    """


@dataclass(frozen=True)
class Deprecation:
    """One announced deprecation: what, since which version, what to use, where."""

    name: str
    since: str
    removed_in: str
    instead: str
    module: str = ""

    def message(self) -> str:
        """The warning text (no values, only names and versions)."""
        return (
            f"`{self.name}` is deprecated since {self.since} and will be removed in "
            f"{self.removed_in}; use `{self.instead}` instead"
        )


DEPRECATIONS: list[Deprecation] = []
"""Every deprecation declared with :func:`deprecated` in the imported modules."""

_VERSION = re.compile(r"(\d+)\.(\d+)")


def removal_version(since: str) -> str:
    """The release that removes a name deprecated in ``since``: the next minor.

    Examples
    --------
    >>> removal_version("0.1")
    '0.2'
    >>> removal_version("1.4.2")
    '1.5'
    >>> removal_version("one")
    Traceback (most recent call last):
    ...
    ValueError: `since` must be a version like '0.2', got 'one'
    """
    match = _VERSION.match(since)
    if match is None:
        raise ValueError(f"`since` must be a version like '0.2', got {since!r}")
    major, minor = int(match.group(1)), int(match.group(2))
    return f"{major}.{minor + 1}"


def warn_deprecated(name: str, *, since: str, instead: str, stacklevel: int = 2) -> None:
    """Emit the deprecation warning for ``name`` (for keywords, values, modules).

    Use :func:`deprecated` for whole functions and classes; call this where
    only part of an API goes (an old keyword, an accepted spelling).

    Examples
    --------
    >>> import warnings
    >>> with warnings.catch_warnings(record=True) as caught:
    ...     warnings.simplefilter("always")
    ...     warn_deprecated("export(fast=...)", since="0.1", instead="export(engine=...)")
    >>> caught[0].category.__name__
    'GantryDeprecationWarning'
    """
    note = Deprecation(name, since, removal_version(since), instead)
    warnings.warn(note.message(), GantryDeprecationWarning, stacklevel=stacklevel + 1)


def deprecated(*, since: str, instead: str) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Mark a function (or class) deprecated: it warns on every call, then works as before.

    The deprecation is recorded in :data:`DEPRECATIONS` when the module that
    declares it is imported.
    """

    def wrap(func: Callable[P, R]) -> Callable[P, R]:
        name = func.__qualname__
        note = Deprecation(name, since, removal_version(since), instead, func.__module__)
        DEPRECATIONS.append(note)

        @functools.wraps(func)
        def inner(*args: P.args, **kwargs: P.kwargs) -> R:
            warnings.warn(note.message(), GantryDeprecationWarning, stacklevel=2)
            return func(*args, **kwargs)

        inner.__doc__ = f"Deprecated since {since}: use ``{instead}``.\n\n{func.__doc__ or ''}"
        return inner

    return wrap
