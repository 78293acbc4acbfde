"""Tables, reports and maps written to a bucket (moto S3 server): whole objects, same content."""

from __future__ import annotations

import io
import json
import tempfile
from collections.abc import Iterator
from pathlib import Path

import polars as pl
import pytest

from gantry import Session
from gantry.errors import ExportError
from gantry.storage._outputs import committed_files, publish_output
from gantry.testing import Corpus
from gantry.testing._s3 import S3Bucket


@pytest.fixture
def private_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The folder `tempfile` uses: a test checks nothing is left in it."""
    folder = tmp_path / "systemp"
    folder.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    return folder


@pytest.fixture
def session(corpus: Corpus, tmp_path: Path) -> Iterator[Session]:
    with Session(tmp_path / "s.db") as s:
        s.ingest(corpus.root, workers=1, progress=False)
        s.anonymize(None)
        yield s


def test_to_parquet_to_a_bucket_is_the_local_table(
    s3: S3Bucket, session: Session, tmp_path: Path, private_tmp: Path
) -> None:
    url = f"s3://{s3.bucket}/tables/cohort.parquet"
    assert session.to_parquet(url, level="series") == url
    local = session.to_parquet(tmp_path / "cohort.parquet", level="series")
    assert s3.keys("tables/") == ["tables/cohort.parquet", "tables/cohort.parquet.schema.json"]
    remote = pl.read_parquet(io.BytesIO(s3.get("tables/cohort.parquet")))
    key = "SeriesInstanceUID"  # the query names no row order
    assert remote.sort(key).equals(pl.read_parquet(local).sort(key))
    doc = json.loads(s3.get("tables/cohort.parquet.schema.json"))
    assert (doc["level"], doc["rows"]) == ("series", remote.height)
    assert list(private_tmp.iterdir()) == []  # the local staging is gone


def test_a_partitioned_table_replaces_the_old_partitions(
    s3: S3Bucket, session: Session, tmp_path: Path
) -> None:
    stale = "tables/cohort/Modality=XX/data_0.parquet"
    s3.client().put_object(Bucket=s3.bucket, Key=stale, Body=b"old")
    url = f"s3://{s3.bucket}/tables/cohort"
    session.to_parquet(url, partition_by="Modality")
    local = session.to_parquet(tmp_path / "cohort", partition_by="Modality")
    expected = sorted(p.relative_to(local).as_posix() for p in Path(local).rglob("*.parquet"))
    keys = s3.keys("tables/")
    assert stale not in keys
    committed = committed_files(url)
    published = sorted(u.removeprefix(f"s3://{s3.bucket}/") for u in committed)
    assert keys == sorted(
        [*published, "tables/cohort/_gantry_manifest.json", "tables/cohort.schema.json"]
    )
    # each local file, published under a name of this write (the manifest names them)
    write_id = json.loads(s3.get("tables/cohort/_gantry_manifest.json"))["write_id"]
    assert (
        sorted(k.removeprefix("tables/cohort/").replace(f"{write_id}-", "") for k in published)
        == expected
    )
    rows = sum(pl.read_parquet(io.BytesIO(s3.get(k))).height for k in published)
    assert rows == json.loads(s3.get("tables/cohort.schema.json"))["rows"]


def test_a_cut_folder_write_leaves_the_previous_folder_whole(
    s3: S3Bucket, session: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    from gantry.errors import StorageError
    from gantry.storage._fs import FsspecStorage

    url = f"s3://{s3.bucket}/tables/cohort"
    session.to_parquet(url, partition_by="Modality")
    before = committed_files(url)
    assert len(before) >= 2  # the cut falls between two of the new files
    rows = sum(pl.read_parquet(io.BytesIO(s3.get(u.split("/", 3)[3]))).height for u in before)
    real = FsspecStorage.publish
    calls = {"n": 0}

    def publish_then_cut(self, local, rel):  # type: ignore[no-untyped-def]
        calls["n"] += 1
        if calls["n"] == 2:
            raise StorageError(self.url(rel), "the endpoint did not answer (test)")
        real(self, local, rel)

    monkeypatch.setattr(FsspecStorage, "publish", publish_then_cut)
    with pytest.raises(StorageError):
        session.to_parquet(url, partition_by="Modality")
    monkeypatch.setattr(FsspecStorage, "publish", real)
    assert committed_files(url) == before  # the old manifest, every file it names still there
    again = sum(pl.read_parquet(io.BytesIO(s3.get(u.split("/", 3)[3]))).height for u in before)
    assert again == rows
    session.to_parquet(url, partition_by="Modality")  # the next write removes the cut one's files
    after = committed_files(url)
    assert set(after).isdisjoint(before)
    assert len(s3.keys("tables/cohort/")) == len(after) + 1


def test_a_writer_that_fails_publishes_nothing(s3: S3Bucket, private_tmp: Path) -> None:
    def half_written(local: Path) -> None:
        local.write_bytes(b"half a table")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        publish_output(f"s3://{s3.bucket}/t/cohort.parquet", half_written)
    assert s3.keys() == []
    assert list(private_tmp.iterdir()) == []


def test_audit_report_to_a_bucket_in_both_formats(
    s3: S3Bucket, session: Session, tmp_path: Path
) -> None:
    for fmt in ("csv", "parquet"):
        url = f"s3://{s3.bucket}/reports/audit.{fmt}"
        assert session.audit_report(url, format=fmt) == url
        local = Path(session.audit_report(tmp_path / f"audit.{fmt}", format=fmt))
        remote = s3.get(f"reports/audit.{fmt}")
        if fmt == "csv":
            assert remote == local.read_bytes()
        else:
            assert pl.read_parquet(io.BytesIO(remote)).equals(pl.read_parquet(local))


def test_maps_to_a_bucket_and_never_into_an_export(
    s3: S3Bucket, session: Session, tmp_path: Path, private_tmp: Path
) -> None:
    url = f"s3://{s3.bucket}/private/maps"
    written = session.export_maps(url)
    assert written == {"uid_map": f"{url}/uid_map.csv", "patient_map": f"{url}/patient_map.csv"}
    local = session.export_maps(tmp_path / "maps")
    for key in ("uid_map", "patient_map"):
        assert s3.get(f"private/maps/{key}.csv") == Path(local[key]).read_bytes()
    assert list(private_tmp.iterdir()) == []  # no copy of the maps left behind
    # the maps re-identify: refused inside (or below) a bucket export
    r = session.export(f"s3://{s3.bucket}/clean", safe=False, workers=1, progress=False)
    assert r.ok, r.failed
    before = s3.keys()
    for dest in ("clean", "clean/maps", "clean/a/b"):
        with pytest.raises(ExportError, match="outside any export folder"):
            session.export_maps(f"s3://{s3.bucket}/{dest}")
    assert s3.keys() == before


def test_compliance_report_to_a_bucket_carries_no_identity(
    s3: S3Bucket, session: Session, needles: set[str], tmp_path: Path
) -> None:
    r = session.export(tmp_path / "out", safe=False, workers=1, progress=False)
    assert r.ok, r.failed
    url = f"s3://{s3.bucket}/qa"
    report = session.compliance_report(tmp_path / "out", out=url)
    assert report.outputs == {k: f"{url}/compliance.{k}" for k in ("html", "json", "csv")}
    keys = s3.keys("qa/")
    assert keys == ["qa/compliance.csv", "qa/compliance.html", "qa/compliance.json"]
    assert json.loads(s3.get("qa/compliance.json"))["summary"] == json.loads(
        json.dumps(report.summary, default=str)
    )
    leaks = [(k, n) for k in keys for n in needles if n.encode() in s3.get(k)]
    assert leaks == []


def test_cli_writes_tables_reports_and_maps_to_a_bucket(
    s3: S3Bucket, corpus: Corpus, tmp_path: Path
) -> None:
    from click.testing import CliRunner

    from gantry.cli import cli

    db = str(tmp_path / "s.db")
    runner = CliRunner()
    for args in (["ingest", str(corpus.root), "-q", "-j", "1"], ["anonymize"]):
        r = runner.invoke(cli, [*args, "--db", db])
        assert r.exit_code == 0, r.output
    r = runner.invoke(cli, ["export", str(tmp_path / "out"), "--db", db, "--unsafe", "-q"])
    assert r.exit_code == 0, r.output
    b = f"s3://{s3.bucket}"
    for args in (
        ["export-table", f"{b}/t/cohort.parquet", "--level", "study"],
        ["export-table", f"{b}/t/cohort.csv"],
        ["report", "audit", f"{b}/r/audit.csv"],
        ["report", "compliance", str(tmp_path / "out"), "--out", f"{b}/r/qa"],
        ["maps", f"{b}/private/maps"],
    ):
        r = runner.invoke(cli, [*args, "--db", db])
        # `report compliance` exits 1 when the (unsafe) export is not compliant
        assert r.exit_code in ((0, 1) if "compliance" in args else (0,)), (args, r.output)
        assert r.exception is None or isinstance(r.exception, SystemExit), r.output
    assert s3.keys() == [
        "private/maps/patient_map.csv",
        "private/maps/uid_map.csv",
        "r/audit.csv",
        "r/qa/compliance.csv",
        "r/qa/compliance.html",
        "r/qa/compliance.json",
        "t/cohort.csv",
        "t/cohort.parquet",
        "t/cohort.parquet.schema.json",
    ]
    studies = pl.read_parquet(io.BytesIO(s3.get("t/cohort.parquet")))
    assert studies.height == 2  # the corpus: 2 patients, 1 study each
    assert json.loads(s3.get("t/cohort.parquet.schema.json"))["rows"] == 2
    instances = pl.read_csv(io.BytesIO(s3.get("t/cohort.csv")))
    assert instances.height == len(corpus.paths)
