"""The conversion report and the syntax error every CTP converter shares.

A leaf module: :mod:`gantry.ctp._pixel`, :mod:`gantry.ctp._header` and
:mod:`gantry.ctp._convert` import it; it imports none of them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from gantry.errors import ConfigError

__all__ = ["CTPScriptError", "ConversionReport", "Kind", "ReportItem"]

Kind = Literal["pixel", "header"]


class CTPScriptError(ConfigError):
    """A CTP script that cannot be read: names the line and column.

    A :class:`~gantry.errors.ConfigError` (hence a ``ValueError``): the
    message reads "`line L, column C` must be …, got …".

    Examples
    --------
    >>> str(CTPScriptError(3, 7, expected="a method name", got="+"))
    "`line 3, column 7` must be a method name, got '+'"
    """

    def __init__(
        self,
        line: int,
        column: int,
        *,
        expected: str,
        got: Any,
        hint: str | None = None,
        source: str | Path | None = None,
    ) -> None:
        self.line = line
        self.column = column
        super().__init__(
            f"line {line}, column {column}", expected=expected, got=got, hint=hint, source=source
        )

    def with_source(self, source: str | Path) -> CTPScriptError:
        """The same error, naming the file it came from."""
        return CTPScriptError(
            self.line,
            self.column,
            expected=self.expected,
            got=self.got,
            hint=self.hint,
            source=source,
        )


@dataclass(frozen=True, slots=True)
class ReportItem:
    """One rule of a CTP script that was approximated or not converted.

    Attributes
    ----------
    line : int or None
        Line of the rule in the script.
    rule : str
        The rule as CTP writes it (a signature, or ``(gggg,eeee) Name: script``).
    reason : str
        What differs, or why nothing was converted.
    function : str or None
        Header scripts: the rule's CTP function (``"@hashdate"``, ``"literal"``).
    """

    line: int | None
    rule: str
    reason: str
    function: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """Plain data for YAML."""
        out: dict[str, Any] = {"line": self.line, "rule": self.rule, "reason": self.reason}
        if self.function is not None:
            out["function"] = self.function
        return out


@dataclass
class ConversionReport:
    """What a conversion did: counts, approximations and rules left out.

    Attributes
    ----------
    kind : {"pixel", "header"}
        Which converter made it.
    rules_in : int
        Pixel: signatures.  Header: enabled (``en="T"``) element and group rules.
    converted : int
        Rules turned into config (approximate ones included).
    entries_out : int
        Pixel: ``machines`` entries (a top-level OR gives several).  Header:
        ``phi_tags`` plus ``keep`` entries.
    skipped : int
        Header: disabled (``en="F"``) rules, not converted by design.
    approximate : list of ReportItem
        Converted rules whose Gantry meaning differs from CTP's.
    unmapped : list of ReportItem
        Rules not converted, with the reason.
    notes : list of str
        Script-wide remarks (parameters used, order effects, defaults kept).
    functions : dict
        Header: per CTP function, how many rules were ``mapped``,
        ``approximate`` or ``unmapped``.
    source : str or None
        The script file, when known.
    """

    kind: Kind
    rules_in: int = 0
    converted: int = 0
    entries_out: int = 0
    skipped: int = 0
    approximate: list[ReportItem] = field(default_factory=list)
    unmapped: list[ReportItem] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    functions: dict[str, dict[str, int]] = field(default_factory=dict)
    source: str | None = None

    def count(self, function: str, outcome: Literal["mapped", "approximate", "unmapped"]) -> None:
        """Count one header rule under its CTP function."""
        row = self.functions.setdefault(function, {"mapped": 0, "approximate": 0, "unmapped": 0})
        row[outcome] += 1

    def summary(self) -> str:
        """One line: rules in, converted, left out, entries out."""
        unit = "signature" if self.kind == "pixel" else "rule"
        out = "machine entr" if self.kind == "pixel" else "config entr"
        skipped = f", {self.skipped} disabled (skipped)" if self.kind == "header" else ""
        return (
            f"{self.kind} script: {self.rules_in} {unit}{'' if self.rules_in == 1 else 's'} in, "
            f"{self.converted} converted ({len(self.approximate)} approximate), "
            f"{len(self.unmapped)} not converted{skipped}; "
            f"{self.entries_out} {out}{'y' if self.entries_out == 1 else 'ies'} out"
        )

    def to_dict(self) -> dict[str, Any]:
        """Plain data (YAML/JSON-ready)."""
        out: dict[str, Any] = {
            "kind": self.kind,
            "source": self.source,
            "summary": self.summary(),
            "rules_in": self.rules_in,
            "converted": self.converted,
            "entries_out": self.entries_out,
        }
        if self.kind == "header":
            out["skipped"] = self.skipped
            out["functions"] = {k: dict(v) for k, v in sorted(self.functions.items())}
        out["approximate"] = [i.to_dict() for i in self.approximate]
        out["unmapped"] = [i.to_dict() for i in self.unmapped]
        out["notes"] = list(self.notes)
        return out

    def to_yaml(self) -> str:
        """The report as YAML."""
        text: str = yaml.safe_dump(
            self.to_dict(), sort_keys=False, default_flow_style=None, allow_unicode=True, width=100
        )
        return text

    def to_markdown(self) -> str:
        """The report as a Markdown page (tables of approximate and unmapped rules)."""
        what = "DicomPixelAnonymizer" if self.kind == "pixel" else "DicomAnonymizer"
        lines = [f"# CTP {what} script conversion", ""]
        if self.source:
            lines += [f"Source: `{self.source}`", ""]
        lines += [self.summary() + ".", ""]
        if self.functions:
            lines += [
                "## By function",
                "",
                "| function | mapped | approximate | unmapped |",
                "|---|---:|---:|---:|",
            ]
            for name, row in sorted(self.functions.items()):
                lines.append(
                    f"| `{_cell(name)}` | {row['mapped']} | {row['approximate']} | {row['unmapped']} |"
                )
            lines.append("")
        for title, items in (
            ("Not converted", self.unmapped),
            ("Approximate (converted, differs from CTP)", self.approximate),
        ):
            lines += [f"## {title} ({len(items)})", ""]
            if not items:
                lines += ["None.", ""]
                continue
            lines += ["| line | rule | reason |", "|---:|---|---|"]
            for it in items:
                where = "" if it.line is None else str(it.line)
                lines.append(f"| {where} | `{_cell(it.rule)}` | {_cell(it.reason)} |")
            lines.append("")
        if self.notes:
            lines += ["## Notes", ""] + [f"- {n}" for n in self.notes] + [""]
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.summary()


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|").replace("`", "'")
