"""Ingest throughput: Gantry (process pool, full `elements` table) vs a naive pydicom loop.

Usage::

    python benchmarks/bench_ingest.py --n 5000 [--workers 2] [--scaling 1000,5000,20000]

Prints files/s, MB/s, peak RSS and the ratio against the naive baseline, run in the
same process tree on the same files: a single-process loop of
``pydicom.dcmread(f, stop_before_pixels=True)`` collecting ~45 keywords per file into
one Polars DataFrame written to Parquet.

Three views of the same two runs, each contender in a fresh process:

- ``ratio``: the timed work only - the naive loop (its imports done) against
  ``Session.ingest``'s own ``seconds`` (pool start, walk, read, commit);
- ``ratio (call)``: ``Session(db)`` + ``ingest`` timed from the caller, so start-up
  work moved out of ``ingest`` still counts;
- ``ratio (process)``: each whole process, interpreter start and imports included.

CPU is counted for the whole process tree (Gantry's fork server and workers sampled
with psutil, within ~50 ms per process): ``CPU µs/file`` is what bounds the ratio on
a machine whose cores are all busy. ``gantry core use %`` is that CPU over the call's
wall time times the number of cores: below 100 %, a core sat idle (start-up, the end
of the run, waiting on I/O or on other processes of a shared machine).
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import peak_rss_mb, print_table  # noqa: E402

KEYWORDS = [
    "PatientID",
    "PatientName",
    "PatientBirthDate",
    "PatientSex",
    "PatientAge",
    "StudyInstanceUID",
    "SeriesInstanceUID",
    "SOPInstanceUID",
    "SOPClassUID",
    "StudyDate",
    "StudyTime",
    "SeriesDate",
    "AccessionNumber",
    "Modality",
    "Manufacturer",
    "ManufacturerModelName",
    "InstitutionName",
    "StationName",
    "StudyDescription",
    "SeriesDescription",
    "SeriesNumber",
    "InstanceNumber",
    "Rows",
    "Columns",
    "BitsAllocated",
    "BitsStored",
    "PixelRepresentation",
    "SliceThickness",
    "PixelSpacing",
    "ImagePositionPatient",
    "ImageOrientationPatient",
    "KVP",
    "ExposureTime",
    "XRayTubeCurrent",
    "ConvolutionKernel",
    "WindowCenter",
    "WindowWidth",
    "RescaleIntercept",
    "RescaleSlope",
    "FrameOfReferenceUID",
    "BodyPartExamined",
    "ReferringPhysicianName",
    "DeviceSerialNumber",
    "SoftwareVersions",
    "PhotometricInterpretation",
]


def naive(paths: list[Path], out: Path) -> float:
    import polars as pl
    import pydicom

    t0 = time.perf_counter()
    rows = []
    for p in paths:
        ds = pydicom.dcmread(p, stop_before_pixels=True)
        row = {}
        for kw in KEYWORDS:
            v = ds.get(kw)
            row[kw] = None if v is None else str(v)
        rows.append(row)
    pl.DataFrame(rows, schema={k: pl.String for k in KEYWORDS}).write_parquet(out)
    return time.perf_counter() - t0


def _naive_child(paths: list[str], out: str, q: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    seconds = naive([Path(p) for p in paths], Path(out))
    q.put((seconds, peak_rss_mb()))


def _gantry_child(src: str, db: str, workers: int | None, q: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    from bench_scale import TreeUsage

    t0 = time.perf_counter()
    with TreeUsage() as usage:
        from gantry import Session

        with Session(Path(db)) as s:
            r = s.ingest(Path(src), workers=workers, progress=False)
    call = time.perf_counter() - t0
    q.put((r.seconds, call, r.indexed, r.elements, peak_rss_mb(), usage.peak_mb, usage.cpu_s))


def _child_cpu() -> float:
    t = resource.getrusage(resource.RUSAGE_CHILDREN)
    return t.ru_utime + t.ru_stime


def run(n: int, workers: int | None, root: Path) -> dict[str, object]:
    from gantry.testing import make_ct_files

    src = root / f"ct{n}"
    if not src.exists():
        make_ct_files(src, n)
    paths = sorted(p for p in src.rglob("*") if p.is_file())
    mb = sum(p.stat().st_size for p in paths) / 1e6
    ctx = multiprocessing.get_context("spawn")
    # warm the page cache for both contenders
    for p in paths:
        p.read_bytes()
    q = ctx.Queue()
    proc = ctx.Process(
        target=_naive_child, args=([str(p) for p in paths], str(root / "naive.parquet"), q)
    )
    cpu0, t0 = _child_cpu(), time.perf_counter()
    proc.start()
    naive_s, naive_rss = q.get()
    proc.join()
    naive_process, naive_cpu = time.perf_counter() - t0, _child_cpu() - cpu0
    db = root / f"bench{n}.db"
    shutil.rmtree(root / f"bench{n}.gantry", ignore_errors=True)
    db.unlink(missing_ok=True)
    q = ctx.Queue()
    proc = ctx.Process(target=_gantry_child, args=(str(src), str(db), workers, q))
    t0 = time.perf_counter()
    proc.start()
    g_s, g_call, indexed, elements, main_rss, tree_rss, g_cpu = q.get()
    proc.join()
    g_process = time.perf_counter() - t0
    return {
        "files": n,
        "MB": round(mb, 1),
        "naive files/s": n / naive_s,
        "gantry files/s": indexed / g_s,
        "gantry MB/s": mb / g_s,
        "elements rows/s": elements / g_s,
        "ratio": (indexed / g_s) / (n / naive_s),
        "ratio (call)": naive_s / g_call,
        "ratio (process)": naive_process / g_process,
        "naive s (loop / process)": f"{naive_s:.2f} / {naive_process:.2f}",
        "gantry s (ingest / call / process)": f"{g_s:.2f} / {g_call:.2f} / {g_process:.2f}",
        "naive CPU s": naive_cpu,
        "gantry CPU s (all processes)": g_cpu,
        "naive CPU µs/file": naive_cpu / n * 1e6,
        "gantry CPU µs/file": g_cpu / n * 1e6,
        # share of the machine's cores Gantry kept busy over its call (1/cores = one core)
        "gantry core use %": 100 * g_cpu / (g_call * (os.cpu_count() or 1)),
        "naive peak RSS MB": naive_rss,
        "gantry peak RSS MB (main)": main_rss,
        "gantry peak RSS MB (all processes)": tree_rss,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=5000)
    ap.add_argument("--workers", type=int, default=None)
    ap.add_argument("--scaling", default="", help="comma-separated N values, e.g. 1000,5000,20000")
    ap.add_argument("--root", type=Path, default=None, help="work folder (default: a temp dir)")
    args = ap.parse_args()
    root = args.root or Path(tempfile.mkdtemp(prefix="gantry-bench-ingest-"))
    root.mkdir(parents=True, exist_ok=True)
    sizes = [int(x) for x in args.scaling.split(",") if x] or [args.n]
    rows = [run(n, args.workers, root) for n in sizes]
    print_table(rows)
    print(
        "\ntarget: ratio >= 5x on 2 cores while writing the full elements table; flat peak RSS"
        "\nnaive CPU s covers its whole process (imports included); Gantry's, every process of"
        " Session + ingest (fork server imports included), not the interpreter start"
    )


if __name__ == "__main__":
    main()
