"""The audit on a synthetic archive with planted PHI (canaries) everywhere."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pydicom
import pytest

from gantry import Session
from gantry.audit import FINDINGS_SCHEMA, RULES, AuditReport, unresolved
from gantry.testing import Corpus, make_corpus
from gantry.testing._canaries import find_canaries


@pytest.fixture(scope="module")
def audited(tmp_path_factory: pytest.TempPathFactory) -> tuple[Corpus, Path, AuditReport]:
    root = tmp_path_factory.mktemp("canary")
    corpus = make_corpus(
        root / "dicom",
        patients=2,
        studies_per_patient=1,
        series_per_study=5,
        instances_per_series=1,
        modalities=("CT", "MR", "US", "CR", "SC"),
        canaries=True,
    )
    db = root / "project.db"
    with Session(db) as s:
        s.ingest(root / "dicom", workers=1, progress=False)
        report = s.audit()
    return corpus, db, report


def _findings(report: AuditReport) -> pl.DataFrame:
    return report.to_polars().with_columns(pl.col("path", "tag", "keyword").cast(pl.String))


def _file_ids(db: Path) -> dict[str, int]:
    with Session(db, read_only=True) as s:
        rows = s.sql("SELECT file_path, file_id FROM instances").iter_rows()
        return {str(Path(p).resolve()): int(f) for p, f in rows}


def test_every_canary_location_has_a_finding(audited: tuple[Corpus, Path, AuditReport]) -> None:
    corpus, db, report = audited
    ids = _file_ids(db)
    planted = [
        (ids[str(path.resolve())], where, token)
        for path in corpus.paths
        for token, paths in find_canaries(pydicom.dcmread(path)).items()
        for where in paths
    ]
    assert len({t for _, _, t in planted}) == len(corpus.canaries) > 50
    found = _findings(report).select("file_id", "path").unique()
    expected = pl.DataFrame(planted, schema=["file_id", "path", "token"], orient="row")
    missed = expected.join(found, on=["file_id", "path"], how="anti")
    assert missed.is_empty(), missed
    # the canonical place of every token, too
    assert set(corpus.canary_locations.values()) <= set(found["path"].to_list())


def test_every_element_holding_a_canary_has_a_finding(
    audited: tuple[Corpus, Path, AuditReport],
) -> None:
    _, db, report = audited
    with Session(db, read_only=True) as s:
        holding = s.sql(
            "SELECT file_id, path FROM elements WHERE regexp_matches(value, 'CNRY[0-9A-F]{8}')"
        )
    assert holding.height > 100
    missed = holding.join(_findings(report), on=["file_id", "path"], how="anti")
    assert missed.is_empty(), missed


@pytest.mark.parametrize(
    ("path", "rule"),
    [
        ("00080096[0].00401101[0].00080100", "profile-action"),  # depth 2, inside a removed SQ
        ("00400275[0].00401001", "profile-action"),  # depth 1
        ("00080051[0].00400031", "kept-identifier"),  # depth 1, kept by the Basic Profile
        ("00091001", "private-element"),  # private block copying the patient's name
        ("00091001", "text-patient-identity"),
        ("00091003", "private-element"),  # private UN bytes (hashed, not decoded)
        ("00204000", "text-patient-identity"),  # free text naming the patient
        ("001021B0", "text-patient-identity"),
        ("00100010", "person-name"),
    ],
)
def test_planted_phi_by_place(
    audited: tuple[Corpus, Path, AuditReport], path: str, rule: str
) -> None:
    _, db, report = audited
    # text rules read decoded values: a private element read with implicit VR is
    # UN (bytes, hashed), which only the private-element rule can flag
    decoded = "AND value IS NOT NULL" if rule.startswith("text-") else ""
    with Session(db, read_only=True) as s:
        holders = s.sql(f"SELECT DISTINCT file_id FROM elements WHERE path = ? {decoded}", [path])
    assert holders.height >= 8
    hits = _findings(report).filter((pl.col("path") == path) & (pl.col("rule") == rule))
    assert set(hits["file_id"]) == set(holders["file_id"])


def test_messages_never_quote_a_value(audited: tuple[Corpus, Path, AuditReport]) -> None:
    _, _, report = audited
    df = report.to_polars()
    text = pl.concat_str(pl.all().cast(pl.String), separator="|", ignore_nulls=True)
    assert not df.select(text.str.contains("CNRY").any()).item()
    assert not report.unresolved()["reason"].str.contains("CNRY").any()


def test_findings_schema_and_resolution(audited: tuple[Corpus, Path, AuditReport]) -> None:
    _, _, report = audited
    df = report.to_polars()
    assert df.schema == FINDINGS_SCHEMA
    assert set(df["rule"].cast(pl.String).unique()) <= set(RULES)
    # the default config removes or replaces every direct identifier the corpus holds
    assert df.filter(pl.col("rule") == "profile-action")["resolved"].all()
    assert df.filter(pl.col("rule") == "person-name")["resolved"].all()
    # only the burned-in risks (US, SC) stop an instance from being exported as clean
    un = report.unresolved()
    assert un["rule"].unique().to_list() == ["burned-in"]
    modality = df.filter(pl.col("rule") == "burned-in")["modality"].cast(pl.String)
    assert sorted(modality.unique()) == ["OT", "US"]  # secondary capture is Modality OT
    assert un["file_id"].n_unique() == 4


def test_summary_counts_match_the_findings(audited: tuple[Corpus, Path, AuditReport]) -> None:
    _, _, report = audited
    df = report.to_polars()
    for by in ("rule", "tag", "modality", "device", "severity"):
        summary = report.summary(by)
        assert summary["findings"].sum() == len(report) == df.height
        assert (summary["resolved"] + summary["unresolved"] == summary["findings"]).all()
        assert summary["findings"].is_sorted(descending=True)
    by_rule = dict(report.summary("rule").select("rule", "findings").iter_rows())
    expected = df.group_by(pl.col("rule").cast(pl.String)).len()
    assert by_rule == dict(expected.iter_rows())
    by_tag = report.summary("tag")
    assert by_tag.columns[:2] == ["tag", "keyword"]


def test_unresolved_function_matches_the_report(
    audited: tuple[Corpus, Path, AuditReport],
) -> None:
    _, db, report = audited
    with Session(db, read_only=True) as s:
        frame = unresolved(s.store, None)
    assert frame.schema == pl.Schema({"file_id": pl.Int64, "rule": pl.String, "reason": pl.String})
    assert frame.equals(report.unresolved())
    assert frame["reason"].str.starts_with("PixelData: burned-in text risk").all()


def test_save_analysis_round_trip(audited: tuple[Corpus, Path, AuditReport]) -> None:
    _, db, report = audited
    with Session(db) as s:
        written = s.save_analysis(report)
        back = s.sql("SELECT * FROM findings ORDER BY ALL")
        runs = s.sql("SELECT kind, counts FROM runs WHERE kind = 'audit'")
    assert written == len(report) == back.height
    original = report.to_polars().with_columns(pl.exclude("file_id", "resolved").cast(pl.String))
    assert back.columns == original.columns
    assert back.equals(original.sort(pl.all()))
    assert runs.height == 1 and f'"findings": {written}' in runs["counts"][0]
