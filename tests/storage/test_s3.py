"""Ingest from and export to S3 against a real S3 API server (moto), faults included."""

from __future__ import annotations

import json
import os
from pathlib import Path

import polars as pl
import pytest

import gantry.storage._export as bucket_export
import gantry.storage._ingest as remote_ingest
from gantry import Session
from gantry.errors import StorageError
from gantry.testing import Corpus, make_instance, planned_dates
from gantry.testing._s3 import FaultProxy, S3Bucket, moto_server, s3_env

ELEMENT_COLUMNS = ["path", "vr", "private_creator", "value", "length", "value_hash"]


def _rel(corpus: Corpus, url: str, prefix: str) -> str:
    return url.split(f"/{prefix}/", 1)[1]


def test_ingest_reads_headers_only_and_matches_local_ingest(
    s3: S3Bucket, corpus: Corpus, tmp_path: Path
) -> None:
    s3.upload(corpus.root, "scans")
    with Session(tmp_path / "remote.db") as s:
        r = s.ingest(f"s3://{s3.bucket}/scans", workers=1, progress=False)
        assert (r.indexed, r.skipped) == (len(corpus.paths), 0)
        objects = s.sql(
            "SELECT o.*, i.pixel_offset FROM objects o JOIN instances i USING (file_id)"
        )
        remote = s.sql(
            "SELECT i.file_path, e.* EXCLUDE (file_id) FROM elements e JOIN instances i "
            "USING (file_id) ORDER BY i.file_path, e.path"
        )
    assert objects.height == len(corpus.paths)
    assert objects["etag"].null_count() == 0
    # headers only: a ranged read never reaches far into the pixel data
    for fetched, size, offset in objects.select("bytes_fetched", "size", "pixel_offset").rows():
        assert fetched < size
        assert fetched <= 2 * offset
    with Session(tmp_path / "local.db") as s:
        s.ingest(corpus.root, workers=1, progress=False)
        local = s.sql(
            "SELECT i.file_path, e.* EXCLUDE (file_id) FROM elements e JOIN instances i "
            "USING (file_id) ORDER BY i.file_path, e.path"
        )
    root = str(corpus.root)
    local = local.with_columns(pl.col("file_path").str.strip_prefix(root + "/"))
    remote = remote.with_columns(pl.col("file_path").str.strip_prefix(f"s3://{s3.bucket}/scans/"))
    assert remote.select("file_path", *ELEMENT_COLUMNS).equals(
        local.select("file_path", *ELEMENT_COLUMNS)
    )


def test_resume_skips_unchanged_objects_and_rereads_a_changed_one(
    s3: S3Bucket, corpus: Corpus, tmp_path: Path
) -> None:
    keys = s3.upload(corpus.root, "scans")
    url = f"s3://{s3.bucket}/scans"
    with Session(tmp_path / "s.db") as s:
        s.ingest(url, workers=1, progress=False)
        again = s.ingest(url, workers=1, progress=False)
        assert (again.indexed, again.already_indexed) == (0, len(keys))
        changed = make_instance(tmp_path / "new.dcm", SeriesDescription="REPLACED SERIES")
        s3.client().put_object(
            Bucket=s3.bucket, Key=keys[0], Body=(tmp_path / "new.dcm").read_bytes()
        )
        third = s.ingest(url, workers=1, progress=False)
        assert (third.indexed, third.already_indexed) == (1, len(keys) - 1)
        rows = s.sql("SELECT file_path, SeriesDescription, SOPInstanceUID FROM instances")
        assert rows.height == len(keys)  # re-read, not duplicated
        assert rows["file_path"].n_unique() == len(keys)
        new = rows.filter(pl.col("file_path") == f"s3://{s3.bucket}/{keys[0]}")
        assert new["SeriesDescription"].to_list() == ["REPLACED SERIES"]
        assert new["SOPInstanceUID"].to_list() == [str(changed.SOPInstanceUID)]
        assert s.sql("SELECT count(*) AS n FROM objects")["n"][0] == len(keys)


