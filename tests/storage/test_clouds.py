"""Ingest from and export to Google Cloud Storage and Azure Blob, against their emulators."""

from __future__ import annotations

from pathlib import Path

from gantry import Session
from gantry.storage import Storage, open_storage
from gantry.testing import Corpus
from gantry.testing._cloud import CloudBucket


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
