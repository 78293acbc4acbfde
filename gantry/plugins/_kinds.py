"""The four plugin kinds and what each entry point must name.

An entry point names an object of its kind, or a callable taking no argument
that returns one (so a plugin can build its object lazily).  Pixel detectors
are the exception: their entry point names a factory called with the engine
options (``min_confidence``), as Gantry's own OCR engines are.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Protocol, runtime_checkable

if TYPE_CHECKING:
    import numpy as np
    import polars as pl

    from gantry.ocr import TextBox

__all__ = [
    "GROUPS",
    "AuditRulePlugin",
    "Exporter",
    "PixelDetector",
    "PlanActionPlugin",
    "PluginKind",
]


class PluginKind(StrEnum):
    """What a plugin extends; each kind has its own entry-point group (:data:`GROUPS`)."""

    AUDIT_RULE = "audit_rule"
    """An audit rule: a Polars expression over the elements plus metadata."""
    PLAN_ACTION = "plan_action"
    """A plan action: a named transformation of one element's value."""
    PIXEL_DETECTOR = "pixel_detector"
    """A pixel detector: finds text (or other identifying marks) in an image, like OCR."""
    EXPORTER = "exporter"
    """An exporter: sends a folder of de-identified files somewhere."""


#: The entry-point group of each kind.
GROUPS: Final[dict[PluginKind, str]] = {
    PluginKind.AUDIT_RULE: "gantry.audit_rules",
    PluginKind.PLAN_ACTION: "gantry.plan_actions",
    PluginKind.PIXEL_DETECTOR: "gantry.pixel_detectors",
    PluginKind.EXPORTER: "gantry.exporters",
}

_RULE_ID: Final = re.compile(r"^[a-z0-9][a-z0-9-]{1,62}$")


@dataclass(frozen=True)
class AuditRulePlugin:
    """An audit rule contributed by a plugin.

    Its findings join the built-in ones in :meth:`gantry.Session.audit` (one
    row per element where ``where`` is true, ``rule`` = ``id``).  A finding is
    *resolved* when the configuration removes or replaces the element (its
    effective action is not ``K`` or ``C``); unresolved ``high`` findings stop
    the instance from being exported as clean, as built-in ones do.

    Attributes
    ----------
    id : str
        The ``rule`` value of its findings: lower-case letters, digits and
        dashes, distinct from every built-in rule.
    severity : str
        ``"low"``, ``"medium"`` or ``"high"``.
    title : str
        What the rule looks for (shown by ``gantry plugins``).
    message : str
        The ``message`` of its findings; it must never quote a value.
    where : Expr or callable returning an Expr
        A boolean expression over the element columns ``file_id, path, tag,
        depth, keyword, vr, private_creator, value, value_hash``, the
        effective plan letter ``action``, ``has_value``, and the instance's
        ``modality`` and ``device``.

    Examples
    --------
    >>> import polars as pl
    >>> rule = AuditRulePlugin(
    ...     id="site-study-comment", severity="high", title="a study comment carries a value",
    ...     message="study comment present",
    ...     where=(pl.col("keyword") == "StudyComments") & pl.col("has_value"),
    ... )
    >>> rule.expression().meta.root_names()
    ['keyword', 'has_value']
    """

    id: str
    severity: str
    title: str
    message: str
    where: pl.Expr | Callable[[], pl.Expr]

    def expression(self) -> pl.Expr:
        """The rule's boolean expression (calls ``where`` if it is a function)."""
        import polars as pl

        expr = self.where if isinstance(self.where, pl.Expr) else self.where()
        if not isinstance(expr, pl.Expr):
            raise TypeError(f"`where` must give a polars Expr, got {type(expr).__name__}")
        return expr

    def problems(self, builtin: set[str]) -> list[str]:
        """What is wrong with this rule's metadata (empty when it is fine)."""
        out = []
        if not _RULE_ID.match(str(self.id)):
            out.append(f"`id` must be lower-case letters, digits and dashes, got {self.id!r}")
        elif self.id in builtin:
            out.append(f"`id` must differ from the built-in rules, got {self.id!r}")
        if self.severity not in ("low", "medium", "high"):
            out.append(f"`severity` must be one of 'low', 'medium', 'high', got {self.severity!r}")
        if not str(self.message).strip():
            out.append("`message` must not be empty")
        return out


@dataclass(frozen=True)
class PlanActionPlugin:
    """A plan action contributed by a plugin: a named transformation of one value.

    Attributes
    ----------
    name : str
        The action's name.
    title : str
        What it does.
    apply : callable
        ``apply(value: str) -> str | None``: the new value (``None`` empties the element).

    Examples
    --------
    >>> upper = PlanActionPlugin("upper", "upper-cases the value", str.upper)
    >>> upper.apply("ct head")
    'CT HEAD'
    """

    name: str
    title: str
    apply: Callable[[str], str | None]


@runtime_checkable
class PixelDetector(Protocol):
    """A pixel detector: the interface of Gantry's OCR engines (:class:`gantry.ocr.OcrEngine`).

    The entry point names a factory ``factory(*, min_confidence: float)``
    returning one; ``ocr.engine: <entry point name>`` in the config (or
    ``gantry.ocr.get_engine(name)``) then uses it wherever OCR runs.
    """

    name: str

    def read(self, image: np.ndarray) -> list[TextBox]:
        """Boxes found in ``image`` (``uint8``, grey ``(r, c)`` or RGB ``(r, c, 3)``)."""
        ...


@runtime_checkable
class Exporter(Protocol):
    """An exporter: sends a folder of de-identified files to a destination."""

    name: str

    def send(self, folder: Path, destination: str, **options: Any) -> int:
        """Send every file under ``folder``; return the number sent."""
        ...
