"""Object model: tree build, attribute access, and memory while iterating pixels.

Usage::

    python benchmarks/bench_model.py [--n 100000] [--pixels 2000] [--size 256]

1. Writes a synthetic index of ``--n`` instances (``make_synthetic_index``) and
   times building the Patient ▸ Study ▸ Series ▸ Instance tree on a fresh session,
   a full walk of it, ``session.instance(uid)`` and ``session.instances(where=...)``.
2. Reads typed attributes of every instance (attributes per second).
3. Writes ``--pixels`` CT files (``make_ct_files``, ``--size`` square, 16-bit), ingests
   them, and measures peak RSS and time while iterating ``instance.pixel_array`` over
   all of them, each in a fresh process, against the plain baseline
   ``for f in files: pydicom.dcmread(f).pixel_array`` and against a loop that keeps
   every instance (what an unbounded cache would cost).
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import print_table  # noqa: E402

ATTRS = ("modality", "rows", "columns", "patient_name", "study_date", "series_description")


def _status_mb(field: str) -> float:
    """A memory figure of this process from ``/proc/self/status``, in MiB (Linux).

    ``VmHWM`` is the peak RSS of the process image: unlike ``ru_maxrss`` it does not
    carry over the parent's peak across fork + exec.
    """
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    return float("nan")


def current_rss_mb() -> float:
    return _status_mb("VmRSS")


def _phase(name: str, db: Path, files: Path) -> dict[str, float]:
    """Run one pixel-iteration phase in this (fresh) process; return its figures."""
    import numpy as np

    t0 = time.perf_counter()
    rss_start = current_rss_mb()
    total = 0
    n = 0
    rss_after_100 = 0.0
    if name == "baseline":
        import pydicom

        paths = sorted(str(p) for p in files.rglob("*.dcm"))
        rss_start = current_rss_mb()
        t0 = time.perf_counter()
        for p in paths:
            arr = pydicom.dcmread(p).pixel_array
            total += int(arr[0, 0])
            n += 1
            if n == 100:
                rss_after_100 = current_rss_mb()
    else:
        from gantry import Session

        with Session(db, read_only=True) as s:
            instances = s.instances()
            rss_start = current_rss_mb()
            t0 = time.perf_counter()
            kept = []
            for inst in instances:
                arr = inst.pixel_array
                total += int(np.asarray(arr)[0, 0])
                n += 1
                if name == "keep-all":
                    kept.append(inst)
                if n == 100:
                    rss_after_100 = current_rss_mb()
    return {
        "n": n,
        "seconds": time.perf_counter() - t0,
        "rss_start_mb": rss_start,
        "rss_after_100_mb": rss_after_100,
        "rss_end_mb": current_rss_mb(),
        "peak_rss_mb": _status_mb("VmHWM"),
        "checksum": total,
    }


def _run_phase(name: str, db: Path, files: Path) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, __file__, "--phase", name, "--db", str(db), "--files", str(files)],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--n", type=int, default=100_000, help="instances in the synthetic index")
    ap.add_argument("--pixels", type=int, default=2_000, help="real files for the pixel loop")
    ap.add_argument("--size", type=int, default=256, help="rows = columns of those files")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--phase", help=argparse.SUPPRESS)
    ap.add_argument("--db", help=argparse.SUPPRESS)
    ap.add_argument("--files", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.phase:
        print(json.dumps(_phase(args.phase, Path(args.db), Path(args.files))))
        return

    import polars as pl

    from gantry import Session
    from gantry.testing import make_ct_files
    from gantry.testing._synthetic_index import make_synthetic_index

    tmp = Path(tempfile.mkdtemp(prefix="bench-model-"))
    try:
        # 1. the tree over a synthetic index ------------------------------------------------
        db = tmp / "synthetic.db"
        t0 = time.perf_counter()
        with Session(db) as s:
            make_synthetic_index(s.store, args.n)
        t_index = time.perf_counter() - t0
        rows = [{"step": f"make_synthetic_index({args.n:,}) × 60 elements", "seconds": t_index}]
        with Session(db, read_only=True) as s:
            t0 = time.perf_counter()
            patients = s.patients
            n_patients = len(patients)
            t_tree = time.perf_counter() - t0
            rows.append({"step": f"tree build ({n_patients:,} patients)", "seconds": t_tree})
            t0 = time.perf_counter()
            n_series = sum(len(st.series) for p in patients for st in p.studies)
            rows.append({"step": f"walk patients ▸ studies ▸ series ({n_series:,} series)",
                         "seconds": time.perf_counter() - t0})  # fmt: skip
            sop = patients[n_patients // 2].instances[0].sop_instance_uid
            t0 = time.perf_counter()
            s.instance(sop)
            rows.append({"step": "first session.instance(uid) (sorts the UIDs)",
                         "seconds": time.perf_counter() - t0})  # fmt: skip
            t0 = time.perf_counter()
            for _ in range(1000):
                s.instance(sop)
            t_lookup = time.perf_counter() - t0
            rows.append({"step": "session.instance(uid) × 1,000", "seconds": t_lookup,
                         "per_second": 1000 / t_lookup})  # fmt: skip
            t0 = time.perf_counter()
            ct = s.instances(where="Modality = 'CT' AND Rows >= 512")
            rows.append({"step": f"instances(where=SQL) → {len(ct):,}",
                         "seconds": time.perf_counter() - t0})  # fmt: skip
            t0 = time.perf_counter()
            ct2 = s.instances(where=pl.col("Modality") == "CT")
            rows.append({"step": f"instances(where=pl.Expr) → {len(ct2):,}",
                         "seconds": time.perf_counter() - t0})  # fmt: skip

            # 2. attribute access ----------------------------------------------------------
            instances = s.instances()
            t0 = time.perf_counter()
            for inst in instances:  # first pass loads each column once
                for a in ATTRS:
                    getattr(inst, a)
            t_cold = time.perf_counter() - t0
            t0 = time.perf_counter()
            n_reads = 0
            for inst in instances:
                for a in ATTRS:
                    getattr(inst, a)
                n_reads += len(ATTRS)
            t_warm = time.perf_counter() - t0
            t0 = time.perf_counter()
            for inst in instances[:20_000]:
                inst.get("SeriesDescription")
            t_get = time.perf_counter() - t0
            rows.append({"step": f"typed attributes, first pass ({n_reads:,} reads)",
                         "seconds": t_cold, "per_second": n_reads / t_cold})  # fmt: skip
            rows.append({"step": "typed attributes, warm", "seconds": t_warm,
                         "per_second": n_reads / t_warm})  # fmt: skip
            rows.append({"step": "instance.get('SeriesDescription')", "seconds": t_get,
                         "per_second": 20_000 / t_get})  # fmt: skip
        for r in rows:
            r.setdefault("per_second", "")
        print(f"\n## Object model over a {args.n:,}-instance synthetic index\n")
        print_table(rows)

        # 3. pixels of real files ---------------------------------------------------------
        files = tmp / "ct"
        t0 = time.perf_counter()
        paths = make_ct_files(files, args.pixels, rows=args.size, columns=args.size,
                              workers=args.workers)  # fmt: skip
        t_files = time.perf_counter() - t0
        pix_db = tmp / "pixels.db"
        with Session(pix_db) as s:
            s.ingest(files, workers=args.workers, progress=False)
        t0 = time.perf_counter()
        with Session(pix_db, read_only=True) as s:
            for inst in s.instances():  # open, build the tree, load the columns
                for a in ATTRS:
                    getattr(inst, a)
            t_attr_open = time.perf_counter() - t0
            t0 = time.perf_counter()
            for inst in s.instances():
                for a in ATTRS:
                    getattr(inst, a)
            t_attr_index = time.perf_counter() - t0
        import pydicom

        t0 = time.perf_counter()
        for p in paths:
            ds = pydicom.dcmread(p, stop_before_pixels=True)
            for kw in ("Modality", "Rows", "Columns", "PatientName", "StudyDate",
                       "SeriesDescription"):  # fmt: skip
                ds.get(kw)
        t_attr_files = time.perf_counter() - t0
        n_attr = len(paths) * len(ATTRS)
        mb = args.size * args.size * 2 / 1e6
        print(f"\n## {args.pixels:,} CT files of {args.size}×{args.size} (16-bit, "
              f"{mb * args.pixels:,.0f} MB of pixels), written in {t_files:.1f} s\n")  # fmt: skip
        print_table(
            [
                {"attributes of every file": "object model, incl. opening the session",
                 "seconds": t_attr_open, "attrs_per_second": n_attr / t_attr_open},
                {"attributes of every file": "object model, session open",
                 "seconds": t_attr_index, "attrs_per_second": n_attr / t_attr_index},
                {"attributes of every file": "pydicom.dcmread(stop_before_pixels) loop",
                 "seconds": t_attr_files, "attrs_per_second": n_attr / t_attr_files},
            ]
        )  # fmt: skip
        results = []
        for name, label in (
            ("model", "for inst in session.instances(): inst.pixel_array"),
            ("baseline", "for f in files: pydicom.dcmread(f).pixel_array"),
            ("keep-all", "same, keeping every Instance (unbounded, for contrast)"),
        ):
            r = _run_phase(name, pix_db, files)
            results.append(
                {
                    "loop": label,
                    "seconds": r["seconds"],
                    "images_per_s": r["n"] / r["seconds"],
                    "rss_start_mb": r["rss_start_mb"],
                    "rss_after_100_mb": r["rss_after_100_mb"],
                    "rss_end_mb": r["rss_end_mb"],
                    "peak_rss_mb": r["peak_rss_mb"],
                }
            )
        print()
        print_table(results)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
