"""Hostile input at ingest: limits with reasons, and no file (or batch) sinks a run."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pydicom
import pytest
from click.testing import CliRunner

from gantry import Session
from gantry.errors import ConfigError
from gantry.ingest import IngestLimits, read_batch
from gantry.ingest import _batch as batch_module
from gantry.testing import make_instance
from gantry.testing._hostile import (
    MUTATIONS,
    deflate_bomb_bytes,
    write_deep_nesting,
    write_deflate_bomb,
)

SAMPLES = Path(pydicom.__file__).parent / "data" / "test_files"


@pytest.mark.parametrize("fast", [True, False])
@pytest.mark.parametrize("depth", [65, 127, 128, 129, 50_000])
def test_deep_nesting_is_skipped_with_its_reason(tmp_path: Path, fast: bool, depth: int) -> None:
    path = write_deep_nesting(tmp_path / "deep.dcm", depth)
    batch = read_batch([path], fast=fast)
    assert batch.instances.num_rows == 0
    assert batch.skipped.column("reason").to_pylist() == ["over_limit"]
    detail = batch.skipped.column("detail").to_pylist()[0]
    assert "`max_depth`" in detail and str(tmp_path) not in detail


@pytest.mark.parametrize("fast", [True, False])
def test_nesting_within_a_raised_limit_is_indexed_past_int8(tmp_path: Path, fast: bool) -> None:
    path = write_deep_nesting(tmp_path / "deep.dcm", 130)
    batch = read_batch([path], fast=fast, limits=IngestLimits(max_depth=200))
    assert batch.skipped.num_rows == 0
    # the innermost item is empty: its sequence element sits one level up
    assert max(batch.elements.column("depth").to_pylist()) == 129


def test_exactly_at_the_depth_limit_is_indexed(tmp_path: Path) -> None:
    batch = read_batch([write_deep_nesting(tmp_path / "deep.dcm", 64)])
    assert batch.skipped.num_rows == 0
    assert max(batch.elements.column("depth").to_pylist()) == 63


def _peak_mb() -> float:
    status = Path("/proc/self/status").read_text()
    return int(status.split("VmHWM:")[1].split()[0]) / 1024


def _reset_peak_mb() -> float:
    """Reset VmHWM to the current RSS (Linux >= 4.0) and return it."""
    Path("/proc/self/clear_refs").write_text("5")
    return _peak_mb()


@pytest.mark.parametrize("fast", [True, False])
def test_deflate_bomb_is_skipped_within_bounded_memory(tmp_path: Path, fast: bool) -> None:
    path = write_deflate_bomb(tmp_path / "bomb.dcm", 64 << 20)
    assert path.stat().st_size < 200_000
    before = _reset_peak_mb()  # VmHWM back to the current RSS, so the growth can show
    batch = read_batch([path], fast=fast, limits=IngestLimits(max_inflated_bytes=4 << 20))
    grown_mb = _peak_mb() - before
    assert batch.skipped.column("reason").to_pylist() == ["over_limit"]
    assert "`max_inflated_bytes`" in batch.skipped.column("detail")[0].as_py()
    assert grown_mb < 48  # never the 64 MiB the bomb inflates to


def test_deflated_file_under_the_limit_is_indexed(tmp_path: Path) -> None:
    path = tmp_path / "small.dcm"
    path.write_bytes(deflate_bomb_bytes(1 << 20))
    batch = read_batch([path])
    assert batch.skipped.num_rows == 0 and batch.instances.num_rows == 1
    sample = read_batch([SAMPLES / "image_dfl.dcm"])
    assert sample.instances.num_rows == 1


@pytest.mark.parametrize("fast", [True, False])
def test_element_length_limit(fast: bool) -> None:
    ct = SAMPLES / "CT_small.dcm"
    assert read_batch([ct], fast=fast).instances.num_rows == 1
    batch = read_batch([ct], fast=fast, limits=IngestLimits(max_element_bytes=64))
    assert batch.skipped.column("reason").to_pylist() == ["over_limit"]
    assert "`max_element_bytes`" in batch.skipped.column("detail")[0].as_py()


def test_frame_limit(tmp_path: Path) -> None:
    path = tmp_path / "mf.dcm"
    make_instance(path, modality="US", frames=3)
    assert read_batch([path], limits=IngestLimits(max_frames=3)).instances.num_rows == 1
    batch = read_batch([path], limits=IngestLimits(max_frames=2))
    assert batch.skipped.column("detail")[0].as_py().startswith("over the `max_frames` limit of 2")


def test_limits_are_validated() -> None:
    with pytest.raises(ConfigError, match="max_dept"):
        IngestLimits.of({"max_dept": 3})
    with pytest.raises(ConfigError, match="positive integer"):
        IngestLimits(max_frames=0)
    with pytest.raises(ConfigError, match="at most 250"):
        IngestLimits(max_depth=10_000)


def _folder(tmp_path: Path) -> tuple[Path, list[Path]]:
    root = tmp_path / "in"
    root.mkdir()
    good = [root / f"ok{i}.dcm" for i in range(4)]
    for i, path in enumerate(good):
        make_instance(path, modality="CT", seed=i)
    write_deep_nesting(root / "a_deep.dcm", 128)
    write_deep_nesting(root / "z_deep.dcm", 5_000)
    write_deflate_bomb(root / "m_bomb.dcm", 8 << 20)
    return root, good


@pytest.mark.parametrize("workers", [1, 2])
def test_a_folder_with_hostile_files_ingests_and_resumes(tmp_path: Path, workers: int) -> None:
    root, good = _folder(tmp_path)
    with Session(tmp_path / "s.db") as s:
        r = s.ingest(root, workers=workers, progress=False, limits={"max_inflated_bytes": 1 << 20})
        again = s.ingest(root, workers=workers, progress=False)
        skipped = s.sql("SELECT reason, count(*) AS n FROM skipped GROUP BY reason")
    assert r.indexed == len(good) and r.skipped == 3
    assert r.skipped_by_reason == {"over_limit": 3}
    assert dict(skipped.iter_rows()) == {"over_limit": 3}
    assert again.indexed == 0 and again.already_indexed == r.files_seen


def test_a_failing_batch_is_retried_file_by_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root, good = _folder(tmp_path)
    real = batch_module._typed_columns

    def fails_on_batches(files: list[Any]) -> Any:  # a reader bug that only bites whole batches
        if len(files) > 1:
            raise TypeError("simulated bug")
        return real(files)

    monkeypatch.setattr(batch_module, "_typed_columns", fails_on_batches)
    with Session(tmp_path / "s.db") as s:
        r = s.ingest(root, workers=1, progress=False, limits={"max_inflated_bytes": 1 << 20})
        n = s.sql("SELECT count(*) AS n FROM instances")["n"][0]
    assert r.indexed == n == len(good) and r.skipped == 3


class _FlakyExecutor(ThreadPoolExecutor):
    """An executor whose multi-file tasks fail as if their worker had died."""

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        if len(args[0]) > 1:
            future: Future[Any] = Future()
            future.set_exception(RuntimeError("worker died"))
            return future
        return super().submit(fn, *args, **kwargs)


def test_a_batch_whose_worker_dies_is_retried_file_by_file(tmp_path: Path) -> None:
    root, good = _folder(tmp_path)
    with _FlakyExecutor(2) as ex, Session(tmp_path / "s.db") as s:
        r = s.ingest(root, executor=ex, progress=False, limits={"max_inflated_bytes": 1 << 20})
        assert r.indexed == len(good) and r.skipped == 3
        assert s.sql("SELECT count(*) AS n FROM instances")["n"][0] == len(good)


def test_cli_limit_option(tmp_path: Path) -> None:
    from gantry.cli import cli as main

    root, good = _folder(tmp_path)
    runner = CliRunner()
    ok = runner.invoke(main, ["ingest", str(root), "--db", str(tmp_path / "s.db"), "-q", "-j", "1",
                              "--limit", "max_depth=200", "--limit", "max_inflated_bytes=1048576"])  # fmt: skip
    assert ok.exit_code == 0, ok.output
    assert f"indexed {len(good) + 1} instances" in ok.output
    bad = runner.invoke(main, ["ingest", str(root), "--db", str(tmp_path / "t.db"), "--limit", "max_depth=x"])  # fmt: skip
    assert bad.exit_code == 2 and "NAME=<positive integer>" in bad.output


@pytest.mark.parametrize("name", sorted(MUTATIONS))
def test_every_mutation_family_is_read_or_skipped_with_a_reason(tmp_path: Path, name: str) -> None:
    import random

    rng = random.Random(name)
    sample = (SAMPLES / "CT_small.dcm").read_bytes()
    paths = []
    for i in range(4):
        path = tmp_path / f"{name}{i}.dcm"
        path.write_bytes(MUTATIONS[name](sample, rng))
        paths.append(path)
    batch = read_batch(paths)
    assert batch.instances.num_rows + batch.skipped.num_rows == len(paths)
    for reason, detail in zip(
        batch.skipped.column("reason").to_pylist(),
        batch.skipped.column("detail").to_pylist(),
        strict=True,
    ):
        assert reason and detail and str(tmp_path) not in detail
