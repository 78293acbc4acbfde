"""Ingest and export on a local Dask cluster: same results, exactly-once commits."""

from __future__ import annotations

import functools
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Executor, Future
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from click.testing import CliRunner
from polars.testing import assert_frame_equal

from gantry import Session
from gantry.cli import cli
from gantry.cluster import ENV_VAR, DaskExecutor, check_shared, open_backend
from gantry.config import load_config
from gantry.errors import ConfigError, MissingDependencyError
from gantry.export import run_export
from gantry.ingest._runner import ingest_batch
from gantry.testing import make_clutter, make_corpus, make_ct_files

distributed = pytest.importorskip("distributed")
cloudpickle = pytest.importorskip("cloudpickle")

pytestmark = [
    # a killed worker's sockets and the nanny's restart surface as resource
    # warnings in distributed's own threads; they say nothing about Gantry
    pytest.mark.filterwarnings("ignore::ResourceWarning:distributed.*"),
    pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning"),
    pytest.mark.filterwarnings("ignore:Port .* is already in use:UserWarning"),
    pytest.mark.filterwarnings("ignore:.*unclosed.*:ResourceWarning"),
]


@pytest.fixture(autouse=True)
def _no_env_executor(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV_VAR, raising=False)


@pytest.fixture(scope="module")
def client() -> Iterator[Any]:
    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    with (
        distributed.LocalCluster(
            n_workers=2,
            processes=True,
            threads_per_worker=1,
            dashboard_address=None,
            worker_dashboard_address=None,
        ) as cluster,
        distributed.Client(cluster, set_as_default=False) as c,
    ):
        yield c
    cloudpickle.unregister_pickle_by_value(sys.modules[__name__])


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("cluster") / "dicom"
    make_corpus(root, patients=2, studies_per_patient=2, series_per_study=2, canaries=True)
    make_clutter(root / "clutter")
    return root


@pytest.fixture(scope="module")
def local_index(corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, pl.DataFrame]:
    with Session(tmp_path_factory.mktemp("local") / "s.db") as s:
        s.ingest(corpus, workers=2, progress=False)
        return _frames(s)


def _frames(s: Session) -> dict[str, pl.DataFrame]:
    return {
        "instances": s.sql("SELECT * FROM instances").sort("file_id"),
        "elements": s.sql("SELECT * FROM elements").sort("file_id", "path"),
        "skipped": s.sql("SELECT * FROM skipped").sort("file_path"),
    }


def _assert_same(a: dict[str, pl.DataFrame], b: dict[str, pl.DataFrame]) -> None:
    for name in a:
        cols = sorted(a[name].columns)
        assert sorted(b[name].columns) == cols, name
        assert_frame_equal(a[name].select(cols), b[name].select(cols))


def _tasks_seen(client: Any) -> set[str]:
    """Task-name prefixes the scheduler has run (proof that work went to the cluster)."""
    return set(client.run_on_scheduler(lambda dask_scheduler: list(dask_scheduler.task_prefixes)))


# -- same results as the local pool ----------------------------------------------------------


def test_ingest_on_cluster_equals_local(
    client: Any, corpus: Path, local_index: dict[str, pl.DataFrame], tmp_path: Path
) -> None:
    progress: list[tuple[int, int]] = []
    with Session(tmp_path / "s.db") as s:
        r = s.ingest(
            corpus, executor=client, progress=False, callback=lambda d, t: progress.append((d, t))
        )
        assert r.batches == len(list((tmp_path / "s.gantry" / "batches").iterdir())) > 1
        _assert_same(local_index, _frames(s))
    assert "ingest_batch-gantry" in _tasks_seen(client)
    # the callback advanced once per finished task, up to every file
    assert len(progress) == r.batches
    assert [d for d, _ in progress] == sorted(d for d, _ in progress)
    assert progress[-1] == (r.files_seen, r.files_seen)


