"""The generated profiles against the standard's Table E.1-1, row by row."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest

from gantry.profiles import Action, ProfileOption, load_profile
from gantry.profiles._patterns import parse_pattern
from gantry.profiles._spec import data_dir

REPO = Path(__file__).resolve().parents[2]
# the copy shipped in the repository (scripts/data/README.md): a clone needs nothing else
TABLE = REPO / "scripts" / "data" / "ps315_table_e1_1.json"
REFERENCE = REPO.parent / "shared" / "reference" / "ps315_table_e1_1.json"

# The documented rule (docs/profiles.md), written out independently of the code.
RULE = {
    "X": "X",
    "Z": "Z",
    "D": "D",
    "K": "K",
    "C": "C",
    "U": "U",
    "Z/D": "D",
    "X/Z": "Z",
    "X/D": "D",
    "X/Z/D": "D",
    "X/Z/U*": "U",
}


@pytest.fixture(scope="module")
def table_rows() -> list[dict[str, str]]:
    rows: list[dict[str, str]] = json.loads(TABLE.read_text(encoding="utf-8"))
    return rows


def _by_pattern(frame: pl.DataFrame) -> dict[str, dict[str, object]]:
    return {row["pattern"]: row for row in frame.iter_rows(named=True)}


def test_basic_covers_every_row_with_the_standard_action(table_rows: list[dict[str, str]]) -> None:
    profile = load_profile("basic")
    rows = _by_pattern(profile.table)
    assert len(table_rows) == 621
    assert profile.table.height == 621
    for raw in table_rows:
        pattern = parse_pattern(raw["tag"])
        row = rows[pattern.text]
        assert row["basic_code"] == raw["basicProfile"], raw["tag"]
        assert row["action"] == RULE[raw["basicProfile"]], raw["tag"]
        assert row["source"] == "basic"
        assert row["tag_value"] == pattern.value and row["tag_mask"] == pattern.mask


@pytest.mark.parametrize("option", list(ProfileOption), ids=lambda o: o.value)
def test_option_changes_exactly_its_column(
    option: ProfileOption, table_rows: list[dict[str, str]]
) -> None:
    base = _by_pattern(load_profile("basic").table)
    with_option = _by_pattern(load_profile("basic", [option]).table)
    expected = {
        parse_pattern(r["tag"]).text: r[option.column] for r in table_rows if r.get(option.column)
    }
    assert expected, "every option column has rows"
    assert with_option.keys() == base.keys()
    for pattern, row in with_option.items():
        if pattern in expected:
            assert row["source"] == option.value
            assert row["action"] == RULE[expected[pattern]]
            assert row["basic_code"] == base[pattern]["basic_code"]
        else:
            assert row == base[pattern], pattern


def test_committed_files_match_the_generator(tmp_path: Path) -> None:
    script = REPO / "scripts" / "gen_profiles.py"
    subprocess.run(
        [sys.executable, str(script), str(TABLE), "--out", str(tmp_path)],
        check=True,
        capture_output=True,
    )
    generated = sorted(p.name for p in tmp_path.glob("*.yaml"))
    assert len(generated) == 11
    for name in generated:
        committed = REPO / "profiles" / name
        assert committed.read_text(encoding="utf-8") == (tmp_path / name).read_text(
            encoding="utf-8"
        ), f"profiles/{name} is stale: re-run scripts/gen_profiles.py"


# sha256 of the reference table as canonical JSON (sorted keys): checked against the shipped
# copy in every clone, and against ../shared/reference/ itself where that is beside the clone
REFERENCE_SHA256 = "34235997011854aaa2fe215c9245a88bbb5658346cebd073993ee020aa44572d"


def _canonical_sha256(path: Path) -> str:
    text = json.dumps(json.loads(path.read_text(encoding="utf-8")), sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


def test_shipped_table_is_the_reference_table() -> None:
    assert _canonical_sha256(TABLE) == REFERENCE_SHA256
    if REFERENCE.is_file():  # CI has ../shared: the recorded hash is the reference's own
        assert _canonical_sha256(REFERENCE) == REFERENCE_SHA256


def test_generator_reads_the_shipped_table_by_default(tmp_path: Path) -> None:
    script = REPO / "scripts" / "gen_profiles.py"
    subprocess.run(
        [sys.executable, str(script), "--out", str(tmp_path)], check=True, capture_output=True
    )
    assert (tmp_path / "basic.yaml").read_text(encoding="utf-8") == (
        REPO / "profiles" / "basic.yaml"
    ).read_text(encoding="utf-8")


def test_every_file_records_the_edition() -> None:
    for path in data_dir().glob("*.yaml"):
        text = path.read_text(encoding="utf-8")
        if "GENERATED" in text:
            assert "# Edition:" in text and "snapshot 2025-01-28" in text, path.name
    assert "2025-01-28" in load_profile("basic").edition


def test_keywords_come_from_pydicom() -> None:
    rows = _by_pattern(load_profile("basic").table)
    assert rows["(0010,0010)"]["keyword"] == "PatientName"
    assert rows["(60xx,3000)"]["keyword"] == "OverlayData"
    assert rows["(50xx,xxxx)"]["keyword"] is None
    assert rows["(gggg,eeee) where gggg is odd"]["keyword"] is None


def test_table_schema() -> None:
    table = load_profile("basic").table
    assert table.columns == [
        "pattern",
        "tag_value",
        "tag_mask",
        "name",
        "keyword",
        "basic_code",
        "action",
        "source",
    ]
    assert table.schema["tag_value"] == pl.UInt32 and table.schema["tag_mask"] == pl.UInt32
    assert set(table["action"].unique()) <= {a.value for a in Action}
    private = table.filter(pl.col("name") == "Private Attributes")
    assert private["tag_value"].item() == 0x00010000 == private["tag_mask"].item()
    curve = table.filter(pl.col("pattern") == "(50xx,xxxx)")
    assert (curve["tag_value"].item(), curve["tag_mask"].item()) == (0x50000000, 0xFF000000)
