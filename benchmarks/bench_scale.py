"""Scale curve: time and peak memory of each stage as the input grows.

Usage::

    python benchmarks/bench_scale.py [--rows 10000,100000,1000000] [--files 1000,5000,20000]
                                     [--elements 20] [--root DIR] [--json FILE]
                                     [--plot docs/scale.svg]

Two series, every size in a fresh spawned process:

- **index rows** (no DICOM files): ``make_synthetic_index`` writes ``N`` instances
  with ``--elements`` element rows each, committed as ingest batches ("index"),
  then ``Session.audit`` ("audit") and ``Session.anonymize`` ("plan");
- **files**: ``make_ct_files`` (512x512 CT, made once under ``--root``, not
  timed), then ``Session.ingest`` over them ("ingest") and, in another fresh
  process, ``Session.export`` with the default profile and verification on
  ("export"; the plan is built before it, outside the timing).

Each phase reports wall seconds, CPU seconds (this process plus every worker,
sampled with psutil) and peak memory: the largest sum of the resident sets of
the process and its workers. Wall time on a shared machine is noisy; CPU seconds
are the steadier figure. Growth is linear when time/size stays flat across sizes
(the ``us/unit`` column). ``--plot`` draws both series on log-log axes
(matplotlib, ``pip install 'gantry[bench]'``).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import print_table  # noqa: E402


class TreeUsage:
    """Sample the CPU time and the summed RSS of this process and its descendants."""

    def __init__(self, interval: float = 0.05) -> None:
        import psutil

        self._psutil = psutil
        self.interval = interval
        self.peak_mb = 0.0
        self._cpu: dict[int, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._me = psutil.Process()
        self._start_cpu = self._own_cpu()
        self._before = {p.pid: self._cpu_of(p) for p in self._me.children(recursive=True)}

    def _own_cpu(self) -> float:
        t = self._me.cpu_times()
        return t.user + t.system

    def _cpu_of(self, p: Any) -> float:
        try:
            t = p.cpu_times()
            return float(t.user + t.system)
        except self._psutil.Error:
            return 0.0

    def _sample(self) -> None:
        total = 0
        for p in [self._me, *self._me.children(recursive=True)]:
            try:
                total += p.memory_info().rss
                if p.pid != self._me.pid:
                    self._cpu[p.pid] = self._cpu_of(p)
            except self._psutil.Error:
                pass
        self.peak_mb = max(self.peak_mb, total / 2**20)

    def _loop(self) -> None:
        while not self._stop.is_set():
            self._sample()
            self._stop.wait(self.interval)

    @property
    def cpu_s(self) -> float:
        """CPU seconds of this process and of its descendants since the start."""
        workers = sum(c - self._before.get(pid, 0.0) for pid, c in self._cpu.items())
        return self._own_cpu() - self._start_cpu + workers

    def __enter__(self) -> TreeUsage:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()


def _measure(phase: str, size: int, unit: str, fn: Callable[[], Any]) -> dict[str, Any]:
    t0 = time.perf_counter()
    with TreeUsage() as usage:
        fn()
    seconds = time.perf_counter() - t0
    print(f"  {phase} {size:,} {unit}: {seconds:.2f} s", file=sys.stderr, flush=True)
    return {
        "phase": phase,
        "size": size,
        "unit": unit,
        "seconds": seconds,
        "cpu_s": usage.cpu_s,
        "peak_mb": usage.peak_mb,
        "us_per_unit": seconds / size * 1e6,
        "cpu_us_per_unit": usage.cpu_s / size * 1e6,
    }


# -- children (each in a fresh spawned process) ---------------------------------------------


def index_child(n: int, elements: int, root: str) -> list[dict[str, Any]]:
    from gantry import Session
    from gantry.testing._synthetic_index import make_synthetic_index

    work = Path(root) / f"rows{n}"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    rows = []
    try:
        with Session(work / "s.db") as s:
            rows.append(
                _measure("index", n, "rows", lambda: make_synthetic_index(
                    s.store, n, elements_per_instance=elements))
            )  # fmt: skip
            rows.append(_measure("audit", n, "rows", lambda: s.audit(None)))
            rows.append(_measure("plan", n, "rows", lambda: s.anonymize(None)))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return rows


def ingest_child(src: str, db: str, n: int) -> list[dict[str, Any]]:
    from gantry import Session

    with Session(db) as s:
        row = _measure("ingest", n, "files", lambda: s.ingest(src, progress=False))
        s.anonymize(None)  # for the export, in the next process; not timed
    return [row]


def export_child(db: str, dest: str, n: int) -> list[dict[str, Any]]:
    from gantry import Session

    with Session(db) as s:
        return [_measure("export", n, "files", lambda: s.export(dest, progress=False))]


def _child(fn: Any, args: tuple[Any, ...], q: Any) -> None:
    try:
        q.put(("ok", fn(*args)))
    except BaseException as exc:  # report it to the parent rather than hang it
        q.put(("error", f"{type(exc).__name__}: {exc}"))


def _in_child(fn: Any, *args: Any) -> list[dict[str, Any]]:
    ctx = multiprocessing.get_context("spawn")
    q = ctx.Queue()
    proc = ctx.Process(target=_child, args=(fn, args, q))
    proc.start()
    status, value = q.get()
    proc.join()
    if status != "ok":
        raise RuntimeError(f"{fn.__name__}{args}: {value}")
    return list(value)


def run_rows(sizes: list[int], elements: int, root: Path) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for n in sizes:
        out += _in_child(index_child, n, elements, str(root))
    return out


def run_files(sizes: list[int], root: Path) -> list[dict[str, Any]]:
    from gantry.testing import make_ct_files

    out: list[dict[str, Any]] = []
    for n in sizes:
        src = root / f"ct{n}"
        if not src.is_dir() or sum(1 for _ in src.rglob("*.dcm")) < n:
            make_ct_files(src, n)
        work = root / f"files{n}"
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir(parents=True)
        try:
            out += _in_child(ingest_child, str(src), str(work / "s.db"), n)
            out += _in_child(export_child, str(work / "s.db"), str(work / "out"), n)
        finally:
            shutil.rmtree(work, ignore_errors=True)
    return out


def plot(rows: list[dict[str, Any]], dest: Path, title: str) -> None:
    """Seconds and peak memory against size, one line per phase, log-log axes."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:  # a benchmark helper, not the package: say what to install
        raise SystemExit("the plot needs matplotlib: pip install 'gantry[bench]'") from exc
    units = list(dict.fromkeys(r["unit"] for r in rows))
    fig, axes = plt.subplots(len(units), 2, figsize=(10, 3.6 * len(units)), squeeze=False)
    for i, unit in enumerate(units):
        mine = [r for r in rows if r["unit"] == unit]
        for phase in dict.fromkeys(r["phase"] for r in mine):
            pts = sorted((r["size"], r["seconds"], r["cpu_s"], r["peak_mb"]) for r in mine
                         if r["phase"] == phase)  # fmt: skip
            xs = [p[0] for p in pts]
            (line,) = axes[i][0].plot(xs, [p[1] for p in pts], "o-", label=f"{phase} (wall)")
            axes[i][0].plot(xs, [p[2] for p in pts], "x--", color=line.get_color(),
                            label=f"{phase} (CPU)")  # fmt: skip
            axes[i][1].plot(xs, [p[3] for p in pts], "o-", label=phase)
        if mine:  # a line of slope 1 through the smallest first phase: linear growth
            first = min(mine, key=lambda r: r["size"])
            xs = sorted({r["size"] for r in mine})
            axes[i][0].plot(xs, [first["seconds"] * x / first["size"] for x in xs], ":",
                            color="grey", label="linear")  # fmt: skip
        for ax, ylabel in ((axes[i][0], "seconds"), (axes[i][1], "peak memory (MB)")):
            ax.set_xscale("log")
            ax.set_yscale("log")
            ax.set_xlabel(f"{unit} (synthetic index rows)" if unit == "rows" else unit)
            ax.set_ylabel(ylabel)
            ax.grid(True, which="both", alpha=0.3)
            ax.legend(fontsize=7)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    dest.parent.mkdir(parents=True, exist_ok=True)
    # SVG: text, so the committed figure diffs; no timestamp, so a re-run changes only data
    fig.savefig(dest, metadata={"Date": None} if dest.suffix == ".svg" else None)
    plt.close(fig)


