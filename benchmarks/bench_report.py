"""Reports at scale: flat Parquet tables, the audit report, compliance and manifest.html.

Usage::

    python benchmarks/bench_report.py [--n 100000] [--sample-patients 4] [--root DIR]
                                      [--json FILE] [--tables-only] [--no-naive]

1. Builds a session of ``--n`` synthetic instances (``make_synthetic_index``, no
   files) plus a small sample of real files (``make_corpus`` with canaries: CT, MR,
   US with a redaction zone, CR, SC) ingested into the same session.
2. ``session.to_parquet`` at every level (the instance level joins the series, study
   and patient aggregates) and a hive folder by Modality: seconds, rows/s, output MB.
   Baselines, in the same run: plain Polars (lazy scan of the instance shards,
   the same series/study/patient aggregates by ``group_by``, joins,
   ``sink_parquet``), and a plain Python loop that reads the shards, computes
   the per-series/study/patient counts and bytes with dicts and writes CSV (no
   pandas; ``--no-naive`` skips it: it holds every row as a dict).
   ``--tables-only`` stops here (for the 1M-row runs).
3. ``session.anonymize`` over everything (the plan: millions of rows), then the
   audit report from it (CSV and Parquet).
4. Exports the sample (``query="parser <> 'synthetic'"``), then times
   ``compliance_report`` on it (every file read back and checked against the whole
   index) and ``write_manifest_html`` (thumbnails of the redacted instances).

Each phase reports its wall and CPU seconds (``time.process_time``: every
thread of the process) and its peak RSS: ``VmHWM`` reset before the phase
(``/proc/self/clear_refs``), read after it.  Prints a markdown table; ``--json``
writes the figures too.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import print_table  # noqa: E402

POLARS = "baseline: plain Polars scan → group_by → join → sink_parquet"
NAIVE = "baseline: Python loop → CSV (instance level)"


def _status_mb(field: str) -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    return float("nan")


def _reset_peak() -> None:
    try:
        with open(f"/proc/{os.getpid()}/clear_refs", "w") as fh:
            fh.write("5")
    except OSError:  # not Linux, or not allowed: the peak then covers the whole run
        pass


def _phase(table: list[dict[str, Any]], name: str, fn: Callable[[], Any], **extra: Any) -> Any:
    _reset_peak()
    c0, t0 = time.process_time(), time.perf_counter()
    value = fn()
    seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
    row = {"phase": name, "seconds": seconds, "cpu_s": cpu, "peak_rss_mb": _status_mb("VmHWM")}
    row.update({k: (v(value, seconds) if callable(v) else v) for k, v in extra.items()})
    table.append(row)
    print(f"  {name}: {seconds:.2f} s", file=sys.stderr, flush=True)
    return value


def _columns(path: Path) -> int:
    doc = json.loads(path.with_name(path.name + ".schema.json").read_text())
    return len(doc["columns"])


def naive_flat_csv(instance_files: list[Path], out: Path) -> int:
    """The baseline: per-row Python, dict aggregates, csv.writer (what a script would do)."""
    import pyarrow.parquet as pq

    rows: list[dict[str, Any]] = []
    for f in instance_files:
        rows.extend(pq.read_table(f).to_pylist())
    series: dict[Any, list[int]] = defaultdict(lambda: [0, 0])
    studies: dict[Any, set[Any]] = defaultdict(set)
    patients: dict[Any, set[Any]] = defaultdict(set)
    for r in rows:
        agg = series[r.get("SeriesInstanceUID")]
        agg[0] += 1
        agg[1] += r.get("file_size") or 0
        studies[r.get("StudyInstanceUID")].add(r.get("SeriesInstanceUID"))
        patients[r.get("PatientID")].add(r.get("StudyInstanceUID"))
    columns = list(rows[0]) if rows else []
    with open(out, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow([*columns, "series_n_instances", "series_bytes", "study_n_series",
                    "patient_n_studies"])  # fmt: skip
        for r in rows:
            s = series[r.get("SeriesInstanceUID")]
            w.writerow(
                [r.get(c) for c in columns]
                + [
                    s[0],
                    s[1],
                    len(studies[r.get("StudyInstanceUID")]),
                    len(patients[r.get("PatientID")]),
                ]  # fmt: skip
            )
    return len(rows)


def polars_flat_parquet(instance_files: list[Path], out: Path) -> int:
    """The fair baseline: plain Polars, lazy and streaming, same aggregates, one Parquet file.

    Scans the instance shards, computes the series, study and patient aggregates
    with ``group_by`` (the same columns Gantry's views give), joins them back and
    ``sink_parquet``s the result (zstd), without Gantry's views, schema or
    atomic rename.
    """
    import polars as pl

    from gantry.store._views import SERIES_KEY_ATTRIBUTES

    # the shards differ in columns (each batch holds what its files held)
    lf = pl.concat([pl.scan_parquet(f) for f in instance_files], how="diagonal_relaxed")
    names = lf.collect_schema().names()
    keys = [a for a in SERIES_KEY_ATTRIBUTES if a in names]
    modalities = pl.col("Modality").unique().sort().implode()
    series = lf.group_by("SeriesInstanceUID").agg(
        pl.len().alias("series_n_instances"),
        pl.col("file_size").sum().alias("series_bytes"),
        *(pl.col(a).drop_nulls().n_unique().alias(f"series_n_distinct_{a}") for a in keys),
        pl.all_horizontal(pl.col(a).drop_nulls().n_unique() <= 1 for a in keys).alias(
            "series_is_homogeneous"
        ),
    )
    studies = lf.group_by("StudyInstanceUID").agg(
        pl.col("SeriesInstanceUID").n_unique().alias("study_n_series"),
        pl.len().alias("study_n_instances"),
        modalities.alias("study_modalities"),
        pl.col("file_size").sum().alias("study_bytes"),
    )
    patients = lf.group_by("PatientID").agg(
        pl.col("StudyInstanceUID").n_unique().alias("patient_n_studies"),
        pl.col("SeriesInstanceUID").n_unique().alias("patient_n_series"),
        pl.len().alias("patient_n_instances"),
        pl.col("StudyDate").min().alias("patient_first_study_date"),
        pl.col("StudyDate").max().alias("patient_last_study_date"),
        modalities.alias("patient_modalities"),
        pl.col("file_size").sum().alias("patient_bytes"),
    )
    flat = lf
    for agg, key in ((series, "SeriesInstanceUID"), (studies, "StudyInstanceUID"),
                     (patients, "PatientID")):  # fmt: skip
        flat = flat.join(agg, on=key, how="left", nulls_equal=True)
    flat.sink_parquet(out, compression="zstd")
    return pl.scan_parquet(out).select(pl.len()).collect().item()


def run(
    n: int, sample_patients: int, root: Path, *, tables_only: bool = False, naive: bool = True
) -> dict[str, Any]:
    from gantry import Session
    from gantry.report import write_manifest_html
    from gantry.testing import make_corpus
    from gantry.testing._synthetic_index import make_synthetic_index

    config = {
        "machines": [
            {"name": "sonoria", "match": {"manufacturer": "Sonoria"},
             "redaction_zones": [[0, 12, 0, 40]]}
        ]
    }  # fmt: skip
    rows: list[dict[str, Any]] = []
    setup: list[dict[str, Any]] = []
    with Session(root / "s.db") as s:
        _phase(setup, f"synthetic index ({n:,} instances)",
               lambda: make_synthetic_index(s.store, n))  # fmt: skip
        corpus = make_corpus(root / "sample", patients=sample_patients, studies_per_patient=2,
                             series_per_study=3, instances_per_series=4, canaries=True)  # fmt: skip
        _phase(setup, f"ingest sample ({len(corpus.paths)} files)",
               lambda: s.ingest(root / "sample", workers=1, progress=False))  # fmt: skip
        total = s.sql("SELECT count(*) FROM instances").item()
        n_cols = s.sql("SELECT count(*) FROM (DESCRIBE instances)").item()

        def per_s(_value: Any, seconds: float) -> float:
            return total / seconds

        for level in ("instance", "series", "study", "patient"):
            out = root / f"{level}.parquet"
            count = s.sql(
                "SELECT count(*) FROM "
                + {
                    "instance": "instances",
                    "series": "series",
                    "study": "studies",
                    "patient": "patients",
                }[level]  # fmt: skip
            ).item()
            _phase(
                rows, f"to_parquet level={level}",
                lambda out=out, level=level: s.to_parquet(out, level=level),
                rows=count,
                rows_per_s=lambda _v, sec, count=count: count / sec,
                cells_per_s=lambda v, sec, count=count: count * _columns(v) / sec,
                output_mb=lambda v, _sec: v.stat().st_size / 1e6,
            )  # fmt: skip
        _phase(
            rows, "to_parquet partition_by=Modality",
            lambda: s.to_parquet(root / "by_modality", partition_by="Modality"),
            rows=total, rows_per_s=per_s,
        )  # fmt: skip
        shards = s.store.files_of("instances")
        _phase(
            rows, POLARS,
            lambda: polars_flat_parquet(shards, root / "polars.parquet"),
            rows=total, rows_per_s=per_s,
            output_mb=lambda _v, _sec: (root / "polars.parquet").stat().st_size / 1e6,
        )  # fmt: skip
        if naive:
            _phase(
                rows, NAIVE,
                lambda: naive_flat_csv(shards, root / "naive.csv"),
                rows=total, rows_per_s=per_s,
                output_mb=lambda _v, _sec: (root / "naive.csv").stat().st_size / 1e6,
            )  # fmt: skip
        figures = _table_figures(rows, total, n_cols)
        figures["setup"] = setup
        if tables_only:
            return figures
        _phase(setup, "anonymize (plan for every instance)", lambda: s.anonymize(config))
        plan_rows = s.sql("SELECT count(*) FROM plan").item()
        _phase(rows, "audit_report csv", lambda: s.audit_report(root / "audit.csv"),
               rows=total, plan_rows=plan_rows)  # fmt: skip
        _phase(rows, "audit_report parquet",
               lambda: s.audit_report(root / "audit.parquet", format="parquet"),
               rows=total, plan_rows=plan_rows)  # fmt: skip
        result = _phase(
            setup, "export sample",
            lambda: s.export(root / "out", config=config, query="parser <> 'synthetic'",
                             workers=1, progress=False),
        )  # fmt: skip
        report = _phase(
            rows, "compliance_report (sample export vs whole index)",
            lambda: s.compliance_report(result, profile=config, out=root / "compliance"),
            rows=lambda v, _sec: v.summary["files_checked"],
            files_per_s=lambda v, sec: v.summary["files_checked"] / sec,
        )  # fmt: skip
        _phase(rows, "manifest.html (thumbnails)",
               lambda: write_manifest_html(s, root / "out"),
               rows=result.exported)  # fmt: skip
    by = {r["phase"]: r for r in rows}
    reports = sum(
        by[k]["seconds"]
        for k in (
            "audit_report csv",
            "compliance_report (sample export vs whole index)",
            "manifest.html (thumbnails)",
        )  # fmt: skip
    )
    figures.update(
        plan_rows=plan_rows,
        sample_files=len(corpus.paths),
        exported=result.exported,
        compliant=report.compliant,
        report_generation_seconds=reports,
    )
    return figures


def _table_figures(rows: list[dict[str, Any]], total: int, n_cols: int) -> dict[str, Any]:
    """The ``to_parquet`` (instance level) figures beside the baselines of the same run."""
    by = {r["phase"]: r for r in rows}
    inst, fair = by["to_parquet level=instance"], by[POLARS]
    figures: dict[str, Any] = {
        "instances": total,
        "instance_columns": n_cols,
        "to_parquet_rows_per_s": inst["rows_per_s"],
        "to_parquet_cpu_s": inst["cpu_s"],
        "to_parquet_peak_rss_mb": inst["peak_rss_mb"],
        "polars_baseline_rows_per_s": fair["rows_per_s"],
        "polars_baseline_cpu_s": fair["cpu_s"],
        "polars_baseline_peak_rss_mb": fair["peak_rss_mb"],
        "speedup_vs_polars": fair["seconds"] / inst["seconds"],
        "phases": rows,
    }
    if NAIVE in by:
        naive = by[NAIVE]
        figures.update(
            baseline_rows_per_s=naive["rows_per_s"],
            speedup_vs_baseline=naive["seconds"] / inst["seconds"],
        )
    return figures


def _rectangular(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    keys = list(dict.fromkeys(k for r in rows for k in r))
    return [{k: r.get(k, "") for k in keys} for r in rows]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=100_000, help="synthetic instances")
    ap.add_argument("--sample-patients", type=int, default=4, help="patients of real files")
    ap.add_argument("--root", type=Path, default=None, help="work folder (default: a temp dir)")
    ap.add_argument("--json", type=Path, default=None, help="also write the figures here")
    ap.add_argument(
        "--tables-only",
        action="store_true",
        help="stop after to_parquet and its baselines (no plan, audit, export)",
    )
    ap.add_argument(
        "--no-naive",
        action="store_true",
        help="skip the Python-loop → CSV baseline (it holds every row as a dict)",
    )
    args = ap.parse_args(argv)  # fmt: skip
    root = args.root or Path(tempfile.mkdtemp(prefix="bench-report-"))
    work = root / f"report{args.n}"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    try:
        figures = run(args.n, args.sample_patients, work, tables_only=args.tables_only,
                      naive=not args.no_naive)  # fmt: skip
    finally:
        if args.root is None:
            shutil.rmtree(root, ignore_errors=True)
    head = f"## Reports: {figures['instances']:,} instances ({figures['instance_columns']} columns)"
    if not args.tables_only:
        head += (f", plan of {figures['plan_rows']:,} rows, sample export of "
                 f"{figures['exported']} files")  # fmt: skip
    print(head + "\n")
    print_table(_rectangular(figures["phases"]))
    print()
    print_table(_rectangular(figures["setup"]))
    print()
    line = (
        f"to_parquet (instance level): {figures['to_parquet_rows_per_s']:,.0f} rows/s "
        f"({figures['to_parquet_cpu_s']:.1f} CPU-s, peak RSS "
        f"{figures['to_parquet_peak_rss_mb']:,.0f} MB); plain Polars baseline "
        f"{figures['polars_baseline_rows_per_s']:,.0f} rows/s "
        f"({figures['polars_baseline_cpu_s']:.1f} CPU-s, x{figures['speedup_vs_polars']:.2f})"
    )
    if "baseline_rows_per_s" in figures:
        line += (f"; Python loop → CSV {figures['baseline_rows_per_s']:,.0f} rows/s "
                 f"(x{figures['speedup_vs_baseline']:.1f})")  # fmt: skip
    if not args.tables_only:
        line += (f"; report generation (audit csv + compliance + manifest): "
                 f"{figures['report_generation_seconds']:.1f} s; "
                 f"sample export compliant: {figures['compliant']}")  # fmt: skip
    print(line)
    if args.json:
        args.json.write_text(json.dumps(figures, indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
