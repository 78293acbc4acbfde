"""Convert RSNA CTP anonymizer scripts into Gantry config v2.

Two kinds of CTP script are read:

* **pixel** scripts (``DicomPixelAnonymizer``): device signatures in braces,
  each followed by the regions ``(x, y, width, height)`` to blank, become
  ``machines`` entries (:func:`convert_pixel_script`);
* **header** scripts (``DicomAnonymizer``): XML with ``<e>`` element rules,
  ``<p>`` parameters and ``<r>``/``<k>`` group rules, become ``phi_tags``,
  ``keep``, ``uid_root``, ``date_jitter`` and ``remove_private_tags``
  (:func:`convert_header_script`).

Nothing is dropped silently: every rule that has no exact Gantry equivalent is
listed in the :class:`ConversionReport`, either as *approximate* (converted,
with the difference stated) or *unmapped* (not converted, with the reason).
``docs/ctp.md`` describes every mapping.

Run as a script::

    python -m gantry.utils.ctp_parser in.script out.yaml [--kind auto] [--report r.md]

Examples
--------
>>> config, report = convert_pixel_script('''
... Acme US
...   { Manufacturer.containsIgnoreCase("ACME") * Rows.equals("480") }
...   (0,0,640,40)
... ''')
>>> config["machines"][0]["match"], config["machines"][0]["redaction_zones"]
({'manufacturer': 'ACME', 'rows': 480, 'mode': 'contains'}, [[0, 40, 0, 640]])
>>> report.summary()
'pixel script: 1 signature in, 1 converted (0 approximate), 0 not converted; 1 machine entry out'
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from gantry.errors import ConfigError

__all__ = [
    "CTPScriptError",
    "ConversionReport",
    "ReportItem",
    "convert_file",
    "convert_header_script",
    "convert_pixel_script",
    "default_report_path",
    "detect_kind",
    "main",
    "write_report",
]

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


def convert_pixel_script(text: str) -> tuple[dict[str, Any], ConversionReport]:
    """Convert a CTP DicomPixelAnonymizer script into ``machines`` entries.

    Each signature ``{ … }`` becomes one entry, in script order (the first
    matching entry wins, as in CTP); each region ``(x, y, w, h)`` becomes the
    zone ``[y, y + h, x, x + w]``.  A condition that plain ``match`` fields say
    exactly (``…IgnoreCase`` tests of Manufacturer, ManufacturerModelName or
    DeviceSerialNumber, whole-number ``Rows``/``Columns``) is written as those
    fields; any other is written whole as ``match.conditions`` (the same
    language, evaluated on the ``elements`` table), so nothing is approximated.
    What even ``conditions`` cannot express (a regular expression Polars cannot
    run, an unknown keyword), a signature without regions and one that can
    never hold are reported as not converted.

    Parameters
    ----------
    text : str
        The script.

    Returns
    -------
    config : dict
        ``{"version": 2, "machines": [...]}``, loadable by
        :func:`gantry.config.load_config`.
    report : ConversionReport

    Raises
    ------
    CTPScriptError
        On a syntax error (names the line and column).

    Examples
    --------
    >>> cfg, rep = convert_pixel_script('''
    ... { Modality.equals("US") * (Manufacturer.equalsIgnoreCase("A") + Manufacturer.equalsIgnoreCase("B")) }
    ... (10,0,100,20) (0,300,50,50)
    ... ''')
    >>> entry, = cfg["machines"]
    >>> entry["match"], entry["redaction_zones"]
    ({'conditions': 'Modality.equals("US") * (Manufacturer.equalsIgnoreCase("A") + Manufacturer.equalsIgnoreCase("B"))'}, [[0, 20, 10, 110], [300, 350, 0, 50]])
    >>> rep.summary()
    'pixel script: 1 signature in, 1 converted (0 approximate), 0 not converted; 1 machine entry out'
    """
    from gantry.utils._ctp_pixel import convert

    return convert(text)


def convert_header_script(text: str) -> tuple[dict[str, Any], ConversionReport]:
    """Convert a CTP DicomAnonymizer (header) script into config v2.

    ``<e>`` rules map to ``phi_tags`` actions (``@remove()`` → REMOVE,
    ``@empty()`` → EMPTY, ``@hashuid`` → REMAP, ``@incrementdate`` → SHIFT,
    ``@hash`` → HASH, literal text → REPLACE, …) or to ``keep``; the
    ``UIDROOT`` and ``DATEINC`` parameters give ``uid_root`` and
    ``date_jitter``; ``<r>``/``<k>`` group rules give ``remove_private_tags``
    and ``keep``.  Disabled (``en="F"``) rules are counted, not converted.

    Parameters
    ----------
    text : str
        The XML script.

    Returns
    -------
    config : dict
        Loadable by :func:`gantry.config.load_config`.
    report : ConversionReport

    Raises
    ------
    CTPScriptError
        On malformed XML or a malformed function call (names the line).

    Examples
    --------
    >>> cfg, rep = convert_header_script('''<script>
    ...  <p t="UIDROOT">1.2.3</p>
    ...  <e en="T" t="00080080" n="InstitutionName">@remove()</e>
    ...  <e en="T" t="00080018" n="SOPInstanceUID">@hashuid(@UIDROOT,this)</e>
    ...  <e en="F" t="00081030" n="StudyDescription">@remove()</e>
    ...  <e en="T" t="00100010" n="PatientName">@lookup(this,ptid)</e>
    ... </script>''')
    >>> cfg["uid_root"], cfg["phi_tags"]["0008,0018"]
    ('1.2.3', {'action': 'REMAP', 'name': 'SOPInstanceUID'})
    >>> rep.converted, rep.skipped, [i.function for i in rep.unmapped]
    (2, 1, ['@lookup'])
    """
    from gantry.utils._ctp_header import convert

    return convert(text)


def detect_kind(text: str) -> Kind:
    """``"header"`` for an XML script, ``"pixel"`` otherwise.

    Examples
    --------
    >>> detect_kind("<script>\\n</script>"), detect_kind("{ Rows.equals(\\"1\\") } (0,0,1,1)")
    ('header', 'pixel')
    """
    body = text.lstrip("\ufeff \t\r\n")
    return "header" if body.startswith("<") else "pixel"


def convert_file(
    in_path: str | Path,
    out_path: str | Path,
    *,
    kind: Literal["pixel", "header", "auto"] = "auto",
    report_path: str | Path | None = None,
) -> ConversionReport:
    """Convert a CTP script file into a Gantry YAML config file.

    The YAML is checked with :func:`gantry.config.load_config` before it
    replaces ``out_path``; rules not converted are also listed as comments at
    its end.

    Parameters
    ----------
    in_path, out_path : str or Path
        The CTP script and the config to write.
    kind : {"auto", "pixel", "header"}
        ``auto`` reads XML as a header script and anything else as a pixel script.
    report_path : str or Path, optional
        Also write the report there: YAML for ``.yaml``/``.yml``, else Markdown.

    Returns
    -------
    ConversionReport

    Raises
    ------
    CTPScriptError
        If the script cannot be read (names the file, line and column).

    Examples
    --------
    >>> import pathlib, tempfile
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (d / "px.script").write_text('{ Manufacturer.equals("X") } (0,0,10,10)')
    >>> convert_file(d / "px.script", d / "px.yaml").entries_out
    1
    """
    from gantry.config import load_config

    src = Path(in_path)
    dest = Path(out_path)
    text = src.read_text(encoding="utf-8-sig", errors="replace")
    if kind not in ("auto", "pixel", "header"):
        raise ConfigError("kind", expected="one of 'auto', 'pixel', 'header'", got=kind)
    chosen: Kind = detect_kind(text) if kind == "auto" else kind
    try:
        if chosen == "pixel":
            config, report = convert_pixel_script(text)
        else:
            config, report = convert_header_script(text)
    except CTPScriptError as exc:
        raise exc.with_source(src) from None
    report.source = str(src)
    body = _config_yaml(config, report)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.tmp")
    tmp.write_text(body, encoding="utf-8")
    try:
        load_config(tmp)
    except Exception:
        tmp.unlink(missing_ok=True)
        raise
    tmp.replace(dest)
    if report_path is not None:
        write_report(report, report_path)
    return report


def write_report(report: ConversionReport, path: str | Path) -> Path:
    """Write ``report`` as YAML (``.yaml``/``.yml``) or Markdown (anything else)."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    is_yaml = target.suffix.lower() in (".yaml", ".yml")
    target.write_text(report.to_yaml() if is_yaml else report.to_markdown(), encoding="utf-8")
    return target