def test_export_to_a_bucket_publishes_whole_objects_with_zero_leaks(
    s3: S3Bucket, corpus: Corpus, needles: set[str], tmp_path: Path
) -> None:
    s3.upload(corpus.root, "scans")
    dest = f"s3://{s3.bucket}/clean"
    with Session(tmp_path / "s.db") as s:
        s.ingest(f"s3://{s3.bucket}/scans", workers=1, progress=False)
        s.anonymize(None)
        r = s.export(dest, safe=False, workers=2, progress=False)
        assert r.ok, r.failed
        assert r.exported == len(corpus.paths)
        keys = s3.keys("clean/")
        dicoms = [k for k in keys if k.endswith(".dcm")]
        assert len(dicoms) == len(corpus.paths)
        assert set(keys) - set(dicoms) == {
            "clean/.gantry-export",
            "clean/manifest.csv",
            "clean/manifest.json",
        }
        manifest = json.loads(s3.get("clean/manifest.json"))
        assert manifest["count"] == len(corpus.paths)
        assert sorted("clean/" + f["output_path"] for f in manifest["files"]) == dicoms
        # every byte of every object: no canary, no identity
        blobs = {k: s3.get(k) for k in keys}
        assert corpus.leaks(blobs, planned_dates=planned_dates(s)) == []
        assert not [n for n in needles if n in "/".join(keys)]
        # the objects are what verification passed
        recorded = s.sql(
            "SELECT output_path, sha256 FROM exports WHERE dest = ? AND status = 'ok'", [dest]
        )
        import hashlib

        for rel, sha in recorded.rows():
            assert hashlib.sha256(blobs[f"clean/{rel}"]).hexdigest() == sha
        # resume: nothing to publish again
        again = s.export(dest, safe=False, workers=1, progress=False)
        assert (again.exported, again.already_done) == (0, len(corpus.paths))
        assert s3.keys("clean/") == keys


def test_a_bucket_export_never_lands_in_an_ingested_prefix(
    s3: S3Bucket, corpus: Corpus, tmp_path: Path
) -> None:
    from gantry.errors import ExportError

    s3.upload(corpus.root, "scans")
    with Session(tmp_path / "s.db") as s:
        s.ingest(f"s3://{s3.bucket}/scans", workers=1, progress=False)
        s.anonymize(None)
        for dest in (f"s3://{s3.bucket}/scans/clean", f"s3://{s3.bucket}"):
            with pytest.raises(ExportError, match="apart from every ingested source"):
                s.export(dest, safe=False, progress=False)
    assert not [k for k in s3.keys() if not k.startswith("scans/")]


def test_missing_bucket_is_a_clear_error(s3: S3Bucket, tmp_path: Path) -> None:
    with pytest.raises(StorageError, match="bucket does not exist"):
        Session(tmp_path / "s.db").ingest("s3://no-such-bucket-here/scans", progress=False)
    assert not (tmp_path / "s.db").exists()  # nothing created for nothing


def test_export_to_a_missing_bucket_fails_before_any_work(
    s3: S3Bucket, corpus: Corpus, tmp_path: Path
) -> None:
    s3.upload(corpus.root, "scans")
    with Session(tmp_path / "s.db") as s:
        s.ingest(f"s3://{s3.bucket}/scans", workers=1, progress=False)
        s.anonymize(None)
        with pytest.raises(StorageError, match="bucket does not exist"):
            s.export("s3://no-such-bucket-here/out", safe=False, progress=False)
        assert not (tmp_path / "s.outbox").exists()


