"""Loader behaviour: lookup, composition order, user profiles, codes."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from gantry.errors import ConfigError
from gantry.profiles import (
    Action,
    ProfileOption,
    available_profiles,
    load_profile,
    resolve_code,
)
from gantry.profiles._patterns import parse_pattern, parse_tag
from gantry.profiles._spec import _data_candidates


@pytest.mark.parametrize(
    ("tag", "expected"),
    [
        (0x00100010, "Z"),  # PatientName, exact
        ("0010,0020", "D"),  # PatientID as text, Z/D
        (0x00080018, "U"),  # SOPInstanceUID
        (0x00081140, "U"),  # ReferencedImageSequence, X/Z/U*
        (0x00080022, "Z"),  # AcquisitionDate, X/Z
        (0x60003000, "X"),  # OverlayData, repeating group 6000
        (0x601E4000, "X"),  # OverlayComments, repeating group 601E
        (0x50100200, "X"),  # curve data, 50xx,xxxx
        (0x00291008, "X"),  # private
        (0x60013000, "X"),  # odd group: private, not overlay data
        (0x00280010, None),  # Rows: no rule
        (0x60003001, None),  # not a listed overlay element
    ],
)
def test_action_for(tag: int | str, expected: str | None) -> None:
    action = load_profile("basic").action_for(tag)
    assert (None if action is None else action.value) == expected


def test_exact_beats_pattern_and_specific_beats_general(tmp_path: Path) -> None:
    own = tmp_path / "own.yaml"
    own.write_text(
        "extends: basic\n"
        "rows:\n"
        "  - {pattern: '(6002,3000)', action: K}\n"  # exact beats (60xx,3000)
        "  - {pattern: '(0029,xxxx)', action: Z}\n"  # beats the private row
        "  - {pattern: '(0029,10xx)', action: D}\n"  # more specific still
    )
    p = load_profile(own)
    assert p.action_for(0x60023000) is Action.K
    assert p.action_for(0x60043000) is Action.X
    assert p.action_for(0x00291008) is Action.D
    assert p.action_for(0x00291108) is Action.Z
    assert p.action_for(0x00311108) is Action.X
    tags = [0x60023000, 0x60043000, 0x00291008, 0x00291108, 0x00311108, 0x00280010]
    hits = p.match(pl.Series(tags, dtype=pl.UInt32))
    assert hits["action"].to_list() == [
        None if p.action_for(t) is None else str(p.action_for(t)) for t in tags
    ]


def test_match_agrees_with_action_for_on_every_row() -> None:
    p = load_profile("research", ["retain-uids"])
    values = p.table["tag_value"].to_list()
    tags = values + [v | 0x0100 for v in values] + [0x00091001, 0x50020010, 0x7FE00010]
    got = p.match(tags)["action"].to_list()
    for tag, action in zip(tags, got, strict=True):
        expected = p.action_for(tag)
        assert action == (None if expected is None else expected.value), hex(tag)


def test_composition_order_later_option_wins() -> None:
    dev, mod = "retain-device-identity", "retain-longitudinal-modified-dates"
    calibration_date = 0x00181200  # DateOfLastCalibration: device K, modified dates C
    assert load_profile("basic", [dev, mod]).action_for(calibration_date) is Action.C
    assert load_profile("basic", [mod, dev]).action_for(calibration_date) is Action.K
    source = load_profile("basic", [mod, dev]).table.filter(
        pl.col("keyword") == "DateOfLastCalibration"
    )["source"]
    assert source.to_list() == [dev]


def test_shadowed_option_is_dropped() -> None:
    full, mod = "retain-longitudinal-full-dates", "retain-longitudinal-modified-dates"
    p = load_profile("basic", [full, mod])
    assert p.options == (ProfileOption(mod),)
    assert p.action_for(0x00080020) is Action.C
    assert [c for c, _ in p.deidentification_codes] == ["113100", "113107"]
    # a repeated option counts at its last position
    q = load_profile("basic", [mod, full, mod])
    assert q.options == (ProfileOption(mod),)


def test_builtin_profiles() -> None:
    assert available_profiles() == ["basic", "comprehensive", "research"]
    comp = load_profile("comprehensive")
    assert comp.options == (
        ProfileOption.CLEAN_DESCRIPTORS,
        ProfileOption.CLEAN_STRUCTURED_CONTENT,
        ProfileOption.CLEAN_GRAPHICS,
    )
    assert comp.action_for(0x0008103E) is Action.C  # SeriesDescription cleaned
    research = load_profile("research")
    for keyword in ("PatientSex", "PatientAge", "PatientSize", "PatientWeight", "Modality"):
        row = research.table.filter(pl.col("keyword") == keyword)
        assert row["action"].to_list() == ["K"], keyword
    for tag in (0x00280030, 0x00180050, 0x00200037, 0x00200032, 0x00180060, 0x00180087):
        assert research.action_for(tag) is Action.K, hex(tag)
    assert research.action_for(0x00100010) is Action.Z  # still no name
    assert research.action_for(0x00080020) is Action.C  # dates shifted


def test_caller_options_come_after_the_profile_options() -> None:
    p = load_profile("research", ["retain-uids"])
    assert p.options[-1] is ProfileOption.RETAIN_UIDS
    assert p.action_for(0x0020000D) is Action.K


def test_user_profile_extends(tmp_path: Path) -> None:
    (tmp_path / "site").mkdir()
    parent = tmp_path / "site" / "parent.yaml"
    parent.write_text(
        "profile: site-parent\nextends: research\noptions: [retain-device-identity]\n"
        "rows:\n  - {pattern: '(0008,1030)', keyword: StudyDescription, action: K}\n"
    )
    child = tmp_path / "child.yaml"
    child.write_text(
        "extends: site/parent.yaml\n"
        "rows:\n"
        "  - {tag: '0008,1030', action: X}\n"
        "  - {pattern: '(0018,1000)', action: Z}\n"
        "  - {pattern: '(0009,0010)', code: 'X/Z', note: vendor creator}\n"
    )
    p = load_profile(child, ["retain-uids"])
    assert p.name == "child"
    assert p.options[-2:] == (ProfileOption.RETAIN_DEVICE_IDENTITY, ProfileOption.RETAIN_UIDS)
    assert p.action_for(0x00081030) is Action.X  # child beats parent
    assert p.action_for(0x00181000) is Action.Z  # child row beats the option's K
    assert p.action_for(0x00090010) is Action.Z  # compound code resolved
    assert p.action_for(0x00101010) is Action.K  # inherited from research
    row = p.table.filter(pl.col("pattern") == "(0018,1000)").row(0, named=True)
    assert (row["keyword"], row["basic_code"], row["source"]) == (
        "DeviceSerialNumber",
        "X/Z/D",
        "child",
    )
    assert load_profile(parent).name == "site-parent"


@pytest.mark.parametrize(
    ("text", "key", "fragment"),
    [
        ("extends: basci\n", "extends", "did you mean 'basic'?"),
        ("extends: basic\noptions: [retain-uid]\n", "options[0]", "did you mean 'retain-uids'?"),
        ("extends: basic\nrow: []\n", "row", "did you mean 'rows'?"),
        ("extends: basic\nrows:\n  - {pattern: '(0010,001G)', action: X}\n", "rows[0].pattern", ""),
        ("extends: basic\nrows:\n  - {pattern: '(0010,0010)', action: Q}\n", "rows[0].action", ""),
        ("extends: basic\nrows:\n  - {pattern: 00100010, action: X}\n", "rows[0].pattern", "quote"),
        (
            "extends: basic\nrows:\n  - {pattern: '(0010,0010)', keyword: PatientID, action: X}\n",
            "rows[0].keyword",
            "'PatientName'",
        ),
        ("extends: basic\nrows:\n  - {pattern: '(0010,0010)', acton: X}\n", "rows[0].acton", ""),
        ("extends: self.yaml\n", "extends", "cycle"),
        ("extends: retain-uids\n", "extends", "not an option"),
        ("extends: basic\nrows: [\n", "line 3", "valid YAML"),
    ],
)
def test_user_profile_errors(tmp_path: Path, text: str, key: str, fragment: str) -> None:
    path = tmp_path / "self.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_profile(path)
    assert info.value.key.startswith(key)
    assert fragment in str(info.value)
    assert info.value.source is not None and info.value.source.endswith("self.yaml")


def test_unknown_profile_and_option() -> None:
    with pytest.raises(ConfigError, match="did you mean 'research'"):
        load_profile("reserch")
    with pytest.raises(ConfigError, match="not an option"):
        load_profile("clean-graphics")
    with pytest.raises(ConfigError, match="did you mean 'clean-graphics'") as info:
        load_profile("basic", ["clean-graphic"])
    assert info.value.key == "options[0]"
    with pytest.raises(ConfigError, match="a list of option names"):
        load_profile("basic", "retain-uids")
    with pytest.raises(ConfigError, match="no such file"):
        load_profile("missing/profile.yaml")


def test_options_accept_enum_and_loose_spelling() -> None:
    a = load_profile("basic", [ProfileOption.RETAIN_UIDS, "CLEAN_GRAPHICS"])
    assert a.options == (ProfileOption.RETAIN_UIDS, ProfileOption.CLEAN_GRAPHICS)


def test_private_attributes() -> None:
    basic = load_profile("basic")
    assert basic.private_action(safe=True) is Action.X
    safe = load_profile("basic", ["retain-safe-private"])
    assert safe.action_for(0x00291008) is Action.C
    assert safe.private_action(safe=True) is Action.K
    assert safe.private_action(safe=False) is Action.X


def test_deidentification_codes() -> None:
    p = load_profile("research")
    assert p.deidentification_codes == [
        ("113100", "Basic Application Confidentiality Profile"),
        ("113103", "Clean Graphics Option"),
        ("113104", "Clean Structured Content Option"),
        ("113105", "Clean Descriptors Option"),
        ("113107", "Retain Longitudinal Temporal Information Modified Dates Option"),
        ("113108", "Retain Patient Characteristics Option"),
    ]
    codes = p.deidentification_codes_for(pixel_data_cleaned=True, visual_features_cleaned=True)
    assert [c for c, _ in codes][:3] == ["113100", "113101", "113102"]


def test_codes_match_pydicom_concept_dictionary() -> None:
    from pydicom.sr.codedict import codes

    by_name = {n.lower(): getattr(codes.DCM, n) for n in dir(codes.DCM) if n.endswith("Option")}
    for option in ProfileOption:
        code = by_name[option.meaning.replace(" ", "").lower()]
        assert (code.value, code.meaning) == (option.code, option.meaning)


@pytest.mark.parametrize(
    ("code", "action"),
    [("X", "X"), ("Z/D", "D"), ("X/Z", "Z"), ("X/D", "D"), ("X/Z/D", "D"), ("X/Z/U*", "U")],
)
def test_resolve_code(code: str, action: str) -> None:
    assert resolve_code(code) is Action(action)


def test_resolve_code_rejects_unknown() -> None:
    with pytest.raises(ValueError, match="unknown PS3.15 action code"):
        resolve_code("X/Q")


def test_patterns() -> None:
    assert parse_pattern("60XX,3000").text == "(60xx,3000)"
    assert parse_pattern("private").private
    assert parse_tag("0010,0010") == 0x00100010
    with pytest.raises(ValueError):
        parse_tag("0010,001")


def test_loading_is_cached() -> None:
    # a second load is a cache hit (the same object), not a new read: no timing assert,
    # which a loaded machine makes flaky
    first = load_profile("research", ["retain-uids"])
    assert load_profile("research", ["retain-uids"]) is first
    assert load_profile("research") is not first


def test_profile_is_not_mutated_through_table() -> None:
    p = load_profile("basic")
    t = p.table
    t.drop_in_place("action")
    assert "action" in p.table.columns


def test_data_dir_prefers_installed_layout(tmp_path: Path) -> None:
    pkg = tmp_path / "gantry" / "profiles"
    (pkg / "_data").mkdir(parents=True)
    (tmp_path / "profiles").mkdir()
    for folder in (pkg / "_data", tmp_path / "profiles"):
        (folder / "basic.yaml").write_text("profile: basic\n")
    assert _data_candidates(pkg)[0] == pkg / "_data"
    assert _data_candidates(pkg)[1] == tmp_path / "profiles"
