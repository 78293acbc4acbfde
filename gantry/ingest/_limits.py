"""Limits that keep one hostile file from sinking an ingest.

A file over a limit is not indexed: it becomes a ``skipped`` row with the
reason ``over_limit`` and a detail naming the limit (``max_depth``,
``max_element_bytes``, ``max_inflated_bytes`` or ``max_frames``), and the
run goes on.  The defaults are far above what real scanners write and far
below what exhausts a worker's memory.

Examples
--------
>>> limits = IngestLimits.of({"max_depth": 16})
>>> limits.max_depth, limits.max_frames
(16, 100000)
>>> IngestLimits.of({"max_dept": 16})
Traceback (most recent call last):
...
gantry.errors.ConfigError: `limits.max_dept` must be one of 'max_depth', 'max_element_bytes', 'max_frames', 'max_inflated_bytes', got 'max_dept'
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, Final

from gantry.errors import ConfigError

__all__ = ["OVER_LIMIT", "IngestLimits"]

#: The ``skipped.reason`` of a file over one of the limits.
OVER_LIMIT: Final = "over_limit"

#: The deepest nesting the ``elements.depth`` column (int16) and the walker allow.
_DEPTH_CEILING: Final = 250


@dataclasses.dataclass(frozen=True)
class IngestLimits:
    """Per-file limits of ingest; a file over one is skipped with reason ``over_limit``.

    Attributes
    ----------
    max_depth : int, default 64
        Deepest sequence nesting (an item of a top-level sequence is depth 1).
        At most 250 (the readers recurse once per level).
    max_element_bytes : int, default 256 MiB
        Largest value length of one element other than pixel data (pixel data
        is never read at ingest).
    max_inflated_bytes : int, default 256 MiB
        Largest dataset a deflated file (transfer syntax 1.2.840.10008.1.2.1.99)
        may inflate to: the guard against decompression bombs.
    max_frames : int, default 100,000
        Largest Number of Frames.
    """

    max_depth: int = 64
    max_element_bytes: int = 256 << 20
    max_inflated_bytes: int = 256 << 20
    max_frames: int = 100_000

    def __post_init__(self) -> None:
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"limits.{field.name}", expected="a positive integer", got=value)
        if self.max_depth > _DEPTH_CEILING:
            raise ConfigError(
                "limits.max_depth", expected=f"at most {_DEPTH_CEILING}", got=self.max_depth
            )

    @classmethod
    def of(cls, value: IngestLimits | Mapping[str, Any] | None) -> IngestLimits:
        """Accept limits, a mapping of some of their names, or None (the defaults)."""
        if value is None:
            return cls()
        if isinstance(value, IngestLimits):
            return value
        if not isinstance(value, Mapping):
            raise ConfigError("limits", expected="a mapping or IngestLimits", got=value)
        names = sorted(f.name for f in dataclasses.fields(cls))
        for key in value:
            if key not in names:
                raise ConfigError(
                    f"limits.{key}", expected="one of " + ", ".join(map(repr, names)), got=key
                )
        return cls(**dict(value))

    def detail(self, name: str, found: int | None = None) -> str:
        """The PHI-free ``skipped.detail`` for a file over the limit `name`."""
        text = f"over the `{name}` limit of {getattr(self, name)}"
        if found is not None:
            text += f" (found {found})"
        return text + "; raise the limit with `limits=` if the file is genuine"