def test_wrong_credentials_are_refused_clearly(
    corpus: Corpus, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    boto3 = pytest.importorskip("boto3")
    # a server that checks credentials: the first 4 requests (IAM set-up) are free
    with moto_server({"INITIAL_NO_AUTH_ACTION_COUNT": "4"}) as server:
        kw = {"endpoint_url": server.url, "region_name": "us-east-1"}
        iam = boto3.client("iam", aws_access_key_id="x", aws_secret_access_key="y", **kw)
        iam.create_user(UserName="reader")
        policy = {
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}],
        }
        iam.put_user_policy(UserName="reader", PolicyName="s3", PolicyDocument=json.dumps(policy))
        key = iam.create_access_key(UserName="reader")["AccessKey"]
        boto3.client(
            "s3",
            aws_access_key_id=key["AccessKeyId"],
            aws_secret_access_key=key["SecretAccessKey"],
            **kw,
        ).create_bucket(Bucket="guarded-bucket")
        for k, v in s3_env(server.url, "AKIAWRONGWRONGWRONG1", "wrong").items():
            monkeypatch.setenv(k, v)
        monkeypatch.setenv("AWS_MAX_ATTEMPTS", "2")
        with pytest.raises(StorageError, match="access denied: check the credentials"):
            Session(tmp_path / "s.db").ingest("s3://guarded-bucket/scans", progress=False)
        # the right key through storage_options (never written anywhere by gantry)
        make_instance(tmp_path / "one.dcm")
        good = {"key": key["AccessKeyId"], "secret": key["SecretAccessKey"]}
        boto3.client(
            "s3",
            aws_access_key_id=good["key"],
            aws_secret_access_key=good["secret"],
            **kw,
        ).upload_file(str(tmp_path / "one.dcm"), "guarded-bucket", "scans/one.dcm")
        with Session(tmp_path / "s.db") as s:
            r = s.ingest(
                "s3://guarded-bucket/scans", storage_options=good, workers=1, progress=False
            )
            assert r.indexed == 1
        stored = b"".join(p.read_bytes() for p in tmp_path.rglob("*") if p.is_file())
        assert good["secret"].encode() not in stored


@pytest.fixture
def proxied(s3: S3Bucket, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    """The SDK pointed at a proxy in front of the server, to throttle or kill."""
    with FaultProxy(s3.server.port) as proxy:
        monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.url)
        yield proxy


def test_throttling_503_is_retried_to_completion(
    s3: S3Bucket, proxied: FaultProxy, corpus: Corpus, tmp_path: Path
) -> None:
    s3.upload(corpus.root, "scans")
    proxied.throttle_every = 4
    with Session(tmp_path / "s.db") as s:
        r = s.ingest(f"s3://{s3.bucket}/scans", workers=1, progress=False)
        assert (r.indexed, r.skipped) == (len(corpus.paths), 0)
        s.anonymize(None)
        e = s.export(f"s3://{s3.bucket}/clean", safe=False, workers=1, progress=False)
        assert e.ok and e.exported == len(corpus.paths)
    assert proxied.throttled > 0
    assert len([k for k in s3.keys("clean/") if k.endswith(".dcm")]) == len(corpus.paths)


