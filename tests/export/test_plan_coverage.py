"""Export writes only what the plan covers (issue 19), as a user's sequence of calls.

Each test replays what a user types — in Python, and through the CLI where the
verb exists — and checks the files on disk: every byte is scanned for the
canaries planted in the originals.
"""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pydicom
import pytest
from click.testing import CliRunner

from gantry import Session
from gantry.cli import cli
from gantry.config import load_config
from gantry.export._apply import ExportItem, export_items
from gantry.testing import make_corpus, make_instance
from gantry.testing._canaries import CANARY_BYTES_RE


def _corpus(root: Path, seed: int) -> list[Path]:
    corpus = make_corpus(
        root,
        patients=2,
        studies_per_patient=1,
        series_per_study=2,
        instances_per_series=2,
        modalities=("CT", "MR"),
        compressed=False,
        multiframe=False,
        seed=seed,
        canaries=True,
    )
    return corpus.paths


def _written(dest: Path) -> list[Path]:
    return sorted(p for p in dest.rglob("*.dcm") if p.is_file())


def _assert_clean(dest: Path, originals: list[Path]) -> None:
    """No canary and no original UID anywhere in any byte of the export folder."""
    uids = set()
    for p in originals:
        ds = pydicom.dcmread(p, stop_before_pixels=True)
        uids |= {str(ds.SOPInstanceUID), str(ds.StudyInstanceUID), str(ds.SeriesInstanceUID)}
    for f in dest.rglob("*"):
        if f.is_file():
            data = f.read_bytes()
            assert not CANARY_BYTES_RE.search(data), f"canary in {f.name}"
            assert not any(u.encode() in data for u in uids), f"original UID in {f.name}"
            assert "UNKNOWN" not in f.relative_to(dest).parts


# -- 1. the plan covers what is exported ---------------------------------------------------


def test_ingest_anonymize_ingest_export_query_writes_only_planned(tmp_path: Path) -> None:
    """The reported leak: ingest A, anonymize, ingest B, export --query selecting B."""
    a = _corpus(tmp_path / "A", seed=1)
    b = _corpus(tmp_path / "B", seed=2)
    dest = tmp_path / "out"
    with Session(tmp_path / "s.db") as s:
        s.ingest(tmp_path / "A", workers=1, progress=False)
        s.anonymize()
        s.ingest(tmp_path / "B", workers=1, progress=False)
        r = s.export(dest, query=f"file_path LIKE '{tmp_path / 'B'}/%'", progress=False)
        assert r.ok and r.selected == len(b) and r.planned_again == len(b)
        assert r.exported + r.excluded.height == len(b)
        assert r.exported == len(_written(dest)) > 0
        planned = s.sql("SELECT DISTINCT file_id FROM plan")["file_id"].to_list()
        assert set(s.sql("SELECT file_id FROM exports")["file_id"]) <= set(planned)
    _assert_clean(dest, a + b)


def test_cli_ingest_anonymize_ingest_export_query_writes_only_planned(tmp_path: Path) -> None:
    a = _corpus(tmp_path / "A", seed=3)
    b = _corpus(tmp_path / "B", seed=4)
    db, dest = str(tmp_path / "s.db"), tmp_path / "out"
    runner = CliRunner()
    for argv in (
        ["ingest", str(tmp_path / "A"), "--db", db, "-q", "-j", "1"],
        ["anonymize", "--db", db],
        ["ingest", str(tmp_path / "B"), "--db", db, "-q", "-j", "1"],
    ):
        got = runner.invoke(cli, argv)
        assert got.exit_code == 0, got.output
    query = f"file_path LIKE '{tmp_path / 'B'}/%'"
    got = runner.invoke(cli, ["export", str(dest), "--db", db, "--query", query, "-q"])
    assert got.exit_code == 0, got.output
    assert f"planned again first: {len(b)} selected instances" in got.output
    assert f"exported {len(_written(dest))} files" in got.output
    assert len(_written(dest)) > 0
    _assert_clean(dest, a + b)


def test_strict_export_refuses_what_the_plan_does_not_cover(tmp_path: Path) -> None:
    _corpus(tmp_path / "A", seed=5)
    b = _corpus(tmp_path / "B", seed=6)
    with Session(tmp_path / "s.db") as s:
        s.ingest(tmp_path / "A", workers=1, progress=False)
        s.anonymize()
        s.ingest(tmp_path / "B", workers=1, progress=False)
        r = s.export(tmp_path / "out", safe=False, strict=True, progress=False, workers=1)
        refused = r.excluded.filter(r.excluded["reason"].str.contains("not planned"))
        assert refused.height == len(b)
        assert set(refused["reason"]) == {"not planned: indexed after the plan was built"}
        assert r.exported == len(_written(tmp_path / "out")) == r.selected - len(b)
    got = CliRunner().invoke(
        cli, ["export", str(tmp_path / "out2"), "--db", str(tmp_path / "s.db"), "--strict"]
    )  # not -q: that prints only the summary line, without the table of reasons
    assert got.exit_code == 0, got.output
    assert "not planned: indexed after the plan was built" in got.output