def test_env_var_and_address_select_the_cluster(
    client: Any,
    corpus: Path,
    local_index: dict[str, pl.DataFrame],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    address = client.scheduler.address
    monkeypatch.setenv(ENV_VAR, address)
    with Session(tmp_path / "env.db") as s:
        s.ingest(corpus, progress=False)
        _assert_same(local_index, _frames(s))
    monkeypatch.delenv(ENV_VAR)
    with Session(tmp_path / "addr.db") as s:
        s.ingest(corpus, cluster=address, progress=False)
        _assert_same(local_index, _frames(s))


def test_export_on_cluster_writes_identical_bytes(
    client: Any, corpus: Path, tmp_path: Path
) -> None:
    with Session(tmp_path / "s.db") as s:
        s.ingest(corpus, workers=2, progress=False)
        s.anonymize()
        local = s.export(tmp_path / "local", safe=False, workers=2, progress=False)
        remote = s.export(tmp_path / "dask", safe=False, executor=client, progress=False)
        rows = s.sql("SELECT dest, count(*) AS n, count(DISTINCT file_id) AS ids FROM exports "
                     "GROUP BY dest")  # fmt: skip
    assert local.ok and remote.ok and remote.exported == local.exported > 0
    assert rows["n"].to_list() == rows["ids"].to_list() == [local.exported] * 2
    assert "export_items-gantry" in _tasks_seen(client)
    files = sorted(p.relative_to(tmp_path / "local") for p in (tmp_path / "local").rglob("*.dcm"))
    assert files == sorted(
        p.relative_to(tmp_path / "dask") for p in (tmp_path / "dask").rglob("*.dcm")
    )
    for rel in files:
        assert (tmp_path / "local" / rel).read_bytes() == (tmp_path / "dask" / rel).read_bytes()
    for name in ("manifest.csv", "manifest.json"):
        assert (tmp_path / "local" / name).read_bytes() == (tmp_path / "dask" / name).read_bytes()


def test_cli_scheduler_option(client: Any, corpus: Path, tmp_path: Path) -> None:
    db = str(tmp_path / "cli.db")
    address = client.scheduler.address
    got = CliRunner().invoke(cli, ["ingest", str(corpus), "--db", db, "-q", "--scheduler", address])
    assert got.exit_code == 0, got.output
    assert CliRunner().invoke(cli, ["anonymize", "--db", db]).exit_code == 0
    out = tmp_path / "out"
    got = CliRunner().invoke(
        cli, ["export", str(out), "--db", db, "--unsafe", "-q", "--scheduler", address]
    )
    assert got.exit_code == 0, got.output
    assert len(list(out.rglob("*.dcm"))) > 0


# -- exactly once ------------------------------------------------------------------------------


def test_a_task_run_twice_overwrites_its_own_stage(corpus: Path, tmp_path: Path) -> None:
    paths = sorted(str(p) for p in corpus.rglob("*") if p.is_file())
    with Session(tmp_path / "once.db") as s:
        s.ingest(corpus, workers=1, progress=False)
        once = _frames(s)
    with Session(tmp_path / "twice.db") as s:
        stage = s.store.stage_dir("batch")
        # a first attempt died mid-write, leaving a torn shard behind
        (stage / "elements.parquet").write_bytes(b"PAR1 torn")
        ingest_batch(paths, str(stage))
        second = ingest_batch(paths, str(stage))  # a retry of an attempt that finished
        s.store.commit_batch(Path(second.stage))
        s.store.refresh_views()
        assert sorted(p.name for p in stage.parent.parent.joinpath("batches").iterdir()) == [
            stage.name
        ]
        _assert_same(once, _frames(s))


def _slow_call(delay: float, log: str, fn: Callable[..., Any], *args: Any, **kw: Any) -> Any:
    """Runs on a worker: note the attempt, wait, then do the real task."""
    ident = args[1] if fn.__name__ == "ingest_batch" else args[0][0].file_id
    with open(log, "a") as fh:
        fh.write(f"{ident}\n")
    time.sleep(delay)
    return fn(*args, **kw)


class _Slowed(Executor):
    """Submits every task through ``_slow_call`` so tasks are in flight when a worker dies."""

    def __init__(self, inner: DaskExecutor, delay: float, log: Path) -> None:
        self.inner, self.delay, self.log = inner, delay, str(log)

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kw: Any) -> Future[Any]:
        slow = functools.partial(_slow_call, self.delay, self.log, fn)
        functools.update_wrapper(slow, fn)
        return self.inner.submit(slow, *args, **kw)


def _kill_a_busy_worker(client: Any) -> Callable[[int, int], None]:
    """A progress callback that SIGKILLs a worker running a task, after the first commit."""
    fired = threading.Event()

    def callback(done: int, total: int) -> None:
        if fired.is_set():
            return
        fired.set()
        busy = [w for w, keys in client.processing().items() if keys]
        pid = client.run(os.getpid, workers=busy[:1])[busy[0]]
        os.kill(pid, signal.SIGKILL)

    return callback


