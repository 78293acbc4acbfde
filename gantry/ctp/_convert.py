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

    python -m gantry.ctp in.script out.yaml [--kind auto] [--report r.md]

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
from pathlib import Path
from typing import Any, Literal

import yaml

from gantry.ctp._header import convert as _convert_header
from gantry.ctp._pixel import convert as _convert_pixel
from gantry.ctp._report import ConversionReport, CTPScriptError, Kind, ReportItem
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
    return _convert_pixel(text)


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
    return _convert_header(text)


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


def main(argv: Sequence[str] | None = None, *, prog: str = "python -m gantry.ctp") -> int:
    """``python -m gantry.ctp IN OUT [--kind K] [--report R]``.

    ``prog`` names the command in the help text (the old
    ``python -m gantry.utils.ctp_parser`` passes its own name).
    """
    parser = argparse.ArgumentParser(
        prog=prog,
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
