"""preview: the dry run counts what the profile and config say, before anything is written."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from gantry import Session
from gantry.audit import preview
from gantry.profiles import load_profile
from gantry.testing import make_instance

BASIC = {"privacy_profile": "basic", "options": []}


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("preview")
    for i, modality in enumerate(("CT", "CT", "MR", "US")):
        make_instance(root / "dicom" / f"{i}.dcm", modality=modality, seed=i)
    with Session(root / "p.db") as s:
        s.ingest(root / "dicom", workers=1, progress=False)
    return root / "p.db"


def test_actions_are_the_profiles(db: Path) -> None:
    profile = load_profile("basic")
    with Session(db, read_only=True) as s:
        everything = s.preview(BASIC)
    counts = everything.filter(~pl.col("rule").str.starts_with("ocr"))
    # the US instance has a burned-in text risk that nothing resolves yet
    ocr = everything.filter(pl.col("rule").str.starts_with("ocr"))
    assert ocr.select("rule", "tag", "instances").rows() == [("ocr:needs-scan", "7FE00010", 1)]
    from_profile = counts.filter(pl.col("rule").str.starts_with("("))
    assert from_profile.height > 30
    for tag, action in from_profile.select("tag", "action").iter_rows():
        assert str(profile.action_for(tag)) == action, tag
    assert set(counts["action"]) <= {"X", "Z", "D", "U", "P"}
    assert (counts["elements"] >= counts["instances"]).all()


def test_counts_are_the_elements(db: Path) -> None:
    with Session(db, read_only=True) as s:
        counts = s.preview(BASIC, include_kept=True)
        counts = counts.filter(~pl.col("rule").str.starts_with("ocr"))  # images, not elements
        per_tag = s.sql(
            "SELECT tag, count(*) AS n, count(DISTINCT file_id) AS f FROM elements"
            " WHERE tag NOT LIKE '0002%' GROUP BY tag"
        )
        total = s.sql("SELECT count(*) AS n FROM elements WHERE tag NOT LIKE '0002%'").item()
        n_files = s.sql("SELECT count(*) FROM instances").item()
    assert counts["elements"].sum() == total  # every element counted once
    summed = counts.group_by("tag").agg(pl.col("elements").sum())
    assert dict(summed.iter_rows()) == dict(per_tag.select("tag", "n").iter_rows())
    name = counts.filter(pl.col("tag") == "00100010")
    assert name.select("rule", "action", "elements").rows() == [("patient_name", "P", n_files)]
    pid = counts.filter((pl.col("tag") == "00100020") & (pl.col("rule") == "pseudonym"))
    assert pid["elements"].to_list() == [n_files]


def test_removed_sequences_take_their_items(db: Path) -> None:
    with Session(db, read_only=True) as s:
        counts = s.preview(BASIC)
        # RequestAttributesSequence (0040,0275) is removed (X): so is everything in it
        inside = s.sql(
            "SELECT tag, count(*) AS n FROM elements WHERE path LIKE '00400275[%' GROUP BY tag"
        )
    covered = counts.filter(pl.col("rule") == "sequence")
    assert set(covered["action"]) == {"X"}
    assert inside.height >= 4
    got = dict(covered.select("tag", "elements").iter_rows())
    for tag, n in inside.iter_rows():
        assert got[tag] >= n  # other removed sequences may hold the same tag


def test_config_overrides_and_redaction(db: Path) -> None:
    config = {
        **BASIC,
        "keep": ["0008,1030"],
        "phi_tags": {"0008,0070": {"action": "remove"}},
        "machines": [
            {
                "name": "us",
                "match": {"manufacturer": "Sonoria", "model": "Sonoria S8"},
                "redaction_zones": [[0, 8, 0, 64]],
            }
        ],
    }
    with Session(db, read_only=True) as s:
        counts = preview(s.store, config)
    assert counts.filter(pl.col("tag") == "00081030").is_empty()  # kept
    removed = counts.filter(pl.col("tag") == "00080070")
    assert removed.select("rule", "action", "effect").rows() == [("phi_tags", "X", "remove")]
    redact = counts.filter(pl.col("action") == "REDACT")
    assert redact.select("rule", "tag", "elements").rows() == [("machine:us", "7FE00010", 1)]
