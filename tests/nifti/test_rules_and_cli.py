"""BIDS rules, argument errors, the missing extra, and the ``export-nifti`` verb."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from gantry import Session
from gantry.cli import cli
from gantry.errors import ConfigError, MissingDependencyError
from gantry.nifti import DEFAULT_BIDS_RULES, load_bids_rules
from gantry.nifti._rules import pick_rule
from gantry.testing import make_series


@pytest.mark.parametrize(
    ("description", "kind", "expected"),
    [
        ("T1 MPRAGE SAG", "3d", ("anat", "T1w")),
        ("AX T2 FLAIR", "3d", ("anat", "FLAIR")),
        ("t2_tse_tra", "3d", ("anat", "T2w")),
        ("ep2d_bold_rest", "4d", ("func", "bold")),
        ("DTI 30 dir", "dwi", ("dwi", "dwi")),
        ("localizer", "3d", None),
        ("ep2d_bold_rest", "3d", None),  # one volume is not a BOLD run
    ],
)
def test_default_rules(description: str, kind: str, expected: tuple[str, str] | None) -> None:
    values = {"Modality": "MR", "SeriesDescription": description, "kind": kind}
    n = pick_rule(DEFAULT_BIDS_RULES, values)
    got = None if n is None else (DEFAULT_BIDS_RULES[n].datatype, DEFAULT_BIDS_RULES[n].suffix)
    assert got == expected


def test_rules_file_is_read_and_first_match_wins(tmp_path: Path) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text(
        "bids_rules:\n"
        "  - match: {Modality: MR, SeriesDescription: '(?i)mprage'}\n"
        "    datatype: anat\n    suffix: T1w\n    entities: {acq: mprage}\n"
        "  - match: {Modality: MR}\n    datatype: anat\n    suffix: T2w\n"
    )
    rules = load_bids_rules(path)
    assert pick_rule(rules, {"Modality": "MR", "SeriesDescription": "T1 MPRAGE"}) == 0
    assert rules[0].entities == {"acq": "mprage"}
    assert pick_rule(rules, {"Modality": "MR", "SeriesDescription": "other"}) == 1
    assert pick_rule(rules, {"Modality": "CT", "SeriesDescription": "other"}) is None


@pytest.mark.parametrize(
    ("rules", "key"),
    [
        ([{"match": {"Modality": "MR"}, "datatype": "anat", "suffix": "T1 w"}], "bids_rules[0].suffix"),
        ([{"match": {"Modality": "MR"}, "datatype": "func", "suffix": "bold"}], "bids_rules[0].entities.task"),
        ([{"match": {"Colour": "MR"}, "datatype": "anat", "suffix": "T1w"}], "bids_rules[0].match.Colour"),
        ([{"match": {"Modality": "("}, "datatype": "anat", "suffix": "T1w"}], "bids_rules[0].match.Modality"),
        ([{"match": {"Modality": "MR"}, "datatype": "anat", "suffix": "T1w", "entities": {"sub": "x"}}], "bids_rules[0].entities.sub"),
        ([{"match": {}, "datatype": "anat", "suffix": "T1w"}], "bids_rules[0].match"),
        ({"rules": []}, "bids_rules"),
        ("missing.yaml", "bids_rules"),
    ],
)  # fmt: skip
def test_rule_mistakes_name_the_key(rules: object, key: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_bids_rules(rules)
    assert err.value.key == key
    assert str(err.value).startswith(f"`{key}` must be")


def test_bad_layout_fails_before_anything_is_written(tmp_path: Path) -> None:
    make_series(tmp_path / "in", kind="mr", slices=2, rows=4, columns=4)
    with Session(tmp_path / "s.db") as s:
        s.ingest(tmp_path / "in", workers=1, progress=False)
        with pytest.raises(
            ConfigError, match="`layout` must be one of 'bids', 'flat', got 'nested'"
        ):
            s.export_nifti(tmp_path / "out", layout="nested")
        with pytest.raises(ConfigError, match="bids_rules"):
            s.export_nifti(tmp_path / "out", rules=[{"match": {"Modality": "MR"}}])
    assert not (tmp_path / "out").exists()


def test_missing_nibabel_names_the_extra(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    make_series(tmp_path / "in", kind="mr", slices=2, rows=4, columns=4)
    monkeypatch.setitem(sys.modules, "nibabel", None)
    with Session(tmp_path / "s.db") as s:
        s.ingest(tmp_path / "in", workers=1, progress=False)
        with pytest.raises(MissingDependencyError, match=r"pip install 'gantry\[nifti\]'"):
            s.export_nifti(tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_cli_export_nifti(tmp_path: Path) -> None:
    pytest.importorskip("nibabel")
    make_series(tmp_path / "in" / "ct", kind="ct", seed=1)
    make_series(tmp_path / "in" / "t1", kind="mr", seed=2)
    make_series(tmp_path / "in" / "gap", kind="mr", gap_after=1, seed=3)
    db = str(tmp_path / "s.db")
    runner = CliRunner()
    r = runner.invoke(cli, ["ingest", str(tmp_path / "in"), "--db", db, "--workers", "1"])
    assert r.exit_code == 0, r.output
    r = runner.invoke(cli, ["export-nifti", str(tmp_path / "bids"), "--db", db, "-j", "1", "-q"])
    assert r.exit_code == 1, r.output  # the gap series was not converted
    assert "converted 1 of 3 series" in r.output and "unmatched 1" in r.output
    assert "NOT CONVERTED" in r.output and "slice spacing is not uniform" in r.output
    assert len(list((tmp_path / "bids").rglob("*_T1w.nii.gz"))) == 1
    rules = tmp_path / "rules.yaml"
    rules.write_text("bids_rules:\n  - {match: {Modality: CT}, datatype: anat, suffix: ct}\n")
    r = runner.invoke(cli, ["export-nifti", str(tmp_path / "ct"), "--db", db, "-j", "1", "-q",
                            "--rules", str(rules), "--query", "Modality = 'CT'"])  # fmt: skip
    assert r.exit_code == 0, r.output
    assert "converted 1 of 1 series" in r.output
    assert len(list((tmp_path / "ct").rglob("sub-*/ses-1/anat/*_ct.nii.gz"))) == 1
    bad = runner.invoke(cli, ["export-nifti", str(tmp_path / "x"), "--db", db, "--layout", "deep"])
    assert bad.exit_code == 2 and "deep" in bad.output