def test_an_edit_after_the_plan_is_planned_again_or_refused(tmp_path: Path) -> None:
    make_instance(tmp_path / "in" / "a.dcm", seed=1)
    make_instance(tmp_path / "in" / "b.dcm", seed=2)
    with Session(tmp_path / "s.db") as s:
        s.ingest(tmp_path / "in", workers=1, progress=False)
        s.anonymize()
        s.edit(where=None, set={"PatientComments": "CNRY0E0E0E0E"})
        s.save()
        strict = s.export(tmp_path / "strict", safe=False, strict=True, progress=False)
        assert strict.exported == 0
        assert set(strict.excluded["reason"]) == {"not planned: edited after the plan was built"}
        r = s.export(tmp_path / "out", safe=False, progress=False, workers=1)
        assert r.exported == 2 and r.ok
        rows = s.sql("SELECT action FROM plan WHERE keyword = 'PatientComments'")
        assert rows["action"].to_list() == ["X", "X"]  # the edited element is planned
    for f in _written(tmp_path / "out"):
        assert not CANARY_BYTES_RE.search(f.read_bytes())
        assert "PatientComments" not in pydicom.dcmread(f)


def test_compliance_flags_a_written_file_whose_instance_has_no_plan_rows(tmp_path: Path) -> None:
    """Verification on its own: the report reads the plan, not the export's word."""
    make_instance(tmp_path / "in" / "a.dcm", seed=1)
    make_instance(tmp_path / "in" / "b.dcm", seed=2)
    with Session(tmp_path / "s.db") as s:
        s.ingest(tmp_path / "in", workers=1, progress=False)
        s.anonymize()
        s.export(tmp_path / "out", safe=False, progress=False)
        assert s.compliance_report(tmp_path / "out").compliant
        victim = s.sql("SELECT min(file_id) AS f FROM plan")["f"][0]
        s.store.write_table("plan", s.table("plan").filter(pl.col("file_id") != victim).collect())
        report = s.compliance_report(tmp_path / "out")
    assert not report.compliant
    flagged = report.problems.filter(pl.col("detail").str.contains("written unplanned"))
    assert flagged.height == 1 and flagged["rule"][0] == "provenance"


def test_a_worker_refuses_an_item_without_plan_rows(tmp_path: Path) -> None:
    src = tmp_path / "a.dcm"
    make_instance(src, seed=1)
    item = ExportItem(file_id=1, src=str(src), out_rel="x/y.dcm", actions=[])
    (out,) = export_items([item], str(tmp_path / "out"))
    assert out.status == "failed" and out.reason.startswith("not planned")
    assert not (tmp_path / "out" / "x" / "y.dcm").exists()


# -- the remembered config ------------------------------------------------------------------

_RED = {
    "date_jitter": {"min_days": -30, "max_days": -10},
    "pseudonym": {"template": "RED_{id}"},
    "burned_in": {"exclude_without_zone": False},
}


def test_a_new_process_exports_with_the_config_of_anonymize(tmp_path: Path) -> None:
    make_instance(tmp_path / "in" / "a.dcm", seed=1)
    cfg_path = tmp_path / "red.yaml"
    import yaml

    cfg_path.write_text(yaml.safe_dump(_RED))
    runner = CliRunner()
    db = str(tmp_path / "s.db")
    assert runner.invoke(cli, ["ingest", str(tmp_path / "in"), "--db", db, "-q"]).exit_code == 0
    got = runner.invoke(cli, ["anonymize", "--db", db, "--config", str(cfg_path)])
    assert got.exit_code == 0, got.output
    got = runner.invoke(cli, ["export", str(tmp_path / "out"), "--db", db, "-q"])
    assert got.exit_code == 0, got.output
    (f,) = _written(tmp_path / "out")
    assert pydicom.dcmread(f).PatientID == "RED_000001"
    with Session(db, read_only=True) as s:
        assert s.stored_config() == load_config(_RED)
        kinds = s.sql("SELECT kind FROM runs ORDER BY started_at")["kind"].to_list()
        assert kinds.count("anonymize") == 1  # the stored plan was used as it is
        assert s.preview().equals(s.preview(load_config(_RED)))
        report = s.compliance_report(tmp_path / "out")
        assert report.compliant
    got = runner.invoke(cli, ["report", "compliance", str(tmp_path / "out"), "--db", db])
    assert got.exit_code == 0, got.output


