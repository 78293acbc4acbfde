"""Every class of config mistake names its key path and says what was expected."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from gantry.config import load_config
from gantry.errors import ConfigError

SAFE = {"creator": "ACME", "elements": ["0029,xx08"]}
ZONE_MACHINE = {"name": "m", "match": {"model": "x", "rows": 100, "columns": 200}}


def _machine(zones: Any) -> dict[str, Any]:
    return {"machines": [{**ZONE_MACHINE, "redaction_zones": zones}]}


CASES: list[tuple[str, dict[str, Any], str, str]] = [
    # unknown keys, at any depth, with did-you-mean
    (
        "unknown-top",
        {"privacy_profil": "basic"},
        "privacy_profil",
        "did you mean 'privacy_profile'",
    ),
    ("unknown-nested", {"date_jitter": {"min_day": 1}}, "date_jitter.min_day", "'min_days'"),
    (
        "unknown-deep",
        {"machines": [{"name": "m", "match": {"manufactuer": "x"}}]},
        "machines[0].match.manufactuer",
        "did you mean 'manufacturer'",
    ),
    (
        "unknown-phi",
        {"phi_tags": {"0010,0010": {"actoin": "KEEP"}}},
        "phi_tags.0010,0010.actoin",
        "did you mean 'action'",
    ),
    ("unknown-pseudonym", {"pseudonym": {"templat": "{id}"}}, "pseudonym.templat", "'template'"),
    # wrong types
    ("type-bool", {"remove_private_tags": "yes please"}, "remove_private_tags", "true or false"),
    ("type-int", {"date_jitter": {"min_days": "5"}}, "date_jitter.min_days", "an integer"),
    ("type-bool-as-int", {"pseudonym": {"width": True}}, "pseudonym.width", "an integer"),
    ("type-list", {"machines": {"name": "m"}}, "machines", "a list"),
    ("type-keep", {"keep": "0008,103E"}, "keep", "a list"),
    ("type-mapping", {"age": 89}, "age", "a mapping"),
    ("type-options", {"options": "retain-uids"}, "options", "a list of option names"),
    ("range-width", {"pseudonym": {"width": 40}}, "pseudonym.width", "between 1 and 12"),
    ("version", {"version": 1}, "version", "config version 2"),
    # tags
    ("tag-bad-hex", {"keep": ["0008,103G"]}, "keep[0]", "a tag such as '0010,0010'"),
    ("tag-unquoted", {"keep": [100010]}, "keep[0]", "quote it"),
    (
        "tag-keyword",
        {"phi_tags": {"PatientName": {"action": "KEEP"}}},
        "phi_tags.PatientName",
        "'0010,0010'",
    ),
    (
        "tag-twice",
        {"phi_tags": {"0010,0010": {"action": "KEEP"}, "00100010": {"action": "EMPTY"}}},
        "phi_tags.00100010",
        "written twice",
    ),
    # keyword / tag mismatch
    (
        "name-mismatch",
        {"phi_tags": {"0010,0010": {"action": "KEEP", "name": "PatientID"}}},
        "phi_tags.0010,0010.name",
        "'PatientName', the keyword of (0010,0010)",
    ),
    (
        "name-unknown",
        {"phi_tags": {"0010,0010": {"action": "KEEP", "name": "PatientNmae"}}},
        "phi_tags.0010,0010.name",
        "not a DICOM keyword",
    ),
    (
        "name-other-tag",
        {"phi_tags": {"0009,1001": {"action": "KEEP", "name": "PatientID"}}},
        "phi_tags.0009,1001.name",
        "PatientID is (0010,0020)",
    ),
    # actions
    (
        "action-unknown",
        {"phi_tags": {"0010,0010": {"action": "REPLAC"}}},
        "phi_tags.0010,0010.action",
        "did you mean 'REPLACE'",
    ),
    (
        "action-replace-no-value",
        {"phi_tags": {"0010,0010": {"action": "REPLACE"}}},
        "phi_tags.0010,0010.value",
        "required by REPLACE",
    ),
    (
        "action-value-not-replace",
        {"phi_tags": {"0010,0010": {"action": "KEEP", "value": "x"}}},
        "phi_tags.0010,0010.value",
        "only REPLACE takes a value",
    ),
    (
        "action-shift-not-date",
        {"phi_tags": {"0010,0010": {"action": "SHIFT"}}},
        "phi_tags.0010,0010.action",
        "has VR PN",
    ),
    (
        "action-remap-not-uid",
        {"phi_tags": {"0008,0020": {"action": "REMAP"}}},
        "phi_tags.0008,0020.action",
        "REMAP only on a UID",
    ),
    (
        "keep-conflict",
        {"phi_tags": {"0008,103E": {"action": "REMOVE"}}, "keep": ["0008,103E"]},
        "keep[0]",
        "phi_tags says REMOVE",
    ),
    # options and profiles
    ("option-unknown", {"options": ["retain-uid"]}, "options[0]", "did you mean 'retain-uids'"),
    ("profile-unknown", {"privacy_profile": "comprehensiv"}, "privacy_profile", "'comprehensive'"),
    ("profile-is-option", {"privacy_profile": "retain-uids"}, "privacy_profile", "not an option"),
    (
        "profile-missing-file",
        {"privacy_profile": "nope/site.yaml"},
        "privacy_profile",
        "no such file",
    ),
    ("patient-name", {"patient_name": "pseudonyms"}, "patient_name", "did you mean 'pseudonym'"),
    # ranges
    (
        "jitter-order",
        {"date_jitter": {"min_days": 10, "max_days": -10}},
        "date_jitter.min_days",
        "at most max_days (-10)",
    ),
    ("jitter-zero", {"date_jitter": {"min_days": 0, "max_days": 0}}, "date_jitter", "0..0"),
    ("age-range", {"age": {"aggregate_over": 0}}, "age.aggregate_over", "between 1 and 998"),
    # zones
    ("zone-three", _machine([[0, 1, 2]]), "machines[0].redaction_zones[0]", "4 integers"),
    ("zone-float", _machine([[0, 1.5, 2, 3]]), "machines[0].redaction_zones[0]", "4 integers"),
    (
        "zone-rows",
        _machine([[5, 5, 0, 3]]),
        "machines[0].redaction_zones[0]",
        "row_start < row_end",
    ),
    (
        "zone-cols",
        _machine([[0, 5, 9, 3]]),
        "machines[0].redaction_zones[0]",
        "col_start < col_end",
    ),
    ("zone-negative", _machine([[-1, 5, 0, 3]]), "machines[0].redaction_zones[0]", "not negative"),
    ("zone-outside", _machine([[0, 101, 0, 3]]), "machines[0].redaction_zones[0]", "rows = 100"),
    ("zone-wide", _machine([[0, 1, 0, 201]]), "machines[0].redaction_zones[0]", "columns = 200"),
    (
        "zone-index",
        _machine([[0, 1, 0, 1], [0, 1, 0, 1], "top"]),
        "machines[0].redaction_zones[2]",
        "4 integers",
    ),
    ("machine-no-match", {"machines": [{"name": "m"}]}, "machines[0].match", "serial_number"),
    (
        "machine-empty-match",
        {"machines": [{"name": "m", "match": {"mode": "contains"}}]},
        "machines[0].match",
        "at least one of",
    ),
    (
        "machine-mode",
        {"machines": [{"name": "m", "match": {"model": "x", "mode": "like"}}]},
        "machines[0].match.mode",
        "'equals', 'contains'",
    ),
    (
        "machine-dup",
        {
            "machines": [
                {"name": "A", "match": {"model": "x"}},
                {"name": "a", "match": {"model": "y"}},
            ]
        },
        "machines[1].name",
        "also machines[0]",
    ),
    # UID roots
    ("uid-trailing-dot", {"uid_root": "1.2.3."}, "uid_root", "trailing '.'"),
    ("uid-leading-zero", {"uid_root": "1.2.03"}, "uid_root", "leading zeros"),
    ("uid-letters", {"uid_root": "1.2.abc"}, "uid_root", "digits and dots only"),
    ("uid-first-arc", {"uid_root": "3.1"}, "uid_root", "first arc"),
    ("uid-one-arc", {"uid_root": "2"}, "uid_root", "a UID root"),
    ("uid-long", {"uid_root": "1.2." + ".".join(["12345"] * 7)}, "uid_root", "too few digits"),
    ("uid-float", {"uid_root": 2.25}, "uid_root", "quote it"),
    # templates
    (
        "tpl-case",
        {"pseudonym": {"template": "ANON_{ID}"}},
        "pseudonym.template",
        "did you mean '{id}'",
    ),
    ("tpl-unknown", {"pseudonym": {"template": "ANON_{name}"}}, "pseudonym.template", "{name}"),
    (
        "tpl-spec",
        {"pseudonym": {"template": "ANON_{id:04d}"}},
        "pseudonym.template",
        "pseudonym.width",
    ),
    ("tpl-none", {"pseudonym": {"template": "ANON"}}, "pseudonym.template", "same pseudonym"),
    ("tpl-brace", {"pseudonym": {"template": "ANON_{id"}}, "pseudonym.template", "literal braces"),
    ("tpl-backslash", {"pseudonym": {"template": "A\\{id}"}}, "pseudonym.template", "backslash"),
    (
        "tpl-long",
        {"pseudonym": {"template": "X" * 60 + "{hash}"}},
        "pseudonym.template",
        "at most 64",
    ),
    (
        "tpl-phi",
        {"phi_tags": {"0010,0010": {"action": "REPLACE", "value": "P_{patient}"}}},
        "phi_tags.0010,0010.value",
        "{patient}",
    ),
    # private tags
    (
        "safe-no-option",
        {"safe_private_tags": [SAFE]},
        "safe_private_tags",
        "add 'retain-safe-private'",
    ),
    (
        "safe-block",
        {
            "options": ["retain-safe-private"],
            "safe_private_tags": [{"creator": "A", "elements": ["0029,1008"]}],
        },
        "safe_private_tags[0].elements[0]",
        "'0029,xx08'",
    ),
    (
        "safe-even",
        {
            "options": ["retain-safe-private"],
            "safe_private_tags": [{"creator": "A", "elements": ["0028,xx08"]}],
        },
        "safe_private_tags[0].elements[0]",
        "not a private group",
    ),
    (
        "safe-no-creator",
        {"options": ["retain-safe-private"], "safe_private_tags": [{"elements": ["0029,xx08"]}]},
        "safe_private_tags[0].creator",
        "private creator",
    ),
    # acknowledged false alarms of verification
    ("ack-list", {"acknowledged": "x"}, "acknowledged", "a list"),
    (
        "ack-attribute",
        {"acknowledged": [{"attribute": "Nope", "value_hash": "0123456789abcdef"}]},
        "acknowledged[0].attribute",
        "'0010,0010'",
    ),
    (
        "ack-hash",
        {"acknowledged": [{"attribute": "PatientName", "value_hash": "xyz"}]},
        "acknowledged[0].value_hash",
        "16 hex digits",
    ),
    (
        "ack-unknown",
        {"acknowledged": [{"attribute": "PatientName", "value_hash": "0" * 16, "valu": 1}]},
        "acknowledged[0].valu",
        "known key",
    ),
]


@pytest.mark.parametrize(
    ("data", "key", "fragment"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_config_error(data: dict[str, Any], key: str, fragment: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(data)
    err = info.value
    assert err.key == key, str(err)
    assert fragment in str(err)
    assert str(err).startswith(f"`{key}` must be ")


def test_yaml_syntax_error_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "gantry.yaml"
    path.write_text("version: 2\nkeep:\n  - '0008,103E'\n options: []\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert info.value.key.startswith("line 4")
    assert "valid YAML" in str(info.value) and str(path) in str(info.value)


def test_repeated_key_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "gantry.yaml"
    path.write_text("phi_tags:\n  '0010,0010': {action: KEEP}\n  '0010,0010': {action: REMOVE}\n")
    with pytest.raises(ConfigError, match="not repeated") as info:
        load_config(path)
    assert info.value.key == "line 3"


def test_errors_in_a_file_name_the_file(tmp_path: Path) -> None:
    path = tmp_path / "gantry.yaml"
    path.write_text("date_jitter: {min_days: 3, max_days: 1}\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert info.value.source == str(path)


def test_error_in_user_profile_names_the_profile_file(tmp_path: Path) -> None:
    (tmp_path / "site.yaml").write_text(
        "extends: basic\nrows:\n  - {pattern: '(0010,0010)', action: Q}\n"
    )
    (tmp_path / "gantry.yaml").write_text("privacy_profile: site.yaml\n")
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path / "gantry.yaml")
    assert info.value.key == "rows[0].action"
    assert info.value.source is not None and info.value.source.endswith("site.yaml")


def test_unquoted_tag_key_in_yaml(tmp_path: Path) -> None:
    path = tmp_path / "gantry.yaml"
    path.write_text("keep: [00100010]\n")  # YAML 1.1 reads this as an octal integer
    with pytest.raises(ConfigError, match="quote it"):
        load_config(path)


@pytest.mark.parametrize(
    "data",
    [
        b"\xff\xfe\x00\x01\x02binary",
        b"privacy_profile: basic\n\x00\x00",
        "clé: 1".encode("latin-1"),
    ],
)
def test_binary_or_non_utf8_config_is_a_config_error(tmp_path, data: bytes) -> None:  # type: ignore[no-untyped-def]
    from gantry.config import load_config
    from gantry.errors import ConfigError

    path = tmp_path / "gantry.yaml"
    path.write_bytes(data)
    with pytest.raises(ConfigError, match="UTF-8 text") as info:
        load_config(path)
    assert str(path) in str(info.value)


def test_flat_machine_form_and_its_mistakes() -> None:
    cfg = load_config(
        {
            "machines": [
                {"serial_number": 12345, "redaction_zones": [[0, 8, 0, 8]]},
                {"model_name": "Sono", "manufacturer": "Acme", "mode": "contains"},
                {"serial_number": "12345"},
            ]
        }
    )
    first, second, third = cfg.machines
    assert (first.name, first.match.serial_number) == ("12345", "12345")
    assert (second.name, second.match.model, second.match.mode) == ("Sono", "Sono", "contains")
    assert third.name == "12345 (machines[2])"  # defaults never collide
    with pytest.raises(ConfigError) as info:
        load_config({"machines": [{"serial_number": "A", "match": {"model": "B"}}]})
    assert info.value.key == "machines[0].serial_number"
    assert "not both" in str(info.value)
    with pytest.raises(ConfigError) as info:
        load_config({"machines": [{"model": "A", "model_name": "B"}]})
    assert info.value.key == "machines[0].model_name"
    with pytest.raises(ConfigError) as info:
        load_config({"machines": [{"redaction_zones": [[0, 8, 0, 8]]}]})
    assert info.value.key == "machines[0].match"