@pytest.mark.slow
def test_worker_killed_mid_ingest_loses_and_duplicates_nothing(client: Any, tmp_path: Path) -> None:
    src = tmp_path / "ct"
    paths = make_ct_files(src, 48, rows=16, columns=16)
    log = tmp_path / "attempts.log"
    with Session(tmp_path / "local.db") as s:
        s.ingest(src, workers=1, progress=False)
        expected = _frames(s)
    with Session(tmp_path / "s.db") as s:
        r = s.ingest(
            src,
            executor=_Slowed(DaskExecutor(client), 0.25, log),
            workers=12,  # 2 files per batch: many small tasks
            progress=False,
            callback=_kill_a_busy_worker(client),
        )
        got = _frames(s)
        batches = list((tmp_path / "s.gantry" / "batches").iterdir())
    attempts = log.read_text().split()
    assert len(attempts) > len(set(attempts)), "no task was retried: the kill came too late"
    assert r.indexed == len(paths) and r.batches == len(batches) == len(set(attempts))
    assert got["instances"]["file_id"].is_unique().all()
    _assert_same(expected, got)
    client.wait_for_workers(2, timeout=60)


@pytest.mark.slow
def test_worker_killed_mid_export_loses_and_duplicates_nothing(client: Any, tmp_path: Path) -> None:
    src = tmp_path / "ct"
    make_ct_files(src, 40, rows=16, columns=16)
    log = tmp_path / "attempts.log"
    client.wait_for_workers(2, timeout=60)
    with Session(tmp_path / "s.db") as s:
        s.ingest(src, workers=1, progress=False)
        s.anonymize()
        local = s.export(tmp_path / "local", safe=False, workers=1, progress=False)
        r = run_export(
            s.store,
            tmp_path / "dask",
            config=load_config(None),
            safe=False,
            workers=10,  # 4 files per task
            progress=False,
            callback=_kill_a_busy_worker(client),
            executor=_Slowed(DaskExecutor(client), 0.25, log),
        )
        rows = s.sql("SELECT file_id FROM exports WHERE dest = ?", [str(tmp_path / "dask")])
    attempts = log.read_text().split()
    assert len(attempts) > len(set(attempts)), "no task was retried: the kill came too late"
    assert r.ok and r.exported == local.exported == 40
    assert rows.height == rows["file_id"].n_unique() == 40

    def clean_files(root: Path) -> list[str]:
        # a worker killed mid-write may leave a hidden temporary file (docs/cluster.md)
        return sorted(p.name for p in root.rglob("*") if p.is_file() and p.name[0] != ".")

    assert clean_files(tmp_path / "dask") == clean_files(tmp_path / "local")
    client.wait_for_workers(2, timeout=60)


# -- choosing the backend --------------------------------------------------------------------


