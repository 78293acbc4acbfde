"""CTP DicomPixelAnonymizer scripts → ``machines`` entries."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import pytest

from gantry.config import load_config
from gantry.ctp import CTPScriptError, convert_pixel_script
from gantry.ctp._pixel import And, Condition, Not, Or, dnf, parse, render

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


# -- the reference scripts (../shared/reference/ctp/, skipped without it) ---------------------


def test_reference_pixel_scripts_convert_exactly() -> None:
    """Every signature and region of both reference scripts, conditions included."""
    for name, signatures, regions in (
        ("DicomPixelAnonymizer.script", 52, 62),
        ("example-dicom-pixel-anonymizer.script", 44, 54),
    ):
        text = read_script(name)
        config, report = convert_pixel_script(text)
        parsed = parse(text)
        brace_lines = [text.count("\n", 0, m.start()) + 1 for m in re.finditer(r"\{", text)]
        assert report.rules_in == len(parsed) == len(brace_lines) == signatures
        assert report.converted == report.entries_out == signatures
        assert report.approximate == [] and report.unmapped == []
        machines = config["machines"]
        assert sum(len(m["redaction_zones"]) for m in machines) == regions
        for sig, entry in zip(parsed, machines, strict=True):  # script order kept
            assert f"(line {sig.line})" in entry["name"]
            assert "approximate" not in entry["name"]
            if "conditions" in entry["match"]:
                assert entry["match"] == {"conditions": render(sig.expr)}
            assert len(entry["redaction_zones"]) == len(sig.regions)
        cfg = load_config(config)
        assert len(cfg.machines) == signatures

    config, report = convert_pixel_script(read_script("DicomPixelAnonymizer.script"))
    (atl,) = entries_at(config, 198)
    assert atl["match"] == {
        "conditions": 'Modality.equals("US") * Manufacturer.containsIgnoreCase("ATL") * '
        'ManufacturerModelName.containsIgnoreCase("HDI 5000") * Rows.equals("476") * '
        'Columns.equals("640")'
    }
    # (40,0,200,40) (240,0,190,16) → [y, y+h, x, x+w]
    assert atl["redaction_zones"] == [[0, 40, 40, 240], [0, 16, 240, 430]]
    assert atl["name"] == "US: ATL (line 198)"
    (sc2000,) = entries_at(config, 206)
    assert sc2000["redaction_zones"] == [[50, 420, 230, 490]]  # (230,50,260,370)
    (canon,) = entries_at(config, 328)  # plain fields say it exactly
    assert canon["name"] == "CR / DR: Canon (line 328)"
    assert canon["match"] == {
        "manufacturer": "Canon",
        "model": "CXDI",
        "rows": 2592,
        "mode": "contains",
    }
    assert canon["redaction_zones"] == [[0, 80, 0, 2208], [2512, 2592, 0, 2208]]
    (adac,) = entries_at(config, 361)
    assert adac["redaction_zones"] == [[0, 80, 0, 1024], [762, 832, 0, 1024]]  # clipped to 832 rows
    assert any("clipped" in n and n.startswith("line 361") for n in report.notes)
    # ( AAA + Report ) inside an AND: one entry, the condition kept whole
    (vitrea,) = entries_at(config, 67)
    assert vitrea["match"]["conditions"] == (
        'Manufacturer.containsIgnoreCase("VITAL Images") * '
        '(SeriesDescription.containsIgnoreCase("AAA") + '
        'SeriesDescription.containsIgnoreCase("Report")) * Rows.equals("1041")'
    )
    # the four that had no `match` field before: an overlay, file meta, a code meaning
    (mindray,) = entries_at(config, 132)
    assert "ImplementationVersionName" in mindray["match"]["conditions"]
    (overlay,) = entries_at(config, 102)
    assert overlay["match"]["conditions"].startswith("[6000,0022].containsIgnoreCase(")


# -- our own fixture in the same grammar (always runs) ----------------------------------------

FIXTURE = """\
A pixel script of our own, in CTP's syntax, using every construct of the grammar.

**************
     US