def test_export_with_another_config_plans_again_or_refuses(tmp_path: Path) -> None:
    make_instance(tmp_path / "in" / "a.dcm", seed=1)
    with Session(tmp_path / "s.db") as s:
        s.ingest(tmp_path / "in", workers=1, progress=False)
        s.anonymize()
        strict = s.export(tmp_path / "o1", config=_RED, strict=True, safe=False, progress=False)
        assert set(strict.excluded["reason"]) == {
            "not planned: the plan was built with another config"
        }
        r = s.export(tmp_path / "o2", config=_RED, safe=False, progress=False)
        assert r.exported == 1
        assert s.stored_config() == load_config(_RED)
    (f,) = _written(tmp_path / "o2")
    assert pydicom.dcmread(f).PatientID == "RED_000001"


def test_a_re_export_after_a_config_change_rewrites_the_files(tmp_path: Path) -> None:
    make_instance(tmp_path / "in" / "a.dcm", seed=1)
    with Session(tmp_path / "s.db") as s:
        s.ingest(tmp_path / "in", workers=1, progress=False)
        s.anonymize()
        first = s.export(tmp_path / "out", safe=False, progress=False)
        again = s.export(tmp_path / "out", safe=False, progress=False)
        changed = s.export(tmp_path / "out", config=_RED, safe=False, progress=False)
    assert (first.exported, again.already_done, changed.exported) == (1, 1, 1)
    (f,) = _written(tmp_path / "out")  # the copy made under the old plan is gone
    assert pydicom.dcmread(f).PatientID == "RED_000001"
    assert "RED_000001" in (tmp_path / "out" / "manifest.csv").read_text()
    assert "ANON_000001" not in (tmp_path / "out" / "manifest.csv").read_text()


# -- 2. duplicate SOP Instance UIDs ---------------------------------------------------------


def _duplicates(root: Path) -> None:
    for i in range(3):  # three copies of one instance, at three paths
        make_instance(root / f"copy{i}.dcm", seed=7)
    make_instance(root / "other1.dcm", seed=8)
    make_instance(root / "other2.dcm", seed=9)


@pytest.mark.parametrize(
    ("policy", "exported", "excluded"), [("first", 3, 2), ("skip", 2, 3), ("suffix", 5, 0)]
)
def test_duplicate_sop_uids_counts_equal_files_on_disk(
    tmp_path: Path, policy: str, exported: int, excluded: int
) -> None:
    _duplicates(tmp_path / "in")
    cfg = {"duplicates": policy}
    with Session(tmp_path / "s.db") as s:
        s.ingest(tmp_path / "in", workers=1, progress=False)
        s.anonymize(cfg)
        r = s.export(tmp_path / "out", safe=False, progress=False, workers=2)
        assert (r.exported, r.excluded.height, r.already_done) == (exported, excluded, 0)
        assert len(_written(tmp_path / "out")) == exported
        if excluded:
            assert r.excluded["reason"].str.contains("duplicate SOP Instance UID").all()
        again = s.export(tmp_path / "out", safe=False, progress=False, workers=2)
        assert (again.exported, again.already_done, again.excluded.height) == (
            0,
            exported,
            excluded,
        )
    names = sorted(p.name for p in _written(tmp_path / "out"))
    if policy == "suffix":
        assert sum(n.endswith(("_2.dcm", "_3.dcm")) for n in names) == 2


def test_cli_duplicates_default_first(tmp_path: Path) -> None:
    _duplicates(tmp_path / "in")
    db = str(tmp_path / "s.db")
    runner = CliRunner()
    assert runner.invoke(cli, ["ingest", str(tmp_path / "in"), "--db", db, "-q"]).exit_code == 0
    got = runner.invoke(cli, ["export", str(tmp_path / "out"), "--db", db, "-q", "--unsafe"])
    assert got.exit_code == 0, got.output
    assert "exported 3 files" in got.output and "excluded 2" in got.output
    assert len(_written(tmp_path / "out")) == 3
    got = runner.invoke(cli, ["export", str(tmp_path / "out"), "--db", db, "-q", "--unsafe"])
    assert "exported 0 files" in got.output and "already done 3" in got.output


# -- 3. compression checked up front --------------------------------------------------------


