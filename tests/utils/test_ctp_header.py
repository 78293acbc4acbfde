"""CTP DicomAnonymizer (header) scripts → config v2."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import pytest

from gantry.config import TagAction, load_config
from gantry.ctp import CTPScriptError, convert_header_script

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


def one(element: str, *, params: str = "", extra: str = "") -> tuple[dict[str, Any], Any]:
    return convert_header_script(f"<script>\n{params}{element}\n{extra}</script>")


# -- the reference scripts -------------------------------------------------------------------


def test_reference_header_scripts_convert_and_load() -> None:
    """Both reference scripts (one test, so a clone without them shows one skip)."""
    for row in (
        ("example-ctp-dicom-anonymizer.script", 290, 289, 5, 1, 282),
        ("DicomServiceAnonymizer.script", 267, 260, 6, 7, 293),
    ):
        _check_reference_script(*row)
    _check_example_script_mappings()
    _check_service_script_mappings()


def _check_reference_script(
    name: str, rules_in: int, converted: int, approximate: int, unmapped: int, entries: int
) -> None:
    text = read_script(name)
    config, report = convert_header_script(text)
    enabled = len(re.findall(r'<[erk] en="T"', text))
    disabled = len(re.findall(r'<[erk] en="F"', text))
    assert report.rules_in == enabled == rules_in
    assert report.skipped == disabled
    assert report.converted == converted
    assert report.converted + len(report.unmapped) == report.rules_in
    assert (len(report.approximate), len(report.unmapped)) == (approximate, unmapped)
    assert report.entries_out == len(config["phi_tags"]) + len(config["keep"]) == entries
    by_function = report.functions
    assert sum(sum(v.values()) for v in by_function.values()) == report.rules_in
    cfg = load_config(config)
    assert len(cfg.phi_tags) + len(cfg.keep) == entries


def _check_example_script_mappings() -> None:
    config, report = convert_header_script(read_script("example-ctp-dicom-anonymizer.script"))
    cfg = load_config(config)
    assert cfg.uid_root == "1.2.840.113654.2.70.1"  # <p t="UIDROOT">
    assert (cfg.date_jitter.min_days, cfg.date_jitter.max_days) == (-3210, -3210)  # DATEINC
    assert cfg.remove_private_tags is True
    actions = {tag: rule.action for tag, rule in cfg.phi_tags.items()}
    assert actions["00080080"] is TagAction.REMOVE  # @remove()
    assert actions["00080090"] is TagAction.EMPTY  # @empty()
    assert actions["00080018"] is TagAction.REMAP  # @hashuid(@UIDROOT,this)
    assert actions["00080020"] is TagAction.SHIFT  # @incrementdate(this,@DATEINC)
    assert actions["00080050"] is TagAction.HASH  # @hash(this,16)
    assert actions["00100010"] is TagAction.HASH  # @hashname(this,6,2)
    assert cfg.phi_tags["00080080"].name == "InstitutionName"
    assert "0008103E" in cfg.keep and "00080070" in cfg.keep  # @keep()
    assert "00080008" not in actions and "00080008" not in cfg.keep  # en="F": skipped
    assert report.functions["@remove"] == {"mapped": 184, "approximate": 0, "unmapped": 0}
    assert report.functions["@keep"]["mapped"] == 37
    assert (
        report.functions["@hashuid"]["mapped"] == report.functions["@incrementdate"]["mapped"] == 25
    )
    assert report.functions["@always"] == {"mapped": 0, "approximate": 3, "unmapped": 1}
    (process,) = report.unmapped
    assert process.function == "@always" and process.line == 1014
    assert "sequence" in process.reason and "basic profile" in process.reason
    # written by Gantry itself, never as a phi_tags entry
    builtin = {i.rule[:11] for i in report.approximate if "on export" in i.reason}
    assert builtin == {"(0012,0062)", "(0012,0063)", "(0012,0064)", "(0028,0303)"}
    assert not {"00120062", "00120063", "00120064", "00280303"} & set(actions)


def _check_service_script_mappings() -> None:
    config, report = convert_header_script(read_script("DicomServiceAnonymizer.script"))
    cfg = load_config(config)
    assert "uid_root" not in config  # UIDROOT 9999 is not a usable root: default kept, reported
    assert any(i.rule.startswith("UID root '9999'") and i.line == 9 for i in report.approximate)
    assert "date_jitter" not in config  # @hashdate only: per-patient offsets from the default range
    assert cfg.phi_tags["00080020"].action is TagAction.SHIFT
    assert report.functions["@hashdate"]["mapped"] == 28
    # <k en="T" t="0018">: profile-changed tags of the group are kept, scripted ones win
    assert "00181042" in cfg.keep  # ContrastBolusStartTime: not scripted, the profile removes it
    assert cfg.phi_tags["00181000"].action is TagAction.REMOVE  # DeviceSerialNumber: scripted
    assert cfg.phi_tags["00181012"].action is TagAction.SHIFT  # scripted @hashdate
    assert "00181012" not in cfg.keep
    assert "00180015" in cfg.keep  # @require() → KEEP (approximate)
    unmapped = {(i.rule[:11], i.function) for i in report.unmapped}
    assert ("(0040,a075)", "@if") in unmapped and ("(0040,a123)", "@if") in unmapped
    assert {r for r, _ in unmapped if r.startswith("(0013,")} == {
        "(0013,0010)",
        "(0013,1010)",
        "(0013,1011)",
        "(0013,1012)",
        "(0013,1013)",
    }
    assert any("keep group 0018" in n for n in report.notes)


# -- one function at a time ---------------------------------------------------------------------

_PARAMS = '<p t="DATEINC">-30</p><p t="SITEID">7</p><p t="UIDROOT">1.2.3</p><p t="X">a{b}</p>\n'


@pytest.mark.parametrize(
    ("element", "action", "value", "outcome"),
    [
        ('<e en="T" t="00080080" n="InstitutionName">@remove()</e>', "REMOVE", None, "mapped"),
        ('<e en="T" t="00080090" n="Ref">@empty()</e>', "EMPTY", None, "mapped"),
        ('<e en="T" t="00081030" n="StudyDescription">@keep()</e>', "keep", None, "mapped"),
        ('<e en="T" t="00080060" n="Modality">@require()</e>', "keep", None, "approximate"),
        ('<e en="T" t="0020000d" n="Study">@hashuid(@UIDROOT,this)</e>', "REMAP", None, "mapped"),
        (
            '<e en="T" t="00080020" n="StudyDate">@incrementdate(this,@DATEINC)</e>',
            "SHIFT",
            None,
            "mapped",
        ),
        (
            '<e en="T" t="00080020" n="StudyDate">@hashdate(this,PatientID)</e>',
            "SHIFT",
            None,
            "mapped",
        ),
        (
            '<e en="T" t="00100020" n="PatientID">@hashptid(@SITEID,PatientID,8)</e>',
            "HASH",
            None,
            "mapped",
        ),
        ('<e en="T" t="00100020" n="PatientID">@hash(this,10)</e>', "HASH", None, "mapped"),
        ('<e en="T" t="00081030" n="S">@param(@X)</e>', "REPLACE", "a{{b}}", "mapped"),
        ('<e en="T" t="00081030" n="S">Study {1}</e>', "REPLACE", "Study {{1}}", "mapped"),
        ('<e en="T" t="00081030" n="S">@always()Anon</e>', "REPLACE", "Anon", "approximate"),
        ('<e en="T" t="00081030" n="S">@blank(4)</e>', "EMPTY", None, "approximate"),
        ('<e en="T" t="00081030" n="S"></e>', "EMPTY", None, "approximate"),
    ],
)
def test_function_mapping(element: str, action: str, value: str | None, outcome: str) -> None:
    config, report = one(element, params=_PARAMS)
    tag = re.search(r't="(\w{4})(\w{4})"', element)
    assert tag is not None
    key = f"{tag.group(1)},{tag.group(2)}".upper()
    if action == "keep":
        assert config["keep"] == [key] and config["phi_tags"] == {}
    else:
        rule = config["phi_tags"][key]
        assert (rule["action"], rule.get("value")) == (action, value)
    assert sum(v[outcome] for v in report.functions.values()) == 1
    assert report.unmapped == []
    load_config(config)
    if "@incrementdate" in element:
        assert config["date_jitter"] == {"min_days": -30, "max_days": -30}
    if "@hashuid" in element:
        assert config["uid_root"] == "1.2.3"


@pytest.mark.parametrize(
    ("script", "function", "reason"),
    [
        ("@lookup(this,ptid)", "@lookup", "lookup table"),
        ("@date()", "@date", "run-time date"),
        ("@time()", "@time", "run-time time"),
        ("@initials(this)", "@initials", "initials"),
        ("@round(this,5)", "@round", "rounding"),
        ("@modifydate(this,*,1,1)", "@modifydate", "date parts"),
        ("@skip()", "@skip", "object-level"),
        ("@quarantine()", "@quarantine", "object-level"),
        ("@always()@process()", "@always", "sequence"),
        ("@if(this,isblank){@remove()}{gone}", "@if", "conditional"),
        ("@encrypt(this,key)", "@encrypt", "encryption"),
        ("@frobnicate(this)", "@frobnicate", "no Gantry equivalent"),
        ("@hash(PatientID,8)", "@hash", "another element"),
        ("@param(@NOPE)", "@param", "not defined"),
        ("A\\B", "literal", "several values"),
        ("@hashuid(@UIDROOT,this)", "@hashuid", "REMAP needs a UID"),
        ("@incrementdate(this,@DATEINC)", "@incrementdate", "SHIFT needs a date"),
        ("@param(@SITEID)-@hash(this,4)", "@param", "several functions"),
    ],
)
def test_unmapped_functions_are_listed_with_reason(script: str, function: str, reason: str) -> None:
    element = f'<e en="T" t="00101000" n="OtherPatientIDs">{script}</e>'
    config, report = one(element, params=_PARAMS)
    (item,) = report.unmapped
    assert (item.function, item.line) == (function, 3)
    assert reason in item.reason
    assert "profile" in item.reason  # what happens instead
    assert item.rule.startswith("(0010,1000) OtherPatientIDs: ")
    assert config["phi_tags"] == {} and report.converted == 0
    load_config(config)


def test_disabled_rules_are_counted_not_converted() -> None:
    config, report = one(
        '<e en="F" t="00080080" n="I">@remove()</e>\n<e en="F" t="00080081" n="A">@keep()</e>',
        extra='<r en="F" t="privategroups">Remove private groups</r>\n<k en="F" t="0018">k</k>\n',
    )
    assert (report.rules_in, report.skipped, report.converted) == (0, 4, 0)
    assert config["phi_tags"] == {} and config["keep"] == []
    assert config["remove_private_tags"] is False  # CTP keeps private groups then
    load_config(config)


def test_group_rules() -> None:
    config, report = one(
        '<e en="T" t="00181030" n="ProtocolName">@remove()</e>',
        extra=(
            '<k en="T" t="0018">Keep group 0018</k>\n'
            '<k en="T" t="safeprivateelements">k</k>\n'
            '<r en="T" t="privategroups">r</r>\n<r en="T" t="curves">r</r>\n'
            '<r en="T" t="overlays">r</r>\n<r en="T" t="unspecifiedelements">r</r>\n'
        ),
    )
    cfg = load_config(config)
    assert cfg.phi_tags["00181030"].action is TagAction.REMOVE  # explicit rule beats the keep group
    assert "00181030" not in cfg.keep and "00181000" in cfg.keep
    assert all(t.startswith("0018") for t in cfg.keep)
    assert cfg.remove_private_tags is True
    assert report.functions["<r> curves"]["mapped"] == 1
    assert report.functions["<r> overlays"]["approximate"] == 1
    assert {i.function for i in report.unmapped} == {
        "<k> safeprivateelements",
        "<r> unspecifiedelements",
    }


def test_several_increments_use_the_first() -> None:
    config, report = one(
        '<e en="T" t="00080020" n="StudyDate">@incrementdate(this,-10)</e>\n'
        '<e en="T" t="00080021" n="SeriesDate">@incrementdate(this,-20)</e>'
    )
    assert config["date_jitter"] == {"min_days": -10, "max_days": -10}
    (item,) = report.approximate
    assert item.line == 3 and "shifted by -10 days" in item.reason


# -- errors -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "line", "expected"),
    [
        (
            '<script>\n <e en="T" t="00080080">@remove()</e>\n <e en="T" t="1">\n</script>',
            4,
            "well-formed XML",
        ),
        (
            '<script>\n <p t="A">1</p>\n <e en="T" t="0008">@remove()</e>\n</script>',
            3,
            "8 hex digits",
        ),
        ('<script>\n\n <e en="T" t="00080080">@hash(this,4</e>\n</script>', 3, "')' closing '('"),
        ("<rules>\n</rules>", 1, "the root element <script>"),
        ('<!DOCTYPE s [<!ENTITY x "y">]>\n<script>&x;</script>', 1, "without a DOCTYPE"),
    ],
)
def test_malformed_scripts_name_the_line(text: str, line: int, expected: str) -> None:
    with pytest.raises(CTPScriptError) as info:
        convert_header_script(text)
    assert info.value.line == line
    assert expected in str(info.value)
    assert str(info.value).startswith(f"`line {line}, column ")