def _config_yaml(config: dict[str, Any], report: ConversionReport) -> str:
    what = "DicomPixelAnonymizer" if report.kind == "pixel" else "DicomAnonymizer"
    name = Path(report.source).name if report.source else "a script"
    head = [
        f"# Gantry config v2 converted from the CTP {what} script {name}",
        f"# {report.summary()}.",
        "# Review before use: the conversion report lists every approximate and",
        "# unconverted rule (docs/ctp.md explains the mapping).",
    ]
    rest = {k: v for k, v in config.items() if k != "keep"}
    body: str = yaml.dump(
        rest,
        Dumper=_Dumper,
        sort_keys=False,
        default_flow_style=None,
        allow_unicode=True,
        width=100,
    )
    if "keep" in config:
        body += _keep_yaml(config["keep"])
    tail: list[str] = []
    if report.unmapped:
        tail = ["", "# Not converted (see the report):"]
        for it in report.unmapped:
            where = f"line {it.line}: " if it.line is not None else ""
            tail.append(f"#   {where}{' '.join(it.rule.split())}")
            tail.append(f"#     {' '.join(it.reason.split())}")
    return "\n".join(head) + "\n" + body + ("\n".join(tail) + "\n" if tail else "")


def _represent_str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "'" if _TAG_TEXT.match(value) else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_TAG_TEXT = re.compile(r"^[0-9A-Fa-f]{4},[0-9A-Fa-f]{4}$")
#: A safe dumper that quotes tag text ("0008,0080"), as docs/config.md asks.
_Dumper: Any = type("_Dumper", (yaml.SafeDumper,), {})
_Dumper.add_representer(str, _represent_str)