def test_endpoint_killed_mid_ingest_resumes_without_loss_or_duplicates(
    s3: S3Bucket,
    proxied: FaultProxy,
    corpus: Corpus,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    s3.upload(corpus.root, "scans")
    monkeypatch.setattr(remote_ingest, "BATCH", (2, 2))
    url = f"s3://{s3.bucket}/scans"

    def kill_after_first(done: int, total: int) -> None:
        proxied.kill()

    with Session(tmp_path / "s.db") as s:
        with pytest.raises(StorageError, match="endpoint did not answer|request failed"):
            s.ingest(url, workers=1, progress=False, callback=kill_after_first)
        partial = s.sql("SELECT count(*) AS n FROM instances")["n"][0]
        assert 0 < partial < len(corpus.paths)
        assert s.sql("SELECT count(*) AS n FROM skipped")["n"][0] == 0  # no fault recorded
        proxied.start()
        r = s.ingest(url, workers=1, progress=False)
        assert r.already_indexed == partial
        rows = s.sql("SELECT file_path FROM instances")
        assert rows.height == rows["file_path"].n_unique() == len(corpus.paths)


def test_endpoint_killed_mid_export_resumes_without_loss_or_duplicates(
    s3: S3Bucket,
    proxied: FaultProxy,
    corpus: Corpus,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    s3.upload(corpus.root, "scans")
    dest = f"s3://{s3.bucket}/clean"
    monkeypatch.setattr(bucket_export, "RECORD_EVERY", 2)
    record = bucket_export._record

    def record_then_kill(*args, **kwargs):  # type: ignore[no-untyped-def]
        record(*args, **kwargs)
        proxied.kill()

    with Session(tmp_path / "s.db") as s:
        s.ingest(f"s3://{s3.bucket}/scans", workers=1, progress=False)
        s.anonymize(None)
        monkeypatch.setattr(bucket_export, "_record", record_then_kill)
        with pytest.raises(StorageError):
            s.export(dest, safe=False, workers=1, progress=False)
        monkeypatch.setattr(bucket_export, "_record", record)
        proxied.start()
        published = [k for k in s3.keys("clean/") if k.endswith(".dcm")]
        assert 0 < len(published) < len(corpus.paths)
        assert "clean/manifest.json" not in s3.keys("clean/")  # the manifest comes last
        r = s.export(dest, safe=False, workers=1, progress=False)
        assert r.ok
        assert r.exported + r.already_done == len(corpus.paths)
        assert r.already_done >= 2
    keys = s3.keys("clean/")
    dicoms = [k for k in keys if k.endswith(".dcm")]
    assert len(dicoms) == len(set(dicoms)) == len(corpus.paths)
    assert json.loads(s3.get("clean/manifest.json"))["count"] == len(corpus.paths)


def test_cli_ingests_and_exports_a_bucket(s3: S3Bucket, corpus: Corpus, tmp_path: Path) -> None:
    from click.testing import CliRunner

    from gantry.cli import cli

    s3.upload(corpus.root, "scans")
    db = str(tmp_path / "s.db")
    runner = CliRunner()
    r = runner.invoke(cli, ["ingest", f"s3://{s3.bucket}/scans", "--db", db, "-q", "-j", "1"])
    assert r.exit_code == 0, r.output
    assert runner.invoke(cli, ["anonymize", "--db", db]).exit_code == 0
    r = runner.invoke(
        cli, ["export", f"s3://{s3.bucket}/clean", "--db", db, "--unsafe", "-q", "-j", "1"]
    )
    assert r.exit_code == 0, r.output
    assert len([k for k in s3.keys("clean/") if k.endswith(".dcm")]) == len(corpus.paths)
    r = runner.invoke(cli, ["ingest", "s3://no-such-bucket-here/x", "--db", db, "-q"])
    assert r.exit_code != 0 and "bucket does not exist" in r.output


def test_worker_tasks_carry_the_callers_sdk_environment(
    s3: S3Bucket, corpus: Corpus, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Workers fork from a server that may predate the caller's environment (a notebook
    sets AWS_ENDPOINT_URL after its first export): each task applies the caller's."""
    from gantry.export._runner import _export_task
    from gantry.storage._fs import ObjectInfo, apply_sdk_environment, sdk_environment

    s3.upload(corpus.root, "scans")
    good = sdk_environment()
    item = type("Item", (), {"src": f"s3://{s3.bucket}/scans/x.dcm"})()
    assert _export_task([item], None).keywords["sdk_env"] == good  # type: ignore[attr-defined]
    # a process whose environment is stale (a dead endpoint) reads through the task's
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("AWS_STALE_ONLY", "1")
    root = f"s3://{s3.bucket}/scans"
    first = sorted(corpus.root.rglob("*.dcm"))[0]
    rel = first.relative_to(corpus.root).as_posix()
    obj = ObjectInfo(f"{root}/{rel}", rel, first.stat().st_size, None, None, None)
    stage = tmp_path / "stage"
    stage.mkdir()
    outcome = remote_ingest.ingest_objects([obj], str(stage), None, root, None, sdk_env=good)
    assert (outcome.instances, outcome.skipped) == (1, 0)
    assert "AWS_STALE_ONLY" not in os.environ  # made equal, not merged
    apply_sdk_environment(None)  # None leaves the environment alone
    assert os.environ["AWS_ENDPOINT_URL"] == good["AWS_ENDPOINT_URL"]
