"""Ingest on a local 2-worker Dask cluster vs the local process pool, and per-file costs.

Usage::

    python benchmarks/bench_cluster.py [--n 5000] [--workers 2] [--repeat 2] [--root DIR]
                                       [--sizing 1000] [--json out.json]

1. Writes ``--n`` CT files (``make_ct_files``, 512x512; reused from ``--root``) and
   warms the page cache.
2. Ingests them into a fresh session ``--repeat`` times with each backend,
   alternating: the default local process pool (``workers=N``, its start-up inside
   the timed run), a warm pool (a forkserver ``ProcessPoolExecutor`` started and
   warmed beforehand, passed as ``executor=``), and a
   ``LocalCluster(n_workers=N, threads_per_worker=1, processes=True)`` started once
   beforehand (start-up reported apart). The best run of each counts.
3. ``--sizing K``: per-core costs on K of the files, in this process (``workers=1``):
   ingest ms/file, ``elements`` rows and Parquet bytes per instance, plan seconds,
   export ms/file (verification on), output bytes per file — the figures
   ``docs/cluster.md`` scales to 10 million instances.

Target: Dask throughput >= 85 % of the process pool's on the same machine.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import shutil
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import print_table  # noqa: E402


def corpus(root: Path, n: int) -> Path:
    """``root/ct{n}``: the CT corpus the other benchmarks share (written when missing)."""
    from gantry.testing import make_ct_files

    src = root / f"ct{n}"
    if not src.exists() or len(_files(src)) != n:
        shutil.rmtree(src, ignore_errors=True)
        make_ct_files(src, n, workers=os.cpu_count() or 1)
    return src


def _files(src: Path) -> list[Path]:
    return sorted(p for p in src.rglob("*.dcm") if p.is_file())


def _fresh(db: Path) -> Path:
    shutil.rmtree(db.with_suffix(".gantry"), ignore_errors=True)
    db.unlink(missing_ok=True)
    return db


def _ingest(src: Path, db: Path, **kw: Any) -> dict[str, float]:
    from gantry import Session

    with Session(_fresh(db)) as s:
        r = s.ingest(src, progress=False, **kw)
    return {"seconds": r.seconds, "files": r.indexed + r.skipped, "elements": r.elements}


def compare(src: Path, work: Path, workers: int, repeat: int) -> dict[str, Any]:
    """Best-of-``repeat`` ingest throughput: process pool vs a local Dask cluster."""
    from distributed import Client, LocalCluster

    t0 = time.perf_counter()
    cluster = LocalCluster(
        n_workers=workers,
        threads_per_worker=1,
        processes=True,
        dashboard_address=None,
        worker_dashboard_address=None,
    )
    client = Client(cluster, set_as_default=False)
    client.wait_for_workers(workers)
    startup = time.perf_counter() - t0
    # a pool that outlives the runs too, warmed like the cluster's workers
    warm = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("forkserver"))
    list(warm.map(abs, range(workers)))
    pool: list[dict[str, float]] = []
    warm_pool: list[dict[str, float]] = []
    dask: list[dict[str, float]] = []
    try:
        for _ in range(repeat):
            pool.append(_ingest(src, work / "pool.db", workers=workers))
            warm_pool.append(_ingest(src, work / "warm.db", executor=warm, workers=workers))
            dask.append(_ingest(src, work / "dask.db", executor=client))
    finally:
        warm.shutdown()
        client.close()
        cluster.close()

    def best(runs: list[dict[str, float]]) -> float:
        return max(r["files"] / r["seconds"] for r in runs)

    return {
        "files": int(pool[0]["files"]),
        "workers": workers,
        "pool files/s": best(pool),
        "warm pool files/s": best(warm_pool),
        "dask files/s": best(dask),
        "dask / pool": best(dask) / best(pool),
        "dask / warm pool": best(dask) / best(warm_pool),
        "pool runs s": [round(r["seconds"], 2) for r in pool],
        "warm pool runs s": [round(r["seconds"], 2) for r in warm_pool],
        "dask runs s": [round(r["seconds"], 2) for r in dask],
        "cluster start-up s": startup,
    }


def sizing(src: Path, work: Path, k: int) -> dict[str, float]:
    """Per-core costs of ingest, plan and export on ``k`` files, in this process."""
    from gantry import Session

    sub = work / f"sizing{k}"
    if not sub.exists():
        sub.mkdir(parents=True)
        for p in _files(src)[:k]:
            (sub / p.name).symlink_to(p)
    for p in sub.iterdir():
        p.read_bytes()
    db = _fresh(work / "sizing.db")
    out = work / "sizing-out"
    shutil.rmtree(out, ignore_errors=True)
    with Session(db) as s:
        r = s.ingest(sub, workers=1, progress=False)
        data = db.with_suffix(".gantry") / "batches"
        parquet = sum(p.stat().st_size for p in data.rglob("*.parquet"))
        t0 = time.perf_counter()
        plan = s.anonymize()
        plan_s = time.perf_counter() - t0
        e = s.export(out, workers=1, safe=False, progress=False)
    return {
        "files": r.indexed,
        "ingest ms/file/core": 1000 * r.seconds / r.indexed,
        "elements rows/instance": r.elements / r.indexed,
        "Parquet bytes/instance": parquet / r.indexed,
        "input bytes/file": r.bytes_read / r.indexed,
        "plan s": plan_s,
        "plan rows/instance": int(plan["rows"].sum()) / r.indexed,
        "export ms/file/core": 1000 * e.seconds / max(1, e.exported),
        "output bytes/file": e.bytes_written / max(1, e.exported),
    }


def run(
    n: int = 5000,
    workers: int = 2,
    repeat: int = 2,
    root: Path | None = None,
    sizing_files: int = 0,
) -> dict[str, Any]:
    """Run the comparison (and optionally the sizing); return every figure."""
    root = root or Path(tempfile.mkdtemp(prefix="gantry-bench-cluster-"))
    root.mkdir(parents=True, exist_ok=True)
    src = corpus(root, n)
    for p in _files(src):
        p.read_bytes()
    work = root / "cluster-work"
    work.mkdir(exist_ok=True)
    out: dict[str, Any] = {"compare": compare(src, work, workers, repeat)}
    if sizing_files:
        out["sizing"] = sizing(src, work, min(sizing_files, n))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--n", type=int, default=5000)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--sizing", type=int, default=0, help="files for the per-core costs")
    ap.add_argument("--root", type=Path, default=None, help="work folder, shared corpus")
    ap.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = ap.parse_args()
    res = run(args.n, args.workers, args.repeat, args.root, args.sizing)
    print("## Ingest: local Dask cluster vs local process pool\n")
    print_table([res["compare"]])
    if "sizing" in res:
        print("\n## Per-core costs (workers=1, this process)\n")
        print_table([res["sizing"]])
    if args.json:
        args.json.write_text(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
