"""Config v2: defaults, round trips, the template, typed results."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest
import yaml

from gantry.config import (
    DEFAULT_CONFIG_YAML,
    AgePolicy,
    Config,
    Machine,
    MachineMatch,
    Pseudonym,
    SafePrivateTag,
    TagAction,
    load_config,
    write_default_config,
)
from gantry.profiles import Action, ProfileOption

FULL = {
    "version": 2,
    "privacy_profile": "research",
    "options": ["retain-safe-private", "retain-device-identity"],
    "date_jitter": {"min_days": -30, "max_days": 30},
    "remove_private_tags": True,
    "safe_private_tags": [
        {"creator": "SIEMENS CSA HEADER", "elements": ["0029,xx08", "(0029,XX09)"]}
    ],
    "phi_tags": {
        "0010,0010": {"action": "REPLACE", "name": "PatientName", "value": "ANON_{id}"},
        "(0008,1030)": {"action": "keep"},
        "00080020": {"action": "SHIFT", "name": "StudyDate"},
        "0020,000D": {"action": "REMAP"},
        "0010,0020": {"action": "HASH"},
    },
    "keep": ["0008,103E", "0008,103e"],
    "pseudonym": {"template": "P{id}-{hash}", "method": "counter", "width": 4, "hash_length": 8},
    "patient_name": "empty",
    "uid_root": "1.2.826.0.1.3680043.10.1234",
    "age": {"aggregate_over": None},
    "machines": [
        {
            "name": "Acme US",
            "match": {"manufacturer": "Acme", "model": "Sono", "rows": 480, "columns": 640},
            "redaction_zones": [[0, 40, 0, 640], [440, 480, 0, 100]],
            "fill": 0,
        },
        {
            "name": "Acme unit 7",
            "match": {"serial_number": 12345, "mode": "contains"},
            "redaction_zones": [],
            "fill": -1024,
        },
    ],
    "burned_in": {"exclude_without_zone": False},
}


def test_none_gives_defaults() -> None:
    cfg = load_config()
    assert cfg == Config()
    assert cfg.options == (ProfileOption.RETAIN_LONGITUDINAL_MODIFIED_DATES,)
    assert cfg.uid_root == "2.25" and cfg.patient_name == "pseudonym"
    assert cfg.age.cap_value == "090Y"
    assert load_config({}) == Config()


def test_default_config_round_trips(tmp_path: Path) -> None:
    path = write_default_config(tmp_path / "sub" / "gantry.yaml")
    assert path.is_file()
    assert load_config(path) == load_config(None)
    assert load_config(path).source == str(path)
    with pytest.raises(FileExistsError):
        write_default_config(path)
    path.write_text("version: 2\n")
    write_default_config(path, overwrite=True)
    assert path.read_text() == DEFAULT_CONFIG_YAML


def test_template_is_valid_yaml_and_explains_every_key() -> None:
    data = yaml.safe_load(DEFAULT_CONFIG_YAML)
    assert isinstance(data, dict)
    assert load_config(data) == Config()
    assert set(data) == set(Config().to_dict())
    # every top-level key comes right after its comment block, which names the
    # nested keys it has
    block: list[str] = []
    explained = {}
    for line in DEFAULT_CONFIG_YAML.splitlines():
        if line.startswith("#"):
            block.append(line)
        elif line and not line.startswith(" "):
            explained[line.split(":")[0]] = "\n".join(block)
            block = []
        elif not line:
            block = [] if not block or not block[-1].startswith("#") else block
    assert explained.keys() == data.keys()
    for key, value in data.items():
        assert explained[key], f"{key} has no comment"
        for nested in value if isinstance(value, dict) else ():
            assert nested in explained[key], f"{key}.{nested} is not explained"
    # the commented examples right under an empty `key: []` / `key: {}` are
    # valid config once uncommented
    out: list[str] = []
    in_example = False
    for line in DEFAULT_CONFIG_YAML.splitlines():
        if line.endswith((": []", ": {}")) and not line.startswith(" "):
            out.append(line.rsplit(":", 1)[0] + ":")
            in_example = True
        elif in_example and line.startswith("#  "):
            out.append(line[1:])
        else:
            in_example = False
            out.append(line)
    uncommented = "\n".join(out)
    example = yaml.safe_load(uncommented)
    example["options"].append("retain-safe-private")
    cfg = load_config(example)
    assert len(cfg.machines) == 2 and cfg.keep == ("0008103E",)


def test_full_config_is_typed_and_normalised() -> None:
    cfg = load_config(FULL)
    assert cfg.privacy_profile == "research"
    assert cfg.options == (ProfileOption.RETAIN_SAFE_PRIVATE, ProfileOption.RETAIN_DEVICE_IDENTITY)
    assert cfg.safe_private_tags == (
        SafePrivateTag("SIEMENS CSA HEADER", ("0029xx08", "0029xx09")),
    )
    assert list(cfg.phi_tags) == ["00080020", "00081030", "00100010", "00100020", "0020000D"]
    assert cfg.phi_tags["0010,0010"].action is TagAction.REPLACE
    assert cfg.phi_tags["0010,0010"].value == "ANON_{id}"
    assert cfg.phi_tags[0x00081030].action is TagAction.KEEP
    assert cfg.keep == ("0008103E",)
    assert cfg.pseudonym == Pseudonym("P{id}-{hash}", "counter", 4, 8)
    assert cfg.pseudonym.render(7, "abcdef0123456789") == "P0007-abcdef01"
    assert cfg.age == AgePolicy(None) and cfg.age.cap_value is None
    assert cfg.machines[0] == Machine(
        "Acme US",
        MachineMatch(manufacturer="Acme", model="Sono", rows=480, columns=640),
        ((0, 40, 0, 640), (440, 480, 0, 100)),
        0,
    )
    assert cfg.machines[1].match.serial_number == "12345"
    assert cfg.burned_in.exclude_without_zone is False
    hash(cfg)  # frozen and hashable
    with pytest.raises(AttributeError):
        cfg.uid_root = "2.25"  # type: ignore[misc]


def test_to_dict_round_trips() -> None:
    cfg = load_config(FULL)
    again = load_config(yaml.safe_load(yaml.safe_dump(cfg.to_dict())))
    assert again == cfg


def test_plan_letters() -> None:
    letters = {a.value: a.plan_action for a in TagAction}
    assert letters == {
        "REMOVE": "X",
        "EMPTY": "Z",
        "REPLACE": "R",
        "KEEP": "K",
        "HASH": "H",
        "SHIFT": "S",
        "DUMMY": "D",
        "CLEAN": "C",
        "REMAP": "U",
    }


def test_tag_overrides_frame() -> None:
    frame = load_config(FULL).tag_overrides()
    assert frame.columns == ["tag", "keyword", "action", "plan_action", "value", "rule"]
    by_tag = {r["tag"]: r for r in frame.iter_rows(named=True)}
    assert by_tag["00100010"]["plan_action"] == "R"  # phi_tags beats patient_name
    assert by_tag["0008103E"]["rule"] == "keep"
    assert by_tag["00080020"]["plan_action"] == "S"
    defaults = Config().tag_overrides()
    assert defaults.row(0, named=True)["plan_action"] == "P"


def test_private_tag_decisions() -> None:
    cfg = load_config(FULL)
    assert cfg.private_action("SIEMENS CSA HEADER", 0x00291008) is Action.K
    assert cfg.private_action("SIEMENS CSA HEADER ", "0029,1109") is Action.K
    assert cfg.private_action("SIEMENS CSA HEADER", 0x00291010) is Action.X
    assert cfg.private_action("OTHER", 0x00291008) is Action.X
    assert cfg.private_action("SIEMENS CSA HEADER", 0x00290008) is Action.X  # not a block
    keep_all = load_config({"remove_private_tags": False})
    assert keep_all.private_action(None, 0x00091001) is Action.K


def test_machine_match_expression() -> None:
    cfg = load_config(FULL)
    df = pl.DataFrame(
        {
            "Manufacturer": ["ACME ", "acme", None, "Acme"],
            "ManufacturerModelName": ["sono", "Sono", "Sono", "Sono 2"],
            "DeviceSerialNumber": ["x", "SN12345-B", None, None],
            "Rows": [480, 480, 480, 480],
            "Columns": [640, 512, 640, 640],
        }
    )
    hits = df.select(a=cfg.machines[0].match.expr(), b=cfg.machines[1].match.expr())
    assert hits["a"].to_list() == [True, False, False, False]
    assert hits["b"].to_list() == [False, True, False, False]


def test_profile_path_relative_to_config_file(tmp_path: Path) -> None:
    (tmp_path / "profiles").mkdir()
    (tmp_path / "profiles" / "site.yaml").write_text(
        "extends: basic\nrows:\n  - {pattern: '(0008,1030)', action: K}\n"
    )
    cfg_path = tmp_path / "gantry.yaml"
    cfg_path.write_text("privacy_profile: profiles/site.yaml\n")
    cfg = load_config(cfg_path)
    assert Path(cfg.privacy_profile).is_absolute()
    assert cfg.profile().action_for(0x00081030) is Action.K
    assert load_config(cfg.to_dict()) == cfg


def test_empty_sections_mean_empty(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("keep:\nmachines:\nphi_tags:\noptions:\n")
    cfg = load_config(path)
    assert cfg.keep == () and cfg.machines == () and len(cfg.phi_tags) == 0
    assert cfg.options == ()
    assert load_config(tmp_path / "c.yaml") == cfg
    empty = tmp_path / "empty.yaml"
    empty.write_text("# nothing\n")
    assert load_config(empty) == Config()


def test_missing_file() -> None:
    with pytest.raises(FileNotFoundError):
        load_config("/nonexistent/gantry.yaml")


def test_acknowledged_round_trips_and_changes_the_config_hash() -> None:
    from gantry.plan._coverage import config_hash

    cfg = load_config(
        {"acknowledged": [{"attribute": "ProtocolName", "value_hash": "0123456789ABCDEF"}]}
    )
    assert [(a.tag, a.value_hash) for a in cfg.acknowledged] == [("00181030", "0123456789abcdef")]
    assert load_config(cfg.to_dict()) == cfg
    assert config_hash(cfg) != config_hash(load_config({}))