def _keep_yaml(tags: list[str]) -> str:
    """``keep:`` as a block list, each tag with its keyword as a comment."""
    from pydicom.datadict import keyword_for_tag

    if not tags:
        return "keep: []\n"
    lines = ["keep:"]
    for tag in tags:
        keyword = keyword_for_tag(int(tag.replace(",", ""), 16))
        lines.append(f"- '{tag}'" + (f"  # {keyword}" if keyword else ""))
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m gantry.utils.ctp_parser IN OUT [--kind K] [--report R]``."""
    parser = argparse.ArgumentParser(
        prog="python -m gantry.utils.ctp_parser",
        description="Convert a CTP anonymizer script (pixel or header) into a Gantry config.",
    )
    parser.add_argument("input", type=Path, help="CTP script")
    parser.add_argument("output", type=Path, help="Gantry YAML config to write")
    parser.add_argument("--kind", choices=("auto", "pixel", "header"), default="auto")
    parser.add_argument(
        "--report", type=Path, default=None, help="report file (default: OUTPUT.report.md)"
    )
    args = parser.parse_args(argv)
    report_path = args.report or default_report_path(args.output)
    try:
        report = convert_file(args.input, args.output, kind=args.kind, report_path=report_path)
    except (ConfigError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(report.summary())
    print(f"wrote {args.output} and {report_path}")
    return 0


def default_report_path(out_path: str | Path) -> Path:
    """``out.yaml`` → ``out.report.md`` beside it."""
    out = Path(out_path)
    return out.with_name(f"{out.stem}.report.md")


if __name__ == "__main__":
    from gantry.utils.ctp_parser import main as _main  # the importable module, not __main__

    sys.exit(_main())
