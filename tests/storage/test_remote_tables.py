"""A session whose Parquet tables live in a bucket (moto S3 server), the catalog local."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest

import gantry.ingest._runner as ingest_runner
import gantry.store._store as store_module
from gantry import Session
from gantry.errors import ConfigError, StorageError, StoreError
from gantry.testing import Corpus
from gantry.testing._s3 import FaultProxy, S3Bucket


def _counts(s: Session) -> dict[str, int]:
    q = "SELECT count(*) AS n FROM {}"
    return {t: int(s.sql(q.format(t))["n"][0]) for t in ("instances", "elements", "skipped")}


def _pipeline(s: Session, corpus: Corpus, out: Path) -> dict[str, object]:
    """Ingest, audit, plan, export, reports: what each step counted."""
    r = s.ingest(corpus.root, workers=2, progress=False)
    assert (r.indexed, r.skipped) == (len(corpus.paths), 0)
    findings = s.audit().to_polars()
    s.save_analysis(s.audit())
    plan = s.anonymize(None)
    e = s.export(out / "clean", safe=False, workers=1, progress=False)
    assert e.ok and e.exported == len(corpus.paths)
    s.audit_report(out / "audit.csv")
    s.export_maps(out / "maps")
    return {
        "counts": _counts(s),
        "findings": findings.height,
        "plan": plan.height,
        "plan_rows": s.sql("SELECT count(*) AS n FROM plan")["n"][0],
        "exports": s.sql("SELECT count(*) AS n FROM exports WHERE status = 'ok'")["n"][0],
        "patients": s.sql("SELECT count(*) AS n FROM patients")["n"][0],
        "tree": len(s.patients),
        "files": len(list((out / "clean").rglob("*.dcm"))),
        "audit": (out / "audit.csv").read_text().count("\n"),
    }


def test_tables_in_a_bucket_run_the_whole_pipeline_like_a_local_session(
    s3: S3Bucket, corpus: Corpus, tmp_path: Path
) -> None:
    data = f"s3://{s3.bucket}/tables"
    with Session(tmp_path / "local.db") as s:
        local = _pipeline(s, corpus, tmp_path / "local")
    with Session(tmp_path / "remote.db", data=data) as s:
        remote = _pipeline(s, corpus, tmp_path / "remote")
        listed = s.sql("SELECT table_name, batch, rel FROM parquet_parts")
    assert remote == local
    # every part is in the bucket and listed; nothing local but the catalog's own files
    keys = set(s3.keys("tables/"))
    assert keys == {f"tables/{r}" for r in listed["rel"]} | {"tables/.gantry-session"}
    assert not list((tmp_path / "remote.gantry").glob("batches/*/*.parquet"))
    assert not list((tmp_path / "remote.gantry").glob("tables/*/*.parquet"))
    assert {"instances", "elements", "plan", "exports"} <= set(listed["table_name"])
    # a batch is listed whole: every batch has its instances and elements
    per_batch = listed.filter(pl.col("batch").is_not_null()).group_by("batch").agg("table_name")
    assert all({"instances", "elements"} <= set(t) for t in per_batch["table_name"])

    # the catalog remembers where its tables are; another place is refused
    with Session(tmp_path / "remote.db", read_only=True) as s:
        assert _counts(s) == local["counts"]
    with Session(tmp_path / "remote.db") as s:
        assert s.sql("SELECT count(*) AS n FROM plan")["n"][0] == local["plan_rows"]
    with pytest.raises(StoreError, match="keeps its tables at"):
        Session(tmp_path / "remote.db", data=f"s3://{s3.bucket}/elsewhere")
    with pytest.raises(StoreError, match="keeps its tables in its local folder"):
        Session(tmp_path / "local.db", data=f"s3://{s3.bucket}/elsewhere")
    with pytest.raises(ConfigError, match="`data` must be an object-storage URL"):
        Session(tmp_path / "x.db", data=str(tmp_path / "folder")).ingest(
            corpus.root, progress=False
        )
    # a prefix holding another session's tables is not taken over
    with pytest.raises(StoreError, match="another session owns it|not this session"):
        Session(tmp_path / "other.db", data=data).ingest(corpus.root, progress=False)


def _small_batches(monkeypatch: pytest.MonkeyPatch) -> None:
    """Let this small corpus make several batches (four of a worker's share).

    Ingest's batches otherwise hold at least ``MIN_BATCH`` (250) files, so the
    corpus would be one batch and nothing could be cut between batches.
    """
    monkeypatch.setattr(ingest_runner, "MIN_BATCH", 1)


def test_a_cut_upload_leaves_no_half_batch_and_resume_completes(
    s3: S3Bucket, corpus: Corpus, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = f"s3://{s3.bucket}/t"
    real = store_module.RemoteTables.upload
    calls = {"n": 0}

    def upload_then_fail(self, local, rel):  # type: ignore[no-untyped-def]
        calls["n"] += 1
        if calls["n"] == 7:  # inside the second of 4 batches (each batch is 4 objects)
            raise StorageError(self.url(rel), "the endpoint did not answer (test); run again")
        real(self, local, rel)

    monkeypatch.setattr(store_module.RemoteTables, "upload", upload_then_fail)
    _small_batches(monkeypatch)
    with Session(tmp_path / "s.db", data=data) as s:
        with pytest.raises(StorageError, match="endpoint did not answer"):
            s.ingest(corpus.root, workers=1, progress=False)
        partial = _counts(s)["instances"]
        assert 0 < partial < len(corpus.paths)
        # the second batch's first objects were uploaded but never listed
        listed = set(s.sql("SELECT rel FROM parquet_parts")["rel"])
    orphans = {k.removeprefix("t/") for k in s3.keys("t/batches/")} - listed
    assert orphans
    monkeypatch.setattr(store_module.RemoteTables, "upload", real)
    with Session(tmp_path / "s.db") as s:  # a writer opening removes the orphans
        r = s.ingest(corpus.root, workers=1, progress=False)
        assert r.already_indexed == partial
        rows = s.sql("SELECT file_path FROM instances")
        assert rows.height == rows["file_path"].n_unique() == len(corpus.paths)
        listed = set(s.sql("SELECT rel FROM parquet_parts")["rel"])
    assert {k.removeprefix("t/") for k in s3.keys("t/batches/")} == {
        r for r in listed if r.startswith("batches/")
    }


def test_a_killed_endpoint_is_a_storage_error_and_resume_completes(
    s3: S3Bucket, corpus: Corpus, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _small_batches(monkeypatch)
    with FaultProxy(s3.server.port) as proxy:
        monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.url)
        data = f"s3://{s3.bucket}/t"

        def kill_after_first(done: int, total: int) -> None:
            proxy.kill()

        with Session(tmp_path / "s.db", data=data) as s:
            with pytest.raises(StorageError, match="endpoint did not answer|request failed"):
                s.ingest(corpus.root, workers=1, progress=False, callback=kill_after_first)
        proxy.start()
        with Session(tmp_path / "s.db") as s:
            partial = _counts(s)["instances"]
            assert 0 < partial < len(corpus.paths)
            r = s.ingest(corpus.root, workers=1, progress=False)
            assert r.already_indexed == partial
            rows = s.sql("SELECT file_path FROM instances")
            assert rows.height == rows["file_path"].n_unique() == len(corpus.paths)


def test_wrong_credentials_give_a_clear_error_and_the_right_ones_work(
    s3: S3Bucket, corpus: Corpus, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from gantry.testing._s3 import moto_server

    boto3 = pytest.importorskip("boto3")
    with moto_server({"INITIAL_NO_AUTH_ACTION_COUNT": "4"}) as server:
        kw = {"endpoint_url": server.url, "region_name": "us-east-1"}
        iam = boto3.client("iam", aws_access_key_id="x", aws_secret_access_key="y", **kw)
        iam.create_user(UserName="writer")
        policy = {
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}],
        }
        iam.put_user_policy(UserName="writer", PolicyName="s3", PolicyDocument=json.dumps(policy))
        key = iam.create_access_key(UserName="writer")["AccessKey"]
        good = {"key": key["AccessKeyId"], "secret": key["SecretAccessKey"]}
        boto3.client(
            "s3", aws_access_key_id=good["key"], aws_secret_access_key=good["secret"], **kw
        ).create_bucket(Bucket="guarded-tables")
        monkeypatch.setenv("AWS_ENDPOINT_URL", server.url)
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAWRONGWRONGWRONG1")
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wrong")
        monkeypatch.setenv("AWS_MAX_ATTEMPTS", "2")
        data = "s3://guarded-tables/t"
        with pytest.raises(StorageError, match="access denied: check the credentials"):
            Session(tmp_path / "s.db", data=data).ingest(corpus.root, progress=False)
        with Session(tmp_path / "s.db", data=data, data_options=good) as s:
            r = s.ingest(corpus.root, workers=1, progress=False)
            assert r.indexed == len(corpus.paths)
        with Session(tmp_path / "s.db", data_options=good, read_only=True) as s:
            assert _counts(s)["instances"] == len(corpus.paths)
        stored = b"".join(p.read_bytes() for p in tmp_path.rglob("*") if p.is_file())
        assert good["secret"].encode() not in stored


def test_cli_ingest_with_data_then_other_verbs_find_the_tables(
    s3: S3Bucket, corpus: Corpus, tmp_path: Path
) -> None:
    from click.testing import CliRunner

    from gantry.cli import cli

    db = str(tmp_path / "s.db")
    runner = CliRunner()
    data = f"s3://{s3.bucket}/cli"
    got = runner.invoke(cli, ["ingest", str(corpus.root), "--db", db, "--data", data, "-q"])
    assert got.exit_code == 0, got.output
    q = "SELECT count(*) AS n FROM instances"
    got = runner.invoke(cli, ["sql", q, "--db", db, "--format", "csv"])
    assert got.exit_code == 0, got.output
    assert got.output.split() == ["n", str(len(corpus.paths))]
    assert any(k.startswith("cli/batches/") for k in s3.keys("cli/"))
    got = runner.invoke(cli, ["ingest", str(corpus.root), "--db", db, "--data", f"{data}2"])
    assert got.exit_code != 0 and "keeps its tables at" in got.output


def test_a_changed_source_object_is_reread_with_the_tables_in_the_bucket(
    s3: S3Bucket, corpus: Corpus, tmp_path: Path
) -> None:
    from gantry.testing import make_instance

    keys = s3.upload(corpus.root, "scans")
    url = f"s3://{s3.bucket}/scans"
    with Session(tmp_path / "s.db", data=f"s3://{s3.bucket}/t") as s:
        s.ingest(url, workers=1, progress=False)
        before = set(s.sql("SELECT rel FROM parquet_parts")["rel"])
        make_instance(tmp_path / "new.dcm", SeriesDescription="REPLACED SERIES")
        s3.client().put_object(
            Bucket=s3.bucket, Key=keys[0], Body=(tmp_path / "new.dcm").read_bytes()
        )
        r = s.ingest(url, workers=1, progress=False)
        assert (r.indexed, r.already_indexed) == (1, len(keys) - 1)
        rows = s.sql("SELECT file_path, SeriesDescription FROM instances")
        assert rows.height == rows["file_path"].n_unique() == len(keys)
        new = rows.filter(pl.col("file_path") == f"s3://{s3.bucket}/{keys[0]}")
        assert new["SeriesDescription"].to_list() == ["REPLACED SERIES"]
        assert s.sql("SELECT count(*) AS n FROM objects")["n"][0] == len(keys)
        after = set(s.sql("SELECT rel FROM parquet_parts")["rel"])
    # the batch that held the old rows was rewritten as a new batch; its objects are gone
    assert before - after and after - before
    assert {k.removeprefix("t/") for k in s3.keys("t/batches/")} == {
        r for r in after if r.startswith("batches/")
    }


def test_derived_tables_are_replaced_appended_and_dropped_part_by_part(tmp_path: Path) -> None:
    import uuid

    from gantry.storage import open_storage
    from gantry.store import Store

    url = f"memory://gantry-test-{uuid.uuid4().hex}/t"

    def objects() -> list[str]:
        return [o.rel for o in open_storage(url).list()]

    with Store(tmp_path / "s.db", data=url) as st:
        st.write_table("picks", pl.DataFrame({"a": [1, 2]}))
        st.write_table("picks", pl.DataFrame({"a": [3]}), mode="append")
        assert st.sql("SELECT sum(a) AS s FROM picks")["s"][0] == 6
        assert sorted(st.scan("picks").collect()["a"].to_list()) == [1, 2, 3]
        assert len(objects()) == 3  # two parts and the owner mark
        st.write_table("picks", pl.DataFrame({"a": [9]}))  # replace: the old parts go
        assert st.scan("picks").collect()["a"].to_list() == [9]
        assert len(objects()) == 2
        st.drop_table("picks")
        assert "picks" not in st.table_names()
        assert objects() == [".gantry-session"]