**************
Acme, plain fields
  { Manufacturer.containsIgnoreCase("ACME") *
    ManufacturerModelName.containsIgnoreCase("Sono") * Rows.equals("480") }
  (0,0,640,40) (0,440,100,60)

Either model, not derived
  { Modality.equals("US") *
    ( ManufacturerModelName.equalsIgnoreCase("M1") + ManufacturerModelName.equalsIgnoreCase("M2") ) *
    !ImageType.containsIgnoreCase("DERIVED") }
  (10,0,100,20)

**************
     CR
**************
Tags, regular expressions, numbers
  { [0008,0070].startsWith("Radi") * ManufacturerModelName.matches("CR-[0-9]+") *
    Columns.isGreaterThan("500") }
  (0,0,50,50)

Sequences, blanks, file meta, constants
  { ReferencedImageSequence::ReferencedSOPClassUID.endsWithIgnoreCase(".1.2") *
    StationName.isBlank() * ImplementationVersionName.contains("GANTRY") + true * false }
  (0,0,8,8)

Never holds
  { Modality.equals("US") * !Modality.equals("US") }
  (0,0,1,1)
No regions
  { Modality.equals("CT") }
What conditions cannot say
  { Modality.matches("(?<=U)S") }
  (0,0,1,1)
"""


def _line(text: str) -> int:
    """The line of FIXTURE holding ``text``."""
    return FIXTURE[: FIXTURE.index(text)].count("\n") + 1


def test_own_fixture_converts_each_signature_or_reports_why() -> None:
    config, report = convert_pixel_script(FIXTURE)
    assert report.rules_in == 7 and report.converted == 4 and report.approximate == []
    lines = [sig.line for sig in parse(FIXTURE)]
    probes = [
        "{ Manu",
        '{ Modality.equals("US") *\n',
        "{ [000",
        "{ Refe",
        '{ Modality.equals("US") * !',
    ]
    assert lines == [_line(p) for p in [*probes, '{ Modality.equals("CT")', "{ Modality.matches"]]
    labels = [
        "US: Acme, plain fields",
        "US: Either model, not derived",
        "CR: Tags, regular expressions, numbers",
        "CR: Sequences, blanks, file meta, constants",
    ]
    assert [m["name"] for m in config["machines"]] == [
        f"{label} (line {line})" for label, line in zip(labels, lines, strict=False)
    ]
    plain, either, tags, seq = config["machines"]
    assert plain["match"] == {
        "manufacturer": "ACME",
        "model": "Sono",
        "rows": 480,
        "mode": "contains",
    }
    assert plain["redaction_zones"] == [[0, 40, 0, 640], [440, 480, 0, 100]]
    assert either["match"] == {
        "conditions": 'Modality.equals("US") * (ManufacturerModelName.equalsIgnoreCase("M1") + '
        'ManufacturerModelName.equalsIgnoreCase("M2")) * !ImageType.containsIgnoreCase("DERIVED")'
    }
    assert tags["match"]["conditions"].startswith('[0008,0070].startsWith("Radi") * ')
    assert seq["match"]["conditions"].endswith(" + true * false")
    assert [(i.line, i.reason.split(":")[0]) for i in report.unmapped] == [
        (_line("!Modality"), "the condition can never hold (it is always false)"),
        (_line('Modality.equals("CT")'), "the signature has no regions"),
        (_line("(?<=U)"), "`conditions` cannot express it"),
    ]
    assert "regular expression" in report.unmapped[2].reason
    cfg = load_config(config)
    assert [m.match.conditions is not None for m in cfg.machines] == [False, True, True, True]


def test_converted_conditions_match_images_as_ctp_would(tmp_path: Path) -> None:
    from gantry import Session
    from gantry.audit import match_machines
    from gantry.testing import make_instance

    images = {
        "acme": dict(modality="US", rows=480, columns=640, Manufacturer="ACME Medical",
                     ManufacturerModelName="Sono 5"),
        "m2": dict(modality="US", Manufacturer="Other", ManufacturerModelName="m2"),
        "m2-derived": dict(modality="US", Manufacturer="Other", ManufacturerModelName="M2",
                           ImageType=["DERIVED", "SECONDARY"]),
        "cr": dict(modality="CR", columns=600, Manufacturer="RadiCorp",
                   ManufacturerModelName="CR-900"),
        "cr-regex-miss": dict(modality="CR", columns=600, Manufacturer="RadiCorp",
                              ManufacturerModelName="CR-900x"),
        "cr-too-narrow": dict(modality="CR", columns=400, Manufacturer="RadiCorp",
                              ManufacturerModelName="CR-900"),
        "no-station": dict(modality="CT", StationName=None),
        "station": dict(modality="CT"),
    }  # fmt: skip
    for i, (stem, kw) in enumerate(images.items()):
        make_instance(tmp_path / "dicom" / f"{stem}.dcm", seed=i, **kw)
    config, _ = convert_pixel_script(FIXTURE)
    with Session(tmp_path / "s.db") as s:
        s.ingest(tmp_path / "dicom", workers=1, progress=False)
        matched = match_machines(
            s.table("instances"), load_config(config).machines, elements=s.table("elements")
        ).collect()
        stems = s.sql("SELECT file_id, file_path FROM instances")
    by_file = {Path(p).stem: fid for fid, p in stems.iter_rows()}
    got = {stem: None for stem in images}
    for fid, name in matched.select("file_id", "machine_name").iter_rows():
        got[next(k for k, v in by_file.items() if v == fid)] = name.split(" (line")[0]
    assert got == {
        "acme": "US: Acme, plain fields",
        "m2": "US: Either model, not derived",
        "m2-derived": None,
        "cr": "CR: Tags, regular expressions, numbers",
        "cr-regex-miss": None,  # `matches` is the whole value, as Java's String.matches
        "cr-too-narrow": None,
        "no-station": "CR: Sequences, blanks, file meta, constants",  # missing reads as ""
        "station": None,
    }


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


def test_or_gives_one_entry_with_the_whole_condition() -> None:
    config, report = convert_pixel_script(
        'Acme\n{ Manufacturer.equalsIgnoreCase("ACME") * Rows.equals("10")'
        ' + ManufacturerModelName.equalsIgnoreCase("M1") }\n(0,0,4,2)'
    )
    assert [(m["name"], m["match"]) for m in config["machines"]] == [
        (
            "Acme (line 2)",
            {
                "conditions": 'Manufacturer.equalsIgnoreCase("ACME") * Rows.equals("10") + '
                'ManufacturerModelName.equalsIgnoreCase("M1")'
            },
        ),
    ]
    assert report.approximate == [] and report.entries_out == 1 and report.converted == 1
    load_config(config)


@pytest.mark.parametrize(
    ("condition", "plain"),
    [
        ('Manufacturer.containsIgnoreCase("A") * Rows.equals("64")', True),
        ('DeviceSerialNumber.equalsIgnoreCase("SN1") * Columns.equals("64")', True),
        (
            'Manufacturer.containsIgnoreCase("A") * ManufacturerModelName.equalsIgnoreCase("B")',
            False,
        ),
        ('Manufacturer.equals("A")', False),  # case-sensitive: only `conditions` says it
        ('Manufacturer.equalsIgnoreCase("A") * !Modality.equals("SR")', False),
        ('Manufacturer.matches(".*Acme.*")', False),
        ('Manufacturer.startsWithIgnoreCase("Ac")', False),
        ('Rows.isLessThan("600") * Manufacturer.containsIgnoreCase("A")', False),
        ('Rows.equals("64") * Rows.equals("65")', False),
    ],
)
def test_plain_fields_only_when_they_say_exactly_the_same(condition: str, plain: bool) -> None:
    config, report = convert_pixel_script("{ " + condition + " } (0,0,8,8)")
    (entry,) = config["machines"]
    assert ("conditions" not in entry["match"]) is plain
    if not plain:
        assert entry["match"] == {"conditions": condition}
    assert report.approximate == [] and report.unmapped == []
    load_config(config)


def test_unreachable_entries_are_noted() -> None:
    _, report = convert_pixel_script(
        '{ Manufacturer.containsIgnoreCase("GE") } (0,0,8,8)\n'
        '{ Manufacturer.containsIgnoreCase("GE") * Rows.equals("512") } (0,0,4,4)\n'
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