def test_unknown_compression_is_refused_before_anything_runs(tmp_path: Path) -> None:
    from gantry.errors import ConfigError

    make_instance(tmp_path / "in" / "a.dcm", seed=1)
    with Session(tmp_path / "s.db") as s:
        s.ingest(tmp_path / "in", workers=1, progress=False)
        with pytest.raises(ConfigError, match="`compression` must be None or one of .*'j2k'"):
            s.export(tmp_path / "out", compression="jpeg2000")
        assert not (tmp_path / "out").exists()
        assert s.sql("SELECT count(*) AS n FROM runs WHERE kind <> 'ingest'")["n"][0] == 0
    got = CliRunner().invoke(
        cli,
        [
            "export",
            str(tmp_path / "o"),
            "--db",
            str(tmp_path / "s.db"),
            "--compression",
            "jpeg2000",
        ],
    )
    assert got.exit_code == 2 and "'j2k'" in got.output


def test_objects_without_pixel_data_pass_the_transcoder_untouched(tmp_path: Path) -> None:
    from pydicom.data import get_testdata_file

    src = tmp_path / "in"
    src.mkdir()
    plan = pydicom.dcmread(get_testdata_file("rtplan.dcm"))
    plan.save_as(src / "rtplan.dcm")
    make_instance(src / "ct.dcm", seed=1)
    with Session(tmp_path / "s.db") as s:
        s.ingest(src, workers=1, progress=False)
        r = s.export(tmp_path / "out", compression="j2k", safe=False, progress=False)
        assert r.ok and r.exported == 2, r.failed
    by_modality = {pydicom.dcmread(f).Modality: f for f in _written(tmp_path / "out")}
    ct = pydicom.dcmread(by_modality["CT"])
    assert ct.file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.4.90"
    rt = pydicom.dcmread(by_modality["RTPLAN"])
    assert "PixelData" not in rt and rt.BeamSequence  # content kept, nothing transcoded


# -- 4. a wrong path never becomes an empty session -----------------------------------------


def test_read_verbs_on_a_missing_store_raise_and_create_nothing(tmp_path: Path) -> None:
    from gantry.errors import StoreNotFoundError

    db = tmp_path / "nonexistent.db"
    s = Session(db)  # constructing writes nothing (the README's first line)
    for verb in (s.info, s.anonymize, lambda: s.export(tmp_path / "out")):
        with pytest.raises(StoreNotFoundError, match="only `ingest` creates a session"):
            verb()
    with pytest.raises(StoreNotFoundError):
        Session(db, read_only=True)
    assert not db.exists() and not (tmp_path / "nonexistent.gantry").exists()
    assert not (tmp_path / "out").exists()
    make_instance(tmp_path / "in" / "a.dcm", seed=1)
    s.ingest(tmp_path / "in", workers=1, progress=False)  # the one verb that creates it
    assert s.info().totals["instances"] == 1
    s.close()


def test_cli_read_verbs_on_a_missing_store_exit_2(tmp_path: Path) -> None:
    db = str(tmp_path / "nonexistent.db")
    runner = CliRunner()
    for argv in (
        ["info", "--db", db],
        ["export", str(tmp_path / "out"), "--db", db],
        ["anonymize", "--db", db],
        ["sql", "SELECT 1", "--db", db],
    ):
        got = runner.invoke(cli, argv)
        assert got.exit_code == 2, (argv, got.output)
        assert "must exist" in got.output
    assert not list(tmp_path.iterdir())


# -- 5. export and source kept apart --------------------------------------------------------


def test_ingest_skips_an_export_folder_and_records_why(tmp_path: Path) -> None:
    src = tmp_path / "src"
    make_instance(src / "a.dcm", seed=1)
    make_instance(src / "b.dcm", seed=2)
    other = tmp_path / "other.db"
    with Session(other) as s:  # another session exported into a folder now under src
        s.ingest(src, workers=1, progress=False)
        s.export(tmp_path / "out", safe=False, progress=False)
    (tmp_path / "out").rename(src / "clean")
    with Session(tmp_path / "s.db") as s:
        r = s.ingest(src, workers=1, progress=False)
        assert r.indexed == 2 and r.skipped_by_reason == {"export_folder": 1}
        rows = s.sql("SELECT file_path, reason FROM skipped")
        assert rows.rows() == [(str(src / "clean"), "export_folder")]
        again = s.ingest(src / "clean", workers=1, progress=False)
        assert again.indexed == 0 and s.info().totals["instances"] == 2


def test_export_inside_an_ingested_source_is_refused(tmp_path: Path) -> None:
    from gantry.errors import ExportError

    src = tmp_path / "src"
    make_instance(src / "a.dcm", seed=1)
    with Session(tmp_path / "s.db") as s:
        s.ingest(src, workers=1, progress=False)
        for dest in (src / "clean", tmp_path):
            with pytest.raises(ExportError, match="`dest` must"):
                s.export(dest, safe=False)
        assert not (src / "clean").exists()
    got = CliRunner().invoke(cli, ["export", str(src / "clean"), "--db", str(tmp_path / "s.db")])
    assert got.exit_code == 2 and "ingested source" in got.output
