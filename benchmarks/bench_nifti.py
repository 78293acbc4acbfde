"""NIfTI export throughput: ``Session.export_nifti`` against ``dcm2niix`` on the same series.

Usage::

    python benchmarks/bench_nifti.py [--series 6] [--slices 60] [--size 256]
                                     [--repeat 2] [--workers N] [--root DIR] [--json out.json]

Writes ``--series`` synthetic series (``gantry.testing.make_series``: CT and MR
alternating, ``--slices`` images of ``--size``² 16-bit pixels each, one file per
image), then in one run:

- **gantry**: ingest and ``anonymize`` (times reported, not counted), then
  ``export_nifti(dest, layout="flat")``: the verified de-identifying export into a
  staging folder, the conversion of those copies to ``.nii.gz`` + JSON, and the
  clean-up — ``--repeat`` times into fresh folders, the best run counts. Run twice:
  in one process (``workers=1``) and with ``--workers`` (default: every core; the
  export and the conversion then each start a process pool);
- **dcm2niix** (the PyPI ``dcm2niix``; the plain baseline): ``dcm2niix -z y`` on
  the same source folder, ``--repeat`` times, the best run counts. It converts the
  originals: no de-identification, no verification.

Throughput is series/s and MB/s of source DICOM; ``CPU s`` is the CPU time of
the best run (this process and its finished children: pool workers, dcm2niix
and its gzip), the fairer comparison on a shared, loaded machine. Peak memory is the maximum
resident set of this process (gantry, workers excluded) and of the dcm2niix
child processes. Target: gantry at least 0.5x dcm2niix's series/s.
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import peak_rss_mb, print_table  # noqa: E402


def make_source(root: Path, series: int, slices: int, size: int) -> tuple[Path, int]:
    from gantry.testing import make_series

    src = root / f"nifti-src-{series}x{slices}x{size}"
    if not src.exists():
        tmp = src.with_name(src.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        for n in range(series):
            make_series(tmp / f"s{n:03d}", kind="ct" if n % 2 == 0 else "mr", slices=slices,
                        rows=size, columns=size, seed=n + 1, canaries=False)  # fmt: skip
        tmp.rename(src)
    return src, sum(p.stat().st_size for p in src.rglob("*.dcm"))


def run_gantry(src: Path, work: Path, repeat: int, workers: int | None) -> dict[str, Any]:
    from gantry import Session

    work.mkdir(parents=True, exist_ok=True)
    db = work / "bench.db"
    with Session(db) as s:
        t0 = time.perf_counter()
        s.ingest(src, progress=False)
        ingest = time.perf_counter() - t0
        t0 = time.perf_counter()
        s.anonymize(None)
        plan = time.perf_counter() - t0
        best = cpu_best = float("inf")
        converted = 0
        for n in range(repeat):
            dest = work / f"gantry-{n}"
            c0 = cpu_seconds()
            t0 = time.perf_counter()
            r = s.export_nifti(dest, layout="flat", workers=workers, progress=False)
            best = min(best, time.perf_counter() - t0)
            cpu_best = min(cpu_best, cpu_seconds() - c0)
            converted = r.converted
            if not r.ok:
                raise SystemExit(f"gantry did not convert every series: {r.as_dict()}")
    return {"seconds": best, "cpu_s": cpu_best, "series": converted, "ingest_s": ingest,
            "plan_s": plan, "peak_rss_mb": peak_rss_mb()}  # fmt: skip


def cpu_seconds() -> float:
    """CPU seconds of this process and of its finished children (pool workers, dcm2niix)."""
    me = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def run_dcm2niix(src: Path, work: Path, repeat: int) -> dict[str, Any]:
    exe = shutil.which("dcm2niix")
    if exe is None:
        raise SystemExit("dcm2niix is not installed: pip install dcm2niix")
    best = cpu_best = float("inf")
    made = 0
    for n in range(repeat):
        out = work / f"dcm2niix-{n}"
        out.mkdir(parents=True)
        c0 = cpu_seconds()
        t0 = time.perf_counter()
        subprocess.run([exe, "-z", "y", "-o", str(out), str(src)], check=True, capture_output=True)
        best = min(best, time.perf_counter() - t0)
        cpu_best = min(cpu_best, cpu_seconds() - c0)
        made = len(list(out.glob("*.nii.gz")))
    return {"seconds": best, "cpu_s": cpu_best, "series": made,
            "peak_rss_mb": peak_rss_mb(children=True)}  # fmt: skip


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--series", type=int, default=6)
    ap.add_argument("--slices", type=int, default=60)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--workers", type=int, default=None, help="pool size (default: every core)")
    ap.add_argument("--root", type=Path, default=Path(tempfile.gettempdir()) / "gantry-bench")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)
    args.root.mkdir(parents=True, exist_ok=True)
    src, nbytes = make_source(args.root, args.series, args.slices, args.size)
    work = Path(tempfile.mkdtemp(prefix="bench-nifti-", dir=args.root))
    try:
        base = run_dcm2niix(src, work / "d", args.repeat)
        single = run_gantry(src, work / "g1", args.repeat, 1)
        pooled = run_gantry(src, work / "gn", args.repeat, args.workers)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    contenders = (
        ("gantry export_nifti, workers=1", single),
        (f"gantry export_nifti, workers={args.workers or 'all cores'}", pooled),
        ("dcm2niix (baseline)", base),
    )
    rows = []
    for name, r in contenders:
        rows.append({
            "contender": name,
            "series": r["series"],
            "seconds": r["seconds"],
            "series/s": r["series"] / r["seconds"],
            "MB/s": nbytes / 1e6 / r["seconds"],
            "CPU s": r["cpu_s"],
            "peak RSS MB": r["peak_rss_mb"],
        })  # fmt: skip
    ratios = [rows[n]["series/s"] / rows[2]["series/s"] for n in (0, 1)]
    cpu_ratios = [rows[2]["CPU s"] / rows[n]["CPU s"] for n in (0, 1)]
    print(f"source: {args.series} series x {args.slices} slices of {args.size}x{args.size} "
          f"({nbytes / 1e6:.1f} MB); gantry ingest {single['ingest_s']:.2f} s and plan "
          f"{single['plan_s']:.2f} s not counted")  # fmt: skip
    print_table(rows)
    for row, ratio in zip(rows[:2], ratios, strict=True):
        verdict = "met" if ratio >= 0.5 else "NOT met"
        print(f"{row['contender']} / dcm2niix = {ratio:.2f}x (target >= 0.5x): {verdict}")
    for row, ratio in zip(rows[:2], cpu_ratios, strict=True):
        print(f"{row['contender']}: dcm2niix CPU s / gantry CPU s = {ratio:.2f}x "
              "(the same comparison in CPU time, which a loaded machine disturbs less)")  # fmt: skip
    out = {"rows": rows, "ratios": ratios, "cpu_ratios": cpu_ratios, "target": 0.5,
           "source_mb": nbytes / 1e6}  # fmt: skip
    if args.json is not None:
        args.json.write_text(json.dumps(out, indent=1))
    return out


if __name__ == "__main__":
    main()