def test_backend_resolution(client: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with open_backend() as b:
        assert b.executor is None and not b.is_cluster
    monkeypatch.setenv(ENV_VAR, "local")
    with open_backend() as b:
        assert b.executor is None
    monkeypatch.setenv(ENV_VAR, "localhost:8786")
    with pytest.raises(ConfigError, match="GANTRY_EXECUTOR"):
        with open_backend():
            pass
    with pytest.raises(ConfigError, match="`cluster`"):
        with open_backend(client, cluster="tcp://x:1"):
            pass
    with pytest.raises(ConfigError, match="`executor`"):
        with open_backend(object()):
            pass
    with open_backend(client) as b:
        assert b.is_cluster and b.workers == 2 and b.address == client.scheduler.address
    assert client.status == "running"  # a caller's client is never closed


def test_workers_must_see_the_paths(client: Any, tmp_path: Path) -> None:
    check_shared(client, writable=[tmp_path], readable=[tmp_path])
    assert not list(tmp_path.iterdir())  # the probe file is gone
    with pytest.raises(ConfigError, match="every worker to see"):
        check_shared(client, readable=[tmp_path / "not-there"])


def test_cluster_without_dask_names_the_extra(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "distributed", None)  # import distributed → ImportError
    with Session(tmp_path / "s.db") as s:
        with pytest.raises(MissingDependencyError, match=r"gantry\[cluster\]"):
            s.ingest(tmp_path, cluster="tcp://127.0.0.1:8786", progress=False)


def test_gantry_works_without_dask(tmp_path: Path) -> None:
    script = textwrap.dedent(
        f"""
        import sys
        class Block:
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in ("dask", "distributed"):
                    raise ImportError(name)
        sys.meta_path.insert(0, Block())
        import gantry, gantry.cluster
        from gantry.testing import make_instance
        make_instance({str(tmp_path / "d" / "a.dcm")!r})
        with gantry.Session({str(tmp_path / "s.db")!r}) as s:
            print(s.ingest({str(tmp_path / "d")!r}, workers=1, progress=False).indexed)
        assert "distributed" not in sys.modules
        """
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "1"


# -- OCR scan ----------------------------------------------------------------------------------


def _scan_frames(s: Session) -> dict[str, pl.DataFrame]:
    """The scan's tables without what differs by run (scan ids, times)."""
    return {
        "ocr_scans": s.sql("SELECT * EXCLUDE (scan_id, scanned_at) FROM ocr_scans").sort("file_id"),
        "text_regions": s.sql("SELECT * EXCLUDE (scan_id) FROM text_regions").sort(
            "file_id", "frame", "r1", "c1"
        ),
    }


def test_scan_on_cluster_equals_local(client: Any, tmp_path: Path) -> None:
    pytest.importorskip("rapidocr_onnxruntime")
    from gantry.testing._text import make_text_instance

    root = tmp_path / "dicom"
    for i, kw in enumerate([
        dict(kind="us", size=14), dict(kind="blank-ct"), dict(kind="screen", size=13),
        dict(kind="us", frames=3, text_frames=[2], size=12),
    ]):  # fmt: skip
        make_text_instance(root / f"{i}.dcm", rows=96, columns=192, seed=i, **kw)
    results = {}
    for name, where in (("local", {"workers": 1}), ("dask", {"executor": client})):
        with Session(tmp_path / f"{name}.db") as s:
            s.ingest(root, workers=1, progress=False)
            r = s.scan_pixels(safe=True, progress=False, **where)
            assert (r.scanned, r.failed) == (4, 0)
            results[name] = _scan_frames(s)
    _assert_same(results["local"], results["dask"])
    assert results["dask"]["text_regions"]["phi"].any()
    assert "scan_chunk-gantry" in _tasks_seen(client)  # (dask drops the leading "_")
    db, address = str(tmp_path / "dask.db"), client.scheduler.address
    got = CliRunner().invoke(cli, ["scan", "--db", db, "--safe", "-q", "--scheduler", address])
    assert got.exit_code == 0, got.output
    assert "scanned 0 of 4 instances (4 already scanned" in got.output  # resumable


def test_remote_ingest_on_cluster_equals_local(
    client: Any,
    corpus: Path,
    local_index: dict[str, pl.DataFrame],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from gantry.testing._s3 import S3Bucket, moto_missing, moto_server, s3_env

    reason = moto_missing()
    if reason:
        pytest.skip(reason)
    with moto_server() as server:
        env = s3_env(server.url)
        for k, v in env.items():  # the workers started earlier: each task carries these
            monkeypatch.setenv(k, v)
        bucket = S3Bucket(server, "scans", env)
        bucket.client().create_bucket(Bucket="scans")
        bucket.upload(corpus, "ct")
        with Session(tmp_path / "s.db") as s:
            r = s.ingest("s3://scans/ct", executor=client, progress=False)
            assert r.batches > 1
            remote = _frames(s)
            objects = s.sql("SELECT count(*) AS n, count(etag) AS etags FROM objects").row(0)
    assert any(p.startswith("ingest_objects") for p in _tasks_seen(client))
    local = {name: frame.clone() for name, frame in local_index.items()}
    prefix = str(corpus) + "/"

    def relative(frames: dict[str, pl.DataFrame], strip: str) -> dict[str, pl.DataFrame]:
        out = {}
        for name, frame in frames.items():
            if "file_path" in frame.columns:
                frame = frame.with_columns(pl.col("file_path").str.strip_prefix(strip))
            out[name] = frame.drop("file_id", "file_mtime", strict=False)
        return out

    a, b = relative(local, prefix), relative(remote, "s3://scans/ct/")
    for name in ("instances", "skipped"):
        cols = [c for c in a[name].columns if c not in ("parser",)]
        assert_frame_equal(
            a[name].select(cols).sort("file_path"), b[name].select(cols).sort("file_path")
        )
    assert a["elements"].height == b["elements"].height
    assert objects == (r.files_seen, r.files_seen)  # one row per object read, ETag and all
