"""Export fast path (byte-level header rewrite) vs the pydicom path, naive script, dicognito.

Usage::

    python benchmarks/bench_export_fastpath.py [--n 2000] [--root DIR] [--single 1000]
                                               [--repeat 2] [--baseline-files 500]
                                               [--peer-files 300] [--no-peers]
                                               [--json out.json]

On the CT corpus of ``make_ct_files`` (``--root``/ct{n}, shared with the other
benchmarks; 512×512, ~100 elements with nested sequences and a private block; in
the page cache before every contender), each in a fresh process:

1. **per file, one process**: ``export_items`` on the first ``--single`` instances,
   once through the fast path (:mod:`gantry.export._rewrite`) and once with it
   disabled (the pydicom path), verification on: wall and CPU ms per file, plus the
   fast path's pieces (rewrite, verification walk, token scan, sha256) timed alone;
2. **whole export**: ``Session.export(dest, safe=False, workers=2, progress=False)``
   with verification on — the fast path as shipped (pool start included), then the
   pydicom path through a pool whose workers disable the fast path (pool start not
   included, which favours it), each on a fresh copy of the prepared session (the
   ``exports`` table grows with every run, and with it the cost of recording a
   chunk); ``--repeat`` alternating runs, best reported, with
   the runner's own costs (``_items``, ``_tokens``, ``_record``, manifests) and the
   peak RSS summed over the process and its workers;
3. **naive**: ``bench_export.naive`` (one process: dcmread → delete ~60 identifying
   elements and private ones → hash UIDs → save) on ``--baseline-files`` files;
4. **dicognito** (``peers.py``: its own venv under ``--root``) on ``--peer-files``.

Target: the verified export ≥ 10× dicognito's files/s, peak RSS < 1 GB.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import queue
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import print_table  # noqa: E402

WORKERS = 2
# the export runner's steps timed in the parent (``_slice_items`` builds the items of a slice,
# the verification tokens included); a name the runner no longer has is reported, not timed
PHASES = ("_slice_items", "instance_tokens", "_exclusions", "_done", "_write_manifests")


def _prepare(src: str, db: str) -> dict[str, Any]:
    from gantry import Session

    with Session(db) as s:
        r = s.ingest(src, workers=WORKERS, progress=False)
        t0 = time.perf_counter()
        s.anonymize(None)
        return {"indexed": r.indexed, "plan_s": time.perf_counter() - t0}


def _disable_fast_path() -> None:
    """Pool initializer: the workers of this pool take the pydicom path."""
    from gantry.export import _rewrite

    _rewrite.export_fast = lambda *a, **k: None  # type: ignore[assignment]


def _items(db: str) -> list[Any]:
    from gantry import Session
    from gantry.export._runner import _items as items_of

    with Session(db, read_only=True) as s:
        return items_of(s.store, s.sql("SELECT file_id FROM instances ORDER BY file_id"), None)


def single(db: str, dest: str, count: int) -> dict[str, Any]:
    """Per-file costs in one process, fast path then pydicom path, same instances."""
    import hashlib
    import timeit

    from gantry.export import _header_check, _rewrite
    from gantry.export._apply import export_items

    items = _items(db)[:count]
    for item in items:
        Path(item.src).read_bytes()
    out: dict[str, Any] = {"files": len(items)}
    fast = _rewrite.export_fast
    for name, patch in (("fast", None), ("pydicom", lambda *a, **k: None)):
        _rewrite.export_fast = patch or fast  # type: ignore[assignment]
        shutil.rmtree(dest, ignore_errors=True)
        export_items(items[:10], dest)  # warm imports and caches
        shutil.rmtree(dest, ignore_errors=True)
        t0, c0 = time.perf_counter(), time.process_time()
        got = export_items(items, dest)
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        assert all(o.status == "ok" for o in got), [o.reason for o in got if o.status != "ok"]
        out[f"{name} wall ms"] = wall / len(items) * 1e3
        out[f"{name} cpu ms"] = cpu / len(items) * 1e3
    _rewrite.export_fast = fast  # type: ignore[assignment]
    fell_back = 0
    for item in items[:200]:
        raw = Path(item.src).read_bytes()
        fell_back += _rewrite.rewrite_header(raw[: item.pixel_offset], item) is None
    out["fallbacks in 200"] = fell_back
    item = items[0]
    raw = Path(item.src).read_bytes()
    head = raw[: item.pixel_offset]
    new = _rewrite.rewrite_header(head, item)
    assert new is not None
    pieces = {
        "rewrite_header": lambda: _rewrite.rewrite_header(head, item),
        "verify walk": lambda: _header_check._check_structure(new.header, item, new.implicit),
        "verify walk + token scan": lambda: _header_check.verify_header(
            new.header, item, implicit=new.implicit
        ),
        "sha256 of the file": lambda: hashlib.sha256(raw).hexdigest(),
    }
    for name, fn in pieces.items():
        best = min(timeit.repeat(fn, number=200, repeat=3)) / 200
        out[f"{name} us"] = best * 1e6
    return out


def export(db: str, dest: str, pydicom_path: bool) -> dict[str, Any]:
    """One ``Session.export`` with the runner's phases timed and the tree's peak RSS."""
    import functools
    from concurrent.futures import ProcessPoolExecutor

    from bench_export import TreeRSS

    import gantry.export._runner as runner
    from gantry import Session

    spent: dict[str, float] = {}

    def timed(name: str, fn: Any) -> Any:
        @functools.wraps(fn)
        def wrapper(*a: Any, **k: Any) -> Any:
            t0 = time.perf_counter()
            try:
                return fn(*a, **k)
            finally:
                spent[name] = spent.get(name, 0.0) + time.perf_counter() - t0

        return wrapper

    for name in PHASES:
        if not hasattr(runner, name):
            print(f"phase {name}: not in gantry.export._runner any more (not timed)", flush=True)
            continue
        setattr(runner, name, timed(name, getattr(runner, name)))
    shutil.rmtree(dest, ignore_errors=True)
    executor = None
    if pydicom_path:
        executor = ProcessPoolExecutor(
            WORKERS,
            mp_context=multiprocessing.get_context("forkserver"),
            initializer=_disable_fast_path,
        )
        executor.submit(os.getpid).result()  # started before the clock
    try:
        with TreeRSS() as rss, Session(db) as s:
            t0 = time.perf_counter()
            r = s.export(
                dest, safe=False, workers=WORKERS, progress=False, verify=True, executor=executor
            )
            wall = time.perf_counter() - t0
    finally:
        if executor is not None:
            executor.shutdown()
    return {
        "seconds": wall,
        "exported": r.exported,
        "failed": r.failed.height,
        "bytes": r.bytes_written,
        "peak_rss_mb": rss.peak_mb,
        "phases": {k: round(v, 3) for k, v in spent.items()},
    }


def _child(fn: Any, args: tuple[Any, ...], q: Any) -> None:
    q.put(fn(*args))


def _in_child(fn: Any, *args: Any) -> Any:
    ctx = multiprocessing.get_context("spawn")
    q = ctx.Queue()
    proc = ctx.Process(target=_child, args=(fn, args, q))
    proc.start()
    while True:  # a child that dies (an exception, a kill) must not hang the benchmark
        try:
            result = q.get(timeout=1.0)
            break
        except queue.Empty:
            if not proc.is_alive():
                raise RuntimeError(
                    f"{fn.__name__}{args!r}: the child process exited with {proc.exitcode} "
                    "without a result (its traceback is above)"
                ) from None
    proc.join()
    return result


def _fresh_copy(db: Path, to: Path) -> Path:
    """A copy of the prepared session (catalog and data folder)."""
    shutil.rmtree(to.with_suffix(".gantry"), ignore_errors=True)
    shutil.copytree(db.with_suffix(".gantry"), to.with_suffix(".gantry"))
    shutil.copy2(db, to)
    return to


def _warm(paths: list[str]) -> None:
    for p in paths:
        Path(p).read_bytes()


def run(
    n: int,
    root: Path,
    single_files: int,
    repeat: int,
    baseline_files: int,
    peer_files: int,
    peers: bool,
) -> dict[str, Any]:
    from bench_cluster import corpus
    from bench_export import naive

    src = corpus(root, n)
    paths = sorted(str(p) for p in src.rglob("*.dcm"))
    mb = sum(os.path.getsize(p) for p in paths) / len(paths) / 1e6
    work = root / "fastpath-work"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    db = str(work / "bench.db")
    prep = _in_child(_prepare, str(src), db)
    _warm(paths)
    per_file = _in_child(single, db, str(work / "out-single"), min(single_files, n))
    runs: dict[str, list[dict[str, Any]]] = {"fast": [], "pydicom": []}
    for _ in range(repeat):
        for name in runs:
            run_db = _fresh_copy(Path(db), work / "run.db")  # no exports of earlier runs
            _warm(paths)
            os.sync()
            out = str(work / f"out-{name}")
            runs[name].append(_in_child(export, str(run_db), out, name == "pydicom"))
            shutil.rmtree(out, ignore_errors=True)
    best = {k: min(v, key=lambda r: r["seconds"]) for k, v in runs.items()}
    rows: list[dict[str, Any]] = []
    g_rate = best["fast"]["exported"] / best["fast"]["seconds"]

    def row(name: str, files: int, seconds: float, rss: float, cpu: Any = "") -> None:
        rate = files / seconds
        rows.append({"method": name, "files": files, "seconds": seconds, "files/s": rate,
                     "MB/s": rate * mb, "peak RSS MB": rss, "CPU ms/file (1 proc)": cpu,
                     "fast path ×": g_rate / rate})  # fmt: skip

    for name, label in (("fast", "fast path"), ("pydicom", "pydicom path")):
        b = best[name]
        row(f"gantry export, {label} (verify, {WORKERS} workers)", b["exported"], b["seconds"],
            b["peak_rss_mb"], per_file[f"{name} cpu ms"])  # fmt: skip
    k = min(baseline_files, n)
    _warm(paths[:k])
    nv = _in_child(naive, paths[:k], str(work / "out-naive"))
    row("naive pydicom script (1 process)", nv["files"], nv["seconds"], nv["peak_rss_mb"])
    peer: dict[str, Any] = {}
    if peers:
        import peers as peers_mod

        python, log = peers_mod.ensure_venv(root)
        if python is None:
            peer = {"error": log}
        else:
            folder, m, _ = peers_mod.subset(src, root, min(peer_files, n))
            peer = peers_mod.run_peer(python, "dicognito", folder, work / "out-dicognito", m)
        if "seconds" in peer:
            row(f"dicognito {peer['version']} (1 process)", peer["files"], peer["seconds"],
                peer["peak RSS MB"])  # fmt: skip
    return {
        "n": n,
        "MB per file": mb,
        "plan s": prep["plan_s"],
        "single": per_file,
        "runs": runs,
        "rows": rows,
        "peer": peer,
    }


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--root", type=Path, default=None, help="work folder, shared corpus")
    ap.add_argument("--single", type=int, default=1000, help="files for the per-file timing")
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--baseline-files", type=int, default=500)
    ap.add_argument("--peer-files", type=int, default=300)
    ap.add_argument("--no-peers", action="store_true")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    root = args.root or Path(tempfile.mkdtemp(prefix="gantry-bench-fastpath-"))
    root.mkdir(parents=True, exist_ok=True)
    res = run(args.n, root, args.single, args.repeat, args.baseline_files, args.peer_files,
              not args.no_peers)  # fmt: skip
    s = res["single"]
    print(f"## Export fast path: {res['n']:,} CT files ({res['MB per file']:.2f} MB each), "
          f"{os.cpu_count()} cores\n")  # fmt: skip
    print(f"One process, {s['files']:,} files, verification on: fast path "
          f"{s['fast wall ms']:.2f} ms/file wall, {s['fast cpu ms']:.2f} ms CPU; pydicom path "
          f"{s['pydicom wall ms']:.2f} ms wall, {s['pydicom cpu ms']:.2f} ms CPU "
          f"({s['pydicom cpu ms'] / s['fast cpu ms']:.1f}× the CPU). Fast path pieces: "
          + ", ".join(f"{k[:-3]} {v:.0f} µs" for k, v in s.items() if k.endswith(" us"))
          + f"; fallbacks in the first 200: {s['fallbacks in 200']}.\n")  # fmt: skip
    print_table(res["rows"])
    for name, runs in res["runs"].items():
        print(
            f"\n{name} path runs (s): {[round(r['seconds'], 2) for r in runs]}; "
            f"runner phases of the best: {min(runs, key=lambda r: r['seconds'])['phases']}"
        )
    if res["peer"].get("error"):
        print(f"\ndicognito: {res['peer']['error']}")
    print("\ntarget: the verified export >= 10x dicognito's files/s, peak RSS < 1 GB")
    if args.json:
        args.json.write_text(json.dumps(res, indent=1, default=str))


if __name__ == "__main__":
    main()