def _sizes(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x.strip()]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--rows", type=_sizes, default=[10_000, 100_000, 1_000_000])
    ap.add_argument("--files", type=_sizes, default=[1000, 5000, 20_000])
    ap.add_argument("--elements", type=int, default=20, help="element rows per instance")
    ap.add_argument("--root", type=Path, default=None, help="work folder (default: a temp dir)")
    ap.add_argument("--json", type=Path, default=None, help="also write the figures here")
    ap.add_argument("--plot", type=Path, default=None, help="draw the curves (.svg or .png)")
    args = ap.parse_args(argv)
    root = args.root or Path(tempfile.mkdtemp(prefix="bench-scale-"))
    root.mkdir(parents=True, exist_ok=True)
    try:
        rows = run_rows(args.rows, args.elements, root) + run_files(args.files, root)
    finally:
        if args.root is None:
            shutil.rmtree(root, ignore_errors=True)
    table = [
        {
            "phase": r["phase"],
            "size": f"{r['size']:,} {r['unit']}",
            "wall s": round(r["seconds"], 2),
            "CPU s": round(r["cpu_s"], 2),
            "us/unit (wall)": round(r["us_per_unit"], 1),
            "us/unit (CPU)": round(r["cpu_us_per_unit"], 1),
            "peak MB": round(r["peak_mb"]),
        }
        for r in rows
    ]
    print(f"## Scale curve ({os.cpu_count()} cores; wall time is noisy on a shared machine)\n")
    print_table(table)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))
    if args.plot:
        plot(rows, args.plot, f"Gantry scale curve ({os.cpu_count()} cores, shared)")
        print(f"\nplot: {args.plot}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
