"""CTP DicomPixelAnonymizer scripts → ``machines`` entries."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import pytest

from gantry.config import load_config
from gantry.utils import CTPScriptError, convert_pixel_script
from gantry.utils._ctp_pixel import And, Condition, Not, Or, dnf, parse, render

# The reference scripts sit in ../shared/reference/ctp/ beside the clone (CI has them; a
# user's clone does not): their tests skip without them. GANTRY_REFERENCE names another place.
REFERENCE = Path(
    os.environ.get("GANTRY_REFERENCE")
    or Path(__file__).resolve().parents[2].parent / "shared" / "reference"
)
CTP = REFERENCE / "ctp"


def read_script(name: str) -> str:
    path = CTP / name
    if not path.is_file():
        pytest.skip(f"reference CTP scripts not beside the clone ({CTP})")
    return path.read_text(encoding="utf-8")


def entries_at(config: dict[str, Any], line: int) -> list[dict[str, Any]]:
    return [m for m in config["machines"] if f"(line {line})" in m["name"]]


# -- the reference scripts -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "signatures", "converted", "entries", "approximate", "unmapped_lines"),
    [
        ("DicomPixelAnonymizer.script", 52, 48, 49, 34, [22, 25, 102, 132]),
        ("example-dicom-pixel-anonymizer.script", 44, 41, 42, 29, [22, 25, 102]),
    ],
)
def test_every_signature_is_converted_or_reported(
    name: str,
    signatures: int,
    converted: int,
    entries: int,
    approximate: int,
    unmapped_lines: list[int],
) -> None:
    text = read_script(name)
    config, report = convert_pixel_script(text)
    brace_lines = [text.count("\n", 0, m.start()) + 1 for m in re.finditer(r"\{", text)]
    assert report.rules_in == len(brace_lines) == signatures
    assert report.converted == converted
    assert report.entries_out == len(config["machines"]) == entries
    assert [i.line for i in report.unmapped] == unmapped_lines
    assert report.converted + len(report.unmapped) == report.rules_in
    assert all("a `match` needs" in i.reason for i in report.unmapped)
    # none dropped silently: each signature's line is in an entry name or in the report
    named = {int(m) for e in config["machines"] for m in re.findall(r"\(line (\d+)\)", e["name"])}
    assert named | {i.line for i in report.unmapped} == set(brace_lines)
    # approximate entries are marked, reported, and come after the exact ones
    marked = [e["name"].endswith("(approximate)") for e in config["machines"]]
    assert marked == sorted(marked)
    assert len(report.approximate) == approximate
    approx_lines = {i.line for i in report.approximate}
    for entry, approx in zip(config["machines"], marked, strict=True):
        line = int(re.search(r"\(line (\d+)\)", entry["name"]).group(1))  # type: ignore[union-attr]
        assert approx == (line in approx_lines)
    cfg = load_config(config)
    assert len(cfg.machines) == entries


def test_hand_checked_zones_of_the_main_script() -> None:
    config, report = convert_pixel_script(read_script("DicomPixelAnonymizer.script"))
    (atl,) = entries_at(config, 198)
    assert atl["match"] == {
        "manufacturer": "ATL",
        "model": "HDI 5000",
        "rows": 476,
        "columns": 640,
        "mode": "contains",
    }
    # (40,0,200,40) (240,0,190,16) → [y, y+h, x, x+w]
    assert atl["redaction_zones"] == [[0, 40, 40, 240], [0, 16, 240, 430]]
    assert atl["name"] == "US: ATL (line 198) (approximate)"
    (sc2000,) = entries_at(config, 206)
    assert sc2000["redaction_zones"] == [[50, 420, 230, 490]]  # (230,50,260,370)
    (canon,) = entries_at(config, 328)  # exact: no condition outside `match`
    assert canon["name"] == "CR / DR: Canon (line 328)"
    assert canon["match"] == {
        "manufacturer": "Canon",
        "model": "CXDI",
        "rows": 2592,
        "mode": "contains",
    }
    assert canon["redaction_zones"] == [[0, 80, 0, 2208], [2512, 2592, 0, 2208]]
    (adac, _) = entries_at(config, 361) + entries_at(config, 366)
    assert adac["redaction_zones"] == [[0, 80, 0, 1024], [762, 832, 0, 1024]]  # clipped to 832 rows
    assert any("clipped" in n and n.startswith("line 361") for n in report.notes)
    # ( AAA + Report ) inside an AND: two entries, same zones, SeriesDescription reported
    vitrea = [m for m in config["machines"] if "(line 67) [" in m["name"]]
    assert [m["name"] for m in vitrea] == [
        f"CT: VITREA - Stent Planning Worksheet (line 67) [{k}/2] (approximate)" for k in (1, 2)
    ]
    assert all(m["redaction_zones"] == [[0, 150, 0, 795]] for m in vitrea)
    assert all(m["match"]["manufacturer"] == "VITAL Images" for m in vitrea)
    (item,) = [i for i in report.approximate if i.line == 67]
    assert 'SeriesDescription.containsIgnoreCase("AAA")' in item.reason
    assert 'SeriesDescription.containsIgnoreCase("Report")' in item.reason


# -- grammar ----------------------------------------------------------------------------------


def _t(name: str) -> Condition:
    return Condition(name, None, "equals", ("1",))


def _alts(expr: str) -> list[list[str]]:
    """The alternatives of a condition over one-letter keyword tests, as letters."""
    (sig,) = parse("{ " + re.sub(r"\b([A-Z])\b", r'\1.equals("1")', expr) + " } (0,0,1,1)")
    return [[("" if pos else "!") + t.element for t, pos in conj] for conj in dnf(sig.expr)]


@pytest.mark.parametrize(
    ("expr", "alternatives"),
    [
        ("A * B + C", [["A", "B"], ["C"]]),
        ("A + B * C", [["A"], ["B", "C"]]),
        ("A * (B + C)", [["A", "B"], ["A", "C"]]),
        ("(A + B) * (C + D)", [["A", "C"], ["A", "D"], ["B", "C"], ["B", "D"]]),
        ("!(A + B)", [["!A", "!B"]]),
        ("!(A * B) * C", [["!A", "C"], ["!B", "C"]]),
        ("!!A", [["A"]]),
        ("A * !A + B", [["B"]]),
        ("A * true", [["A"]]),
        ("A * false + B", [["B"]]),
    ],
)
def test_precedence_and_normal_form(expr: str, alternatives: list[list[str]]) -> None:
    assert _alts(expr) == alternatives


def test_parse_tree_and_render_round_trip() -> None:
    (sig,) = parse(
        'x\n{ [0008,0070].contains("A") * !( Rows.equals("1") + Columns.equals("2") ) }(1,2,3,4)'
    )
    assert isinstance(sig.expr, And)
    assert isinstance(sig.expr.operands[1], Not)
    assert isinstance(sig.expr.operands[1].operand, Or)
    assert sig.expr.operands[0] == Condition("[0008,0070]", 0x00080070, "contains", ("A",))
    assert (
        render(sig.expr) == '[0008,0070].contains("A") * !(Rows.equals("1") + Columns.equals("2"))'
    )
    assert (sig.line, sig.label, sig.regions) == (2, "x", ((1, 2, 3, 4),))
    assert _t("A") == Condition("A", None, "equals", ("1",), line=9)  # line is not identity


def test_or_splits_into_exact_entries() -> None:
    config, report = convert_pixel_script(
        'Acme\n{ Manufacturer.equalsIgnoreCase("ACME") * Rows.equals("10")'
        ' + ManufacturerModelName.equalsIgnoreCase("M1") }\n(0,0,4,2)'
    )
    assert [(m["name"], m["match"]) for m in config["machines"]] == [
        ("Acme (line 2) [1/2]", {"manufacturer": "ACME", "rows": 10, "mode": "equals"}),
        ("Acme (line 2) [2/2]", {"model": "M1", "mode": "equals"}),
    ]
    assert report.approximate == [] and report.entries_out == 2 and report.converted == 1
    load_config(config)


@pytest.mark.parametrize(
    ("condition", "match", "reason"),
    [
        (
            'Manufacturer.containsIgnoreCase("A") * ManufacturerModelName.equalsIgnoreCase("B")',
            {"manufacturer": "A", "model": "B", "mode": "contains"},
            "equals tested as contains",
        ),
        (
            'Manufacturer.equals("A") * !Modality.equals("SR")',
            {"manufacturer": "A", "mode": "equals"},
            '!Modality.equals("SR")',
        ),
        (
            'Manufacturer.matches(".*Acme.*")',
            {"manufacturer": "Acme", "mode": "contains"},
            "regular expression",
        ),
        (
            'Manufacturer.startsWithIgnoreCase("Ac") * Rows.equals("64")',
            {"manufacturer": "Ac", "rows": 64, "mode": "contains"},
            "tested as contains",
        ),
        (
            'Rows.equals("64") * ManufacturerModelName.matches("X[0-9]+")',
            {"rows": 64, "mode": "equals"},
            'ManufacturerModelName.matches("X[0-9]+")',
        ),
        (
            'DeviceSerialNumber.equalsIgnoreCase("SN1") * Rows.equals("64")',
            {"serial_number": "SN1", "mode": "equals"},
            "serial_number ignores other fields",
        ),
        (
            'Rows.isLessThan("600") * Manufacturer.containsIgnoreCase("A")',
            {"manufacturer": "A", "mode": "contains"},
            'Rows.isLessThan("600")',
        ),
    ],
)
def test_conditions_match_cannot_hold_are_reported(
    condition: str, match: dict[str, Any], reason: str
) -> None:
    config, report = convert_pixel_script("{ " + condition + " } (0,0,8,8)")
    (entry,) = config["machines"]
    assert entry["match"] == match
    assert entry["name"].endswith("(approximate)")
    (item,) = report.approximate
    assert reason in item.reason
    load_config(config)


def test_signature_without_match_field_or_region_is_reported_not_dropped() -> None:
    config, report = convert_pixel_script(
        '{ SeriesDescription.contains("X") } (0,0,8,8)\n'
        '{ Manufacturer.contains("A") }\n'
        '{ Manufacturer.equalsIgnoreCase("B") * Rows.equals("10") } (0,20,5,5)\n'
        '{ Manufacturer.equalsIgnoreCase("C") * false } (0,0,1,1)\n'
    )
    assert config["machines"] == []
    assert [(i.line, i.reason.split(":")[0]) for i in report.unmapped] == [
        (1, 'SeriesDescription.contains("X")'),
        (2, "the signature has no regions"),
        (3, 'Manufacturer.equalsIgnoreCase("B") * Rows.equals("10")'),
        (4, "the condition can never hold (it is always false)"),
    ]
    assert "no region inside the image" in report.unmapped[2].reason
    assert report.rules_in == 4 and report.converted == 0


def test_unreachable_entries_are_noted() -> None:
    _, report = convert_pixel_script(
        '{ Manufacturer.containsIgnoreCase("GE") * ImageType.contains("DOSE") } (0,0,8,8)\n'
        '{ Manufacturer.containsIgnoreCase("GE") * Modality.equals("CT") * Rows.equals("512") } (0,0,4,4)\n'
    )
    assert any("line 2:" in n and "never reached" in n for n in report.notes)


# -- errors -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "line", "column", "expected"),
    [
        ('{ Manufacturer.equals("A") *\n  Rows.foo("1") }\n(0,0,1,1)', 2, 8, "a known method"),
        ('{ Manufacturer.equals("A") }\n(0,0,512)', 2, 1, "a region (x, y, width, height)"),
        ('note\n{ ( Rows.equals("1") }\n(0,0,1,1)', 2, 22, "')' closing the parenthesis"),
        ('{ Rows.equals("1")\n', 2, 1, "'}' closing the signature"),
        ('{ Rows.equals("1) }\n(0,0,1,1)', 1, 15, "a closed string"),
        ("{ Rows.equals(1, 2) }", 1, 19, "1 argument to equals"),
        ('{ Rows.equals("1") Columns.equals("1") }', 1, 20, "'}' closing the signature"),
        ('{ [0008,00X0].contains("A") }', 1, 3, "a tag such as [0008,0070]"),
        ("{ }", 1, 3, "a condition inside { }"),
    ],
)
def test_malformed_scripts_name_the_line(text: str, line: int, column: int, expected: str) -> None:
    with pytest.raises(CTPScriptError) as info:
        convert_pixel_script(text)
    err = info.value
    assert (err.line, err.column) == (line, column)
    assert expected in str(err)
    assert str(err).startswith(f"`line {line}, column {column}` must be ")
    assert isinstance(err, ValueError)
