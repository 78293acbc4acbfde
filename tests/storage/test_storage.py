"""The Storage interface behaves the same on a folder, in memory and on S3 (moto)."""

from __future__ import annotations

import doctest
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from gantry.errors import MissingDependencyError, StorageError
from gantry.storage import FsspecStorage, LocalStorage, RangedFile, Storage, is_url, open_storage
from gantry.storage._fs import storage_error
from gantry.testing._s3 import S3Bucket

DOC = Path(__file__).parents[2] / "docs" / "storage.md"


@pytest.fixture(params=["local", "memory", "s3"])
def storage(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Storage]:
    if request.param == "local":
        yield open_storage(tmp_path / "root")
    elif request.param == "memory":
        yield open_storage(f"memory://t-{uuid.uuid4().hex}")
    else:
        s3: S3Bucket = request.getfixturevalue("s3")
        yield open_storage(f"s3://{s3.bucket}/prefix")


def test_every_back_end_keeps_the_interface(storage: Storage) -> None:
    assert isinstance(storage, Storage)
    assert storage.info("a/b.bin") is None
    storage.write_atomic("a/b.bin", bytes(range(256)))
    storage.write_atomic("c.txt", b"hello")
    listed = storage.list()
    assert [(o.rel, o.size) for o in listed] == [("a/b.bin", 256), ("c.txt", 5)]
    assert all(o.etag for o in listed)
    one = storage.info("a/b.bin")
    assert one is not None and one.path == storage.url("a/b.bin") == listed[0].path
    assert storage.read_range(one.path, 10, 14) == bytes([10, 11, 12, 13])
    assert storage.read("c.txt") == b"hello"
    before = storage.info("c.txt")
    storage.write_atomic("c.txt", b"hello, again")
    after = storage.info("c.txt")
    assert before is not None and after is not None and after.etag != before.etag
    src = Path(__file__)
    storage.publish(src, "d/copy.py")
    assert storage.read("d/copy.py") == src.read_bytes()
    storage.remove("d/copy.py")
    storage.remove("d/copy.py")  # removing what is gone is no error
    assert storage.info("d/copy.py") is None


def test_ranged_file_fetches_only_what_is_read(storage: Storage) -> None:
    storage.write_atomic("f.bin", bytes(1000))
    f = RangedFile(storage, storage.url("f.bin"), 1000)
    f.seek(900)
    assert len(f.read(500)) == 100 and f.read(1) == b""
    assert (f.fetched, f.requests) == (100, 1)


def test_urls_and_back_ends() -> None:
    assert is_url("gs://b/p") and is_url("az://c/p") and not is_url("C:/data")
    assert isinstance(open_storage("file:///tmp"), LocalStorage)
    assert isinstance(open_storage("memory://x"), FsspecStorage)


def test_a_missing_back_end_names_its_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "gcsfs", None)  # as if not installed
    with pytest.raises(MissingDependencyError, match=r"gantry\[gcs\]"):
        open_storage("gs://bucket/prefix")


@pytest.mark.parametrize(
    ("exc", "reason"),
    [
        (PermissionError("denied"), "access denied"),
        (FileNotFoundError("NoSuchBucket"), "the bucket does not exist"),
        (OSError("SlowDown: 503"), "throttling"),
        (ConnectionError("Connect timeout"), "did not answer"),
        (OSError("HTTP 503 Service Unavailable"), "throttling"),
        # a port or key that happens to contain 503 is not a throttle
        (
            ConnectionError("Could not connect to the endpoint URL: http://127.0.0.1:35031/b/k"),
            "did not answer",
        ),
        (
            ConnectionError("Could not connect to http://127.0.0.1:45503/IMG503.dcm"),
            "did not answer",
        ),
        (RuntimeError("odd"), "the request failed (RuntimeError)"),
    ],
)
def test_storage_errors_say_what_happened(exc: Exception, reason: str) -> None:
    err = storage_error("s3://b/k", exc)
    assert isinstance(err, StorageError) and reason in err.reason
    assert "odd" not in str(err)  # the SDK's text is not copied (it may quote a key)


def test_docs_examples_run() -> None:
    result = doctest.testfile(str(DOC), module_relative=False, verbose=False)
    assert result.attempted > 0 and result.failed == 0
