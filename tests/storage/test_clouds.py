"""Ingest from and export to Google Cloud Storage and Azure Blob, against their emulators."""

from __future__ import annotations

import base64
import uuid
from pathlib import Path

import pytest

from gantry import Session
from gantry.errors import StorageError
from gantry.storage import Storage, open_storage
from gantry.testing import Corpus
from gantry.testing._cloud import AZURITE_KEY, CloudBucket, Emulator


def test_storage_interface(cloud: CloudBucket) -> None:
    st = open_storage(f"{cloud.root}/prefix", cloud.server.options)
    assert isinstance(st, Storage)
    st.write_atomic("a/b.bin", bytes(range(100)))
    listed = st.list()
    assert [(o.rel, o.size) for o in listed] == [("a/b.bin", 100)] and listed[0].etag
    assert st.read_range(listed[0].path, 5, 8) == bytes([5, 6, 7])
    st.publish(Path(__file__), "c.py")
    assert st.read("c.py") == Path(__file__).read_bytes()
    st.remove("c.py")
    assert st.info("c.py") is None


def test_ingest_and_export_round_trip_with_zero_leaks(
    cloud: CloudBucket, corpus: Corpus, tmp_path: Path
) -> None:
    fs = cloud.fs()
    for path in corpus.paths:
        fs.pipe_file(
            f"{cloud.bucket}/scans/{path.relative_to(corpus.root).as_posix()}", path.read_bytes()
        )
    options = cloud.server.options
    with Session(tmp_path / "s.db") as s:
        r = s.ingest(f"{cloud.root}/scans", storage_options=options, workers=1, progress=False)
        assert (r.indexed, r.skipped) == (len(corpus.paths), 0)
        fetched = s.sql(
            "SELECT max(o.bytes_fetched / i.pixel_offset) AS worst, count(o.etag) AS etags "
            "FROM objects o JOIN instances i USING (file_id)"
        ).row(0, named=True)
        assert fetched["worst"] <= 2 and fetched["etags"] == len(corpus.paths)
        s.anonymize(None)
        dest = f"{cloud.root}/clean"
        e = s.export(dest, storage_options=options, safe=False, workers=1, progress=False)
        assert e.ok and e.exported == len(corpus.paths)
        again = s.export(dest, storage_options=options, safe=False, workers=1, progress=False)
        assert (again.exported, again.already_done) == (0, len(corpus.paths))
    keys = sorted(fs.find(f"{cloud.bucket}/clean"))
    assert len([k for k in keys if k.endswith(".dcm")]) == len(corpus.paths)
    assert {k.rsplit("/", 1)[1] for k in keys if not k.endswith(".dcm")} == {
        ".gantry-export",
        "manifest.csv",
        "manifest.json",
    }
    needles = set(corpus.canaries) | {p.patient_id for p in corpus.patients}
    blobs = {k: fs.cat_file(k) for k in keys}
    assert [(k, n) for k, b in blobs.items() for n in needles if n.encode() in b] == []


def test_session_tables_in_the_bucket(cloud: CloudBucket, corpus: Corpus, tmp_path: Path) -> None:
    options = cloud.server.options
    data = f"{cloud.root}/tables"
    with Session(tmp_path / "s.db", data=data, data_options=options) as s:
        r = s.ingest(corpus.root, workers=1, progress=False)
        assert r.indexed == len(corpus.paths)
        s.anonymize(None)
        listed = set(s.sql("SELECT rel FROM parquet_parts")["rel"])
    with Session(tmp_path / "s.db", data_options=options, read_only=True) as s:
        assert s.sql("SELECT count(*) AS n FROM instances")["n"][0] == len(corpus.paths)
        assert s.sql("SELECT count(DISTINCT file_id) AS n FROM plan")["n"][0] == len(corpus.paths)
        assert len(s.patients) == len(corpus.patients)
    keys = {k.split("/tables/", 1)[1] for k in cloud.fs().find(f"{cloud.bucket}/tables")}
    assert keys == listed | {".gantry-session"}


def test_missing_bucket_is_a_clear_error(cloud: CloudBucket, tmp_path: Path) -> None:
    url = f"{cloud.server.scheme}://no-such-bucket-{cloud.bucket}/scans"
    with pytest.raises(StorageError, match="bucket does not exist|no such object"):
        Session(tmp_path / "s.db").ingest(url, storage_options=cloud.server.options, progress=False)
    with pytest.raises(StorageError, match="bucket does not exist|no such object"):
        Session(tmp_path / "t.db", data=url, data_options=cloud.server.options).ingest(
            tmp_path, progress=False
        )


def test_wrong_azure_key_is_refused_clearly(
    corpus: Corpus, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> None:
    # the GCS emulator accepts any token, so only Azurite can refuse a credential
    server: Emulator = request.getfixturevalue("azure_server")
    good = server.env["AZURE_STORAGE_CONNECTION_STRING"]
    wrong = good.replace(AZURITE_KEY, base64.b64encode(b"not the key" * 6).decode())
    bucket = f"b-{uuid.uuid4().hex[:12]}"
    monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING", good)
    server.make_bucket(bucket)
    monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING", wrong)
    with pytest.raises(StorageError, match="access denied"):
        Session(tmp_path / "s.db").ingest(f"az://{bucket}/scans", progress=False)
    with pytest.raises(StorageError, match="access denied"):
        Session(tmp_path / "t.db", data=f"az://{bucket}/t").ingest(corpus.root, progress=False)
    monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING", good)
    with Session(tmp_path / "t.db", data=f"az://{bucket}/t") as s:  # resumes with the right key
        assert s.ingest(corpus.root, workers=1, progress=False).indexed == len(corpus.paths)
