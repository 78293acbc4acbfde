"""Run every benchmark on one generated corpus and write ``benchmarks/results.md``.

Usage::

    python -m benchmarks [--quick] [--root DIR] [--only NAME[,NAME]] [--out FILE]
                         [--max-files N] [--resume]

Each ``benchmarks/bench_*.py`` script (and ``peers.py``) runs in its own process with
sizes picked here, sharing ``--root``: the file-based ones read the same CT corpus
``ROOT/ct{N}`` (``make_ct_files``, 512x512; N = 5,000, or 2,000 with ``--quick``).
Their printed tables (or ``--json`` files) are parsed into one markdown page:

1. Gantry beside its baseline, per stage (ingest, audit, plan, export, redaction,
   identity locking, findings persistence, report, object model): Gantry's figure,
   the baseline's, and the ratio;
2. the peers dicognito and deid on the same files (their own venv, created by
   ``peers.py``; a peer that fails to install or run shows its error);
3. Dask vs the local process pool; object storage (``bench_cloud.py``: ingest from
   and export to an S3 API server on loopback beside local disk; 2,000 files, or
   300 with ``--quick``);
4. scaling: ingest at 1k/5k/20k files, audit at 100k/1M synthetic index rows
   (``--quick``: 500/1k/2k files, 20k/100k rows), and the scale curve of
   ``bench_scale.py`` (time and peak memory of index, audit and plan at
   10k/100k/1M rows, ingest and export at 1k/5k/20k files, redrawn in
   ``docs/scale.svg``; ``--quick``: 2k/10k rows, 500 files, no plot);
5. every run's command, time and exit status, and its raw output.

A benchmark that fails is reported with its error; the others still run.
``--resume`` (same ``--root``) takes every job that finished from ``ROOT/logs``
and runs only the others: an interrupted suite goes on where it stopped, and
one benchmark can be re-run by deleting its log.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))


@dataclass(frozen=True)
class Sizes:
    corpus: int
    scaling_files: tuple[int, ...]
    index_rows: tuple[int, ...]
    sizing_files: int
    baseline_files: int
    peer_files: int
    audit_baseline_files: int
    identity: tuple[int, int]
    model: tuple[int, int, int]
    pixels: tuple[str, ...]
    cloud_files: int
    scale_rows: tuple[int, ...] = ()
    scale_files: tuple[int, ...] = ()


FULL = Sizes(
    corpus=5000,
    scaling_files=(1000, 5000, 20000),
    index_rows=(100_000, 1_000_000),
    sizing_files=1000,
    baseline_files=1000,
    peer_files=1000,
    audit_baseline_files=240,
    identity=(1_000_000, 100_000),
    model=(100_000, 2000, 256),
    pixels=(),
    cloud_files=2000,
    scale_rows=(10_000, 100_000, 1_000_000),
    scale_files=(1000, 5000, 20000),
)
QUICK = Sizes(
    corpus=2000,
    scaling_files=(500, 1000, 2000),
    index_rows=(20_000, 100_000),
    sizing_files=500,
    baseline_files=300,
    peer_files=200,
    audit_baseline_files=60,
    identity=(20_000, 2000),
    model=(20_000, 300, 128),
    pixels=("--native-mb", "64", "--compressed-frames", "16"),
    cloud_files=300,
    scale_rows=(2000, 10_000),
    scale_files=(500,),
)


@dataclass
class Job:
    name: str
    script: str
    args: list[str]
    timeout: float = 1800.0
    json_out: Path | None = None
    # filled by run()
    seconds: float = 0.0
    code: int | None = None
    stdout: str = ""
    stderr: str = ""
    data: Any = None
    error: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def command(self) -> str:
        return " ".join(["python", f"benchmarks/{self.script}", *self.args])


def plan_jobs(s: Sizes, root: Path, quick: bool) -> list[Job]:
    n = s.corpus
    src = root / f"ct{n}"
    jobs = [
        Job("ingest", "bench_ingest.py",
            ["--scaling", ",".join(map(str, s.scaling_files)), "--root", str(root)]),
        Job("export", "bench_export.py",
            ["--n", str(n), "--root", str(root), "--baseline-files", str(s.baseline_files),
             "--peer-files", str(s.peer_files), "--json", str(root / "export.json")],
            json_out=root / "export.json"),
        Job("peers", "peers.py",
            [str(src), "--work", str(root), "--files", str(s.peer_files),
             "--json", str(root / "peers.json")],
            json_out=root / "peers.json"),
        Job("cluster", "bench_cluster.py",
            ["--n", str(n), "--root", str(root), "--repeat", "2",
             "--sizing", str(s.sizing_files), "--json", str(root / "cluster.json")],
            json_out=root / "cluster.json"),
    ]  # fmt: skip
    for rows in s.index_rows:
        jobs.append(
            Job(f"audit-{rows}", "bench_audit.py",
                ["--n", str(rows), "--index", str(root / f"audit-index-{rows}"),
                 "--baseline-files", str(s.audit_baseline_files)])
        )  # fmt: skip
    inst, patients = s.identity
    jobs += [
        Job("identity", "bench_identity.py",
            ["--instances", str(inst), "--patients", str(patients), "--repeat", "2",
             "--dir", str(root / f"identity-{inst}")]),
        Job("redaction", "bench_pixels.py", list(s.pixels)),
        Job("model", "bench_model.py",
            ["--n", str(s.model[0]), "--pixels", str(s.model[1]), "--size", str(s.model[2])]),
    ]  # fmt: skip
    if (HERE / "bench_report.py").exists():
        jobs.append(
            Job("report", "bench_report.py",
                ["--n", str(s.index_rows[0]), "--root", str(root),
                 "--json", str(root / "report.json")],
                json_out=root / "report.json")
        )  # fmt: skip
        if not quick:  # to_parquet alone at 1M rows (the CSV loop would hold every row)
            jobs.append(
                Job("report-1000000", "bench_report.py",
                    ["--n", "1000000", "--tables-only", "--no-naive",
                     "--root", str(root / "report-1m"), "--json", str(root / "report-1m.json")],
                    json_out=root / "report-1m.json")
            )  # fmt: skip
    if (HERE / "bench_export_fastpath.py").exists():
        jobs.append(
            Job("export-fastpath", "bench_export_fastpath.py",
                ["--n", str(n), "--root", str(root), "--single", str(s.sizing_files),
                 "--repeat", "2", "--baseline-files", str(s.baseline_files),
                 "--peer-files", str(s.peer_files),
                 "--json", str(root / "export_fastpath.json")],
                json_out=root / "export_fastpath.json")
        )  # fmt: skip
    if (HERE / "bench_cloud.py").exists():
        jobs.append(
            Job("cloud", "bench_cloud.py",
                ["--n", str(s.cloud_files), "--root", str(root / "cloud"),
                 "--json", str(root / "cloud.json")],
                json_out=root / "cloud.json")
        )  # fmt: skip
    jobs.append(
        Job("scale", "bench_scale.py",
            ["--rows", ",".join(map(str, s.scale_rows)),
             "--files", ",".join(map(str, s.scale_files)), "--root", str(root),
             "--json", str(root / "scale.json"),
             *([] if quick else ["--plot", str(HERE.parent / "docs" / "scale.svg")])],
            json_out=root / "scale.json", timeout=3600.0)
    )  # fmt: skip
    known = {j.script for j in jobs}
    for path in sorted(HERE.glob("bench_*.py")):
        if path.name not in known:  # a benchmark this suite has no sizes for: its defaults
            jobs.append(Job(path.stem.removeprefix("bench_"), path.name, []))
    return jobs


# -- running ------------------------------------------------------------------------------------


def run(job: Job, logs: Path) -> Job:
    """Run one benchmark script; keep its output, exit code and time."""
    print(f"[suite] {job.command}", flush=True)
    t0 = time.perf_counter()
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    try:
        got = subprocess.run(
            [sys.executable, str(HERE / job.script), *job.args],
            capture_output=True,
            text=True,
            timeout=job.timeout,
            cwd=HERE.parent,
            env=env,
        )
        job.code, job.stdout, job.stderr = got.returncode, got.stdout, got.stderr
    except subprocess.TimeoutExpired as exc:
        job.code = -1
        job.stdout = _text(exc.stdout)
        job.stderr = _text(exc.stderr)
        job.error = f"timed out after {job.timeout:.0f} s"
    job.seconds = time.perf_counter() - t0
    (logs / f"{job.name}.log").write_text(
        f"$ {job.command}\n# exit {job.code} in {job.seconds:.1f} s\n\n"
        f"{job.stdout}\n--- stderr ---\n{job.stderr}"
    )
    if job.code not in (0, None) and job.error is None:
        job.error = f"exit {job.code}: {_last_error(job.stderr)}"
    if job.json_out is not None and job.json_out.exists() and job.code == 0:
        job.data = json.loads(job.json_out.read_text())
    print(f"[suite]   {job.name}: exit {job.code} in {job.seconds:.0f} s", flush=True)
    return job


def load(job: Job, logs: Path) -> bool:
    """Take a finished job's figures from an earlier run's log (``--resume``).

    Only a run that exited 0 is taken (and, when the job writes ``--json``, only
    with that file beside it); anything else is run again.
    """
    log = logs / f"{job.name}.log"
    if not log.exists():
        return False
    text = log.read_text()
    m = re.match(r"\$ (?P<cmd>.*)\n# exit (?P<code>-?\d+) in (?P<s>[\d.]+) s\n\n", text)
    if not m or m["code"] != "0" or m["cmd"] != job.command:
        return False
    if job.json_out is not None and not job.json_out.exists():
        return False
    job.code, job.seconds = 0, float(m["s"])
    ended = datetime.fromtimestamp(log.stat().st_mtime, UTC)
    job.extra["taken"] = f"earlier run (--resume), ended {ended:%H:%M} UTC"
    job.stdout, _, job.stderr = text[m.end() :].partition("\n--- stderr ---\n")
    if job.json_out is not None:
        job.data = json.loads(job.json_out.read_text())
    print(f"[suite]   {job.name}: taken from {log} ({job.seconds:.0f} s)", flush=True)
    return True


def _text(b: bytes | str | None) -> str:
    if b is None:
        return ""
    return b if isinstance(b, str) else b.decode(errors="replace")


def _last_error(stderr: str) -> str:
    lines = [ln.strip() for ln in stderr.splitlines() if ln.strip()]
    for ln in reversed(lines):
        if re.match(r"^[A-Za-z_.]+(Error|Exception|Exit)\b", ln):
            return ln[:200]
    return lines[-1][:200] if lines else "(no output)"


# -- parsing ------------------------------------------------------------------------------------


def parse_tables(text: str) -> list[list[dict[str, str]]]:
    """Every markdown table in ``text``, as lists of ``{column: cell}``."""
    tables: list[list[dict[str, str]]] = []
    lines = text.splitlines()
    i = 0
    while i < len(lines) - 1:
        if lines[i].startswith("|") and re.match(r"^\|(\s*:?-+:?\s*\|)+\s*$", lines[i + 1]):
            cols = [c.strip() for c in lines[i].strip().strip("|").split("|")]
            rows = []
            i += 2
            while i < len(lines) and lines[i].startswith("|"):
                cells = [c.strip() for c in lines[i].strip().strip("|").split("|")]
                rows.append(dict(zip(cols, cells, strict=False)))
                i += 1
            tables.append(rows)
        else:
            i += 1
    return tables


def num(text: Any) -> float:
    """``'1,234.5'`` → 1234.5; the first number in a longer text."""
    if isinstance(text, int | float):
        return float(text)
    m = re.search(r"-?[\d,]*\.?\d+(?:e[-+]?\d+)?", str(text))
    if not m:
        raise ValueError(f"no number in {text!r}")
    return float(m.group(0).replace(",", ""))


def _find(tables: list[list[dict[str, str]]], column: str) -> list[dict[str, str]]:
    for t in tables:
        if t and column in t[0]:
            return t
    raise ValueError(f"no table with a {column!r} column")


def _row_where(table: list[dict[str, str]], column: str, prefix: str) -> dict[str, str]:
    for r in table:
        if r.get(column, "").startswith(prefix):
            return r
    raise ValueError(f"no row with {column} starting {prefix!r}")


Row = dict[str, Any]


def extract_ingest(job: Job, n: int) -> tuple[list[Row], list[Row]]:
    t = _find(parse_tables(job.stdout), "gantry files/s")
    scaling = [
        {
            "what": "ingest (files → index, full elements table)",
            "size": f"{int(num(r['files'])):,} files",
            "gantry": f"{num(r['gantry files/s']):,.0f} files/s",
            "baseline": f"{num(r['naive files/s']):,.0f} files/s",
            "ratio": num(r["ratio"]),
            "note": _ingest_note(r),
        }
        for r in t
    ]
    head = next((r for r in t if int(num(r["files"])) == n), t[-1])
    return [
        {
            "stage": "ingest",
            "measure": f"files/s, {int(num(head['files'])):,} CT files",
            "gantry": num(head["gantry files/s"]),
            "baseline": num(head["naive files/s"]),
            "baseline is": "pydicom.dcmread loop, 45 keywords → Parquet (1 process)",
            "ratio": num(head["ratio"]),
            "note": f"{num(head['elements rows/s']):,.0f} elements rows/s written; "
            + _ingest_note(head),
        }
    ], scaling


def _ingest_note(r: dict[str, str]) -> str:
    """MB/s, the per-call and per-process ratios, CPU per file and peak memory of a row."""
    parts = [f"{num(r['gantry MB/s']):,.0f} MB/s"]
    if "ratio (call)" in r:  # bench_ingest since h24g
        parts += [
            f"ratio per call {num(r['ratio (call)']):.2f}×, per whole process "
            f"{num(r['ratio (process)']):.2f}×",
            f"CPU µs/file {num(r['gantry CPU µs/file']):,.0f} vs naive "
            f"{num(r['naive CPU µs/file']):,.0f}",
            f"peak RSS all processes {num(r['gantry peak RSS MB (all processes)']):,.0f} MB",
        ]
        if "gantry core use %" in r:  # below ~80 % at 20k: a busy machine or a cold cache
            parts.append(f"cores busy {num(r['gantry core use %']):.0f} % of the call")
    else:
        parts.append(f"peak RSS main {num(r['gantry peak RSS MB (main)']):,.0f} MB")
    return "; ".join(parts)


def extract_audit(job: Job) -> tuple[list[Row], Row]:
    tables = parse_tables(job.stdout)
    m = re.search(r"## Audit of ([\d,]+) instances x (\d+) elements", job.stdout)
    if not m:
        raise ValueError("no audit header")
    n = int(m.group(1).replace(",", ""))
    steps = _find(tables, "step")
    audit_s = num(_row_where(steps, "step", "audit")["seconds"])
    save = _row_where(steps, "step", "save_findings")
    base = _find(tables, "measure")
    checks_ms = num(_row_where(base, "measure", "checks per instance (ms)")["value"])
    read_ms = num(_row_where(base, "measure", "read + checks per instance (ms)")["value"])
    rss = re.search(r"peak RSS: audit ([\d,]+) MB; after save ([\d,]+) MB", job.stdout)
    rss_note = f"peak RSS {rss.group(2)} MB (audit {rss.group(1)} MB)" if rss else ""
    loaded = re.search(r"peak RSS with every finding in memory[^:]*: ([\d,]+) MB", job.stdout)
    if loaded:  # bench_audit since h24a: loading every finding is its own step
        rss_note += f"; {loaded.group(1)} MB with every finding in memory"
    gantry = n / audit_s
    loop = 1000 / checks_ms
    rows = [
        {
            "stage": "audit",
            "measure": f"instances/s, {n:,}-instance index",
            "gantry": gantry,
            "baseline": loop,
            "baseline is": "per-file Python loop, same rules, datasets in memory (1 process)",
            "ratio": gantry / loop,
            "note": f"{audit_s:.1f} s; loop incl. reading: {1000 / read_ms:,.0f}/s; {rss_note}",
        },
        {
            "stage": "findings persistence",
            "measure": "findings rows/s saved (Parquet)",
            "gantry": num(save["note"]),
            "baseline": 1_000_000.0,
            "baseline is": "the target (no naive writer in bench_audit)",
            "ratio": num(save["note"]) / 1_000_000,
            "note": f"{save['seconds']} s",
        },
    ]
    scaling = {
        "what": "audit (synthetic index)",
        "size": f"{n:,} instances",
        "gantry": f"{gantry:,.0f} instances/s",
        "baseline": f"{loop:,.0f} instances/s",
        "ratio": gantry / loop,
        "note": f"{audit_s:.1f} s; {rss_note}",
    }
    return rows, scaling


def extract_identity(job: Job) -> list[Row]:
    t = _find(parse_tables(job.stdout), "method")
    g = _row_where(t, "method", "gantry (warm")
    nv = _row_where(t, "method", "naive")
    return [
        {
            "stage": "identity locking",
            "measure": "instances/s locked (AES-GCM vault)",
            "gantry": num(g["instances/s"]),
            "baseline": num(nv["instances/s"]),
            "baseline is": "per-instance loop: JSON + AES-GCM + HMAC per row",
            "ratio": num(g["speedup"]),
            "note": f"peak RSS {num(g['peak RSS MB']):,.0f} MB"
            + (
                f"; CPU s {num(g['CPU s']):.2f} vs naive {num(nv['CPU s']):.2f}"
                if "CPU s" in g
                else ""
            ),
        }
    ]


_PIXEL_LINE = re.compile(
    r"^(?P<input>\w+)\s+(?P<mb>[\d.]+)\s+(?P<frames>\d+)\s+(?P<method>gantry x\d+|gantry|naive)"
    r"\s+(?:(?P<s>[\d.]+)\s+(?P<mbs>[\d.]+)\s+(?P<fps>[\d.]+)\s+(?P<peak>[\d.]+)\s*(?P<vs>[\d.]+x)?"
    r"|n/a: (?P<err>.*))$"
)


def extract_redaction(job: Job) -> list[Row]:
    found: dict[tuple[str, str], dict[str, str]] = {}
    for line in job.stdout.splitlines():
        m = _PIXEL_LINE.match(line.strip())
        if m:
            found[(m["input"], m["method"])] = m.groupdict()
    rows = []
    for syntax in ("native", "j2k", "jpegls"):
        g, nv = found.get((syntax, "gantry")), found.get((syntax, "naive"))
        if not g or g.get("err"):
            continue
        base_ok = nv is not None and not nv.get("err")
        rows.append(
            {
                "stage": f"redaction ({syntax})",
                "measure": "MB/s of decoded pixels, zones blanked + re-encoded",
                "gantry": float(g["mbs"]),
                "baseline": float(nv["mbs"]) if base_ok and nv else "n/a",
                "baseline is": "pydicom pixel_array → numpy mask → PixelData/compress"
                + ("" if base_ok else f" ({nv['err'] if nv else 'missing'})"),
                "ratio": float(g["vs"].rstrip("x")) if g.get("vs") else "n/a",
                "note": f"{g['frames']} frames; peak+ {g['peak']} MB",
            }
        )
    if not rows:
        raise ValueError("no redaction rows")
    return rows


def extract_model(job: Job) -> list[Row]:
    loops = _find(parse_tables(job.stdout), "loop")
    g = _row_where(loops, "loop", "for inst in session.instances()")
    b = _row_where(loops, "loop", "for f in files")
    return [
        {
            "stage": "object model (pixel loop)",
            "measure": "images/s iterating instance.pixel_array",
            "gantry": num(g["images_per_s"]),
            "baseline": num(b["images_per_s"]),
            "baseline is": "for f in files: pydicom.dcmread(f).pixel_array",
            "ratio": num(g["images_per_s"]) / num(b["images_per_s"]),
            "note": f"peak RSS {num(g['peak_rss_mb']):,.0f} MB vs {num(b['peak_rss_mb']):,.0f} MB",
        }
    ]


def extract_report(job: Job) -> list[Row]:
    d = job.data
    if d is None:
        raise ValueError("no --json figures")
    out: list[Row] = []
    if "baseline_rows_per_s" in d:  # the Python loop → CSV and the reports (not --tables-only)
        out.append(
            {
                "stage": "report",
                "measure": f"rows/s, flat instance table ({d['instances']:,} instances)",
                "gantry": float(d["to_parquet_rows_per_s"]),
                "baseline": float(d["baseline_rows_per_s"]),
                "baseline is": "Python loop over the shards → CSV (dicts, no pandas)",
                "ratio": float(d["speedup_vs_baseline"]),
                "note": f"audit report + compliance ({d['exported']} files) + manifest.html: "
                f"{float(d['report_generation_seconds']):.1f} s; compliant: {d['compliant']}",
            }
        )
    if "polars_baseline_rows_per_s" in d:  # bench_report since h24p
        out.append(
            {
                "stage": "to_parquet",
                "measure": f"rows/s, {d['instances']:,} instances × "
                f"{d.get('instance_columns', '?')} columns, one file",
                "gantry": float(d["to_parquet_rows_per_s"]),
                "baseline": float(d["polars_baseline_rows_per_s"]),
                "baseline is": "plain Polars: scan the shards, same aggregates, joins, "
                "sink_parquet (target: 1M rows/s)",
                "ratio": float(d["speedup_vs_polars"]),
                "note": f"CPU s {float(d['to_parquet_cpu_s']):.2f} vs "
                f"{float(d['polars_baseline_cpu_s']):.2f}; peak RSS "
                f"{float(d['to_parquet_peak_rss_mb']):,.0f} vs "
                f"{float(d['polars_baseline_peak_rss_mb']):,.0f} MB",
            }
        )
    return out


def extract_fastpath(job: Job) -> list[Row]:
    d = job.data
    if d is None:
        raise ValueError("no --json figures")
    fast = next(r for r in d["rows"] if "fast path (" in r["method"])
    slow = next(r for r in d["rows"] if "pydicom path (" in r["method"])
    return [
        {
            "stage": "export (fast path vs pydicom path)",
            "measure": "files/s written, verification on",
            "gantry": float(fast["files/s"]),
            "baseline": float(slow["files/s"]),
            "baseline is": "Gantry's own export with the byte-level fast path off",
            "ratio": float(fast["files/s"]) / float(slow["files/s"]),
            "note": f"CPU/file (1 process): {fmt(fast.get('CPU ms/file (1 proc)', '?'))} vs "
            f"{fmt(slow.get('CPU ms/file (1 proc)', '?'))} ms",
        }
    ]


def extract_export(job: Job) -> list[Row]:
    d = job.data
    rows = d["rows"]
    g, nv = rows[0], rows[1]
    out = [
        {
            "stage": "plan",
            "measure": f"instances/s planned ({d['plan rows']:,} plan rows)",
            "gantry": d["n"] / d["plan s"],
            "baseline": "n/a",
            "baseline is": "none: the naive script decides per file while writing",
            "ratio": "n/a",
            "note": f"{d['plan s']:.2f} s for {d['n']:,} instances"
            + (
                f", of which {d['plan tokens s']:.2f} s storing the verification tokens "
                "(export only reads them)"
                if "plan tokens s" in d
                else ""
            ),
        },
        {
            "stage": "export",
            "measure": "files/s written, verification on",
            "gantry": g["files/s"],
            "baseline": nv["files/s"],
            "baseline is": "pydicom script: delete ~60 tags + private, hash UIDs, save (1 process)",
            "ratio": g["files/s"] / nv["files/s"],
            "note": f"{g['MB/s']:,.0f} MB/s; peak RSS {g['peak RSS MB']:,.0f} MB (all processes)"
            + _export_cpu_note(g, nv, d),
        },
    ]
    dico = next((r for r in rows[2:] if str(r["method"]).startswith("dicognito")), None)
    if dico is not None and dico.get("files"):  # the target's peer, timed in the same run
        out.append(
            {
                "stage": "export vs dicognito",
                "measure": "files/s written, verification on (same run)",
                "gantry": g["files/s"],
                "baseline": dico["files/s"],
                "baseline is": f"{dico['method']} on the first {dico['files']:,} files "
                "(target ≥ 10×)",
                "ratio": g["files/s"] / dico["files/s"],
                "note": _export_cpu_note(g, dico, d).removeprefix("; "),
            }
        )
    return out


def _export_cpu_note(g: Row, other: Row, d: dict[str, Any]) -> str:
    """CPU ms per file of both sides (all of Gantry's processes) and verification's share."""
    parts = []
    if g.get("CPU s") and other.get("CPU s") == other.get("CPU s"):  # NaN: not sampled
        parts.append(
            f"CPU ms/file {1e3 * g['CPU s'] / g['files']:.2f} vs "
            f"{1e3 * other['CPU s'] / other['files']:.2f}"
        )
    share = d.get("gantry", {}).get("verify share")
    if share is not None:
        parts.append(f"verification {share:.0%} of wall time (token gathering overlaps workers)")
    return "".join(f"; {p}" for p in parts)


# -- the page -----------------------------------------------------------------------------------


def extract_scale(job: Job) -> list[Row]:
    """One row per phase and size: wall and CPU seconds, CPU per unit, peak memory."""
    return [
        {"phase": r["phase"], "size": f"{r['size']:,} {r['unit']}",
         "wall s": round(r["seconds"], 2), "CPU s": round(r["cpu_s"], 2),
         "CPU µs/unit": round(r["cpu_us_per_unit"], 1), "peak MB": round(r["peak_mb"])}
        for r in job.data
    ]  # fmt: skip


def fmt(v: Any) -> str:
    if isinstance(v, float):
        if abs(v) >= 100:
            return f"{v:,.0f}"
        return f"{v:,.2f}"
    if isinstance(v, int):
        return f"{v:,}"
    return str(v).replace("|", "\\|")


def table(rows: list[Row], cols: list[str]) -> str:
    out = ["| " + " | ".join(cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    for r in rows:
        out.append("| " + " | ".join(fmt(r.get(c, "")) for c in cols) + " |")
    return "\n".join(out)


def ratio_text(v: Any) -> str:
    return f"{v:,.1f}×" if isinstance(v, float) else str(v)


def extract_cloud(job: Job) -> list[Row]:
    d = job.data
    if d is None:
        raise ValueError("no --json figures")
    rows = {r["step"]: r for r in d["rows"]}
    local, s3 = rows["ingest from local disk"], rows["ingest from S3 (moto, loopback)"]
    out_local = rows["export to local folder (sources in S3)"]
    out_s3 = rows["export to S3 bucket (sources in S3)"]
    tables = next(r for step, r in rows.items() if step.startswith("ingest from local disk, tab"))
    return [
        {
            "stage": "ingest from object storage",
            "measure": f"files/s, {d['n']:,} CT files in S3 (moto on loopback)",
            "gantry": float(s3["files/s"]),
            "baseline": float(local["files/s"]),
            "baseline is": "Gantry's ingest of the same files from local disk (target ≥ 0.5)",
            "ratio": float(s3["files/s"]) / float(local["files/s"]),
            "note": f"fetched/header bytes (mean, worst): {s3['fetched/header (mean, worst)']} "
            f"(target ≤ 2); tables in S3: {float(tables['files/s']):,.0f} files/s",
        },
        {
            "stage": "export to object storage",
            "measure": "files/s, sources in S3, verification on",
            "gantry": float(out_s3["files/s"]),
            "baseline": float(out_local["files/s"]),
            "baseline is": "the same export to a local folder",
            "ratio": float(out_s3["files/s"]) / float(out_local["files/s"]),
            "note": "staged, verified, each object published whole and read back",
        },
    ]


def render(
    jobs: dict[str, Job],
    s: Sizes,
    root: Path,
    quick: bool,
    started: datetime,
    *,
    command: str | None = None,
    load: str = "",
) -> str:
    head: list[Row] = []
    scaling: list[Row] = []
    problems: list[str] = []

    def take(name: str, fn: Callable[[Job], Any]) -> Any:
        job = jobs.get(name)
        if job is None:
            return None
        if job.error and job.data is None and not job.stdout.strip():
            problems.append(f"`{name}`: {job.error}")
            return None
        try:
            return fn(job)
        except Exception as exc:  # a changed output format: say so, keep going
            why = job.error or f"could not parse its output ({type(exc).__name__}: {exc})"
            problems.append(f"`{name}`: {why}")
            return None

    got = take("ingest", lambda j: extract_ingest(j, s.corpus))
    if got:
        head += got[0]
        scaling += got[1]
    audit_rows: list[Row] = []
    for rows in s.index_rows:
        a = take(f"audit-{rows}", extract_audit)
        if a:
            audit_rows = a[0]
            scaling.append(a[1])
    head += [r for r in audit_rows if r["stage"] == "audit"]
    head += take("export", extract_export) or [
        {"stage": "export", "measure": "files/s", "gantry": "—", "note": "see problems"}
    ]
    if "export-fastpath" in jobs:
        head += take("export-fastpath", extract_fastpath) or []
    head += take("redaction", extract_redaction) or []
    head += take("identity", extract_identity) or []
    head += [r for r in audit_rows if r["stage"] == "findings persistence"]
    if "report" in jobs:
        head += take("report", extract_report) or []
        if "report-1000000" in jobs:
            head += take("report-1000000", extract_report) or []
    else:
        head.append({"stage": "report", "measure": "—", "gantry": "not run",
                     "note": "benchmarks/bench_report.py is not in the repo yet"})  # fmt: skip
    head += take("model", extract_model) or []
    if "cloud" in jobs:
        head += take("cloud", extract_cloud) or []
    for r in head:
        r["ratio"] = ratio_text(r.get("ratio", ""))

    lines = [
        "# Gantry benchmark results",
        "",
        f"Generated by `{command or 'python -m benchmarks' + (' --quick' if quick else '')}` on "
        f"{started:%Y-%m-%d %H:%M} UTC: {os.cpu_count()} cores (shared with other work"
        f"{'; load average ' + load if load else ''}), "
        f"Python {platform.python_version()}, {platform.machine()}. Corpus: "
        f"{s.corpus:,} CT files from `make_ct_files` (512×512, 16-bit, ~100 elements with "
        "nested sequences and a private block), shared by the file-based benchmarks. "
        "Ratios are Gantry ÷ baseline (higher is better for Gantry). Gantry uses every "
        "core unless a row says otherwise; the baselines and peers are single processes, "
        "as their authors ship them.",
        "",
        "## Gantry beside its baseline",
        "",
        table(head, ["stage", "measure", "gantry", "baseline", "ratio", "baseline is", "note"]),
    ]
    lines += ["", "## Peers on the same corpus", ""]
    lines += _peers_section(jobs)
    lines += ["", "## Dask cluster vs local process pool", ""]
    lines += _cluster_section(jobs)
    lines += ["", "## Scaling", ""]
    for r in scaling:
        r["ratio"] = ratio_text(r["ratio"])
    lines.append(table(scaling, ["what", "size", "gantry", "baseline", "ratio", "note"]))
    if "scale" in jobs:
        curve = take("scale", extract_scale)
        lines += ["", "### Scale curve: time and peak memory per stage (`bench_scale.py`)", ""]
        lines.append(
            table(curve, ["phase", "size", "wall s", "CPU s", "CPU µs/unit", "peak MB"])
            if curve
            else "not run (see problems)"
        )
    if problems:
        lines += ["", "## Problems", ""] + [f"- {p}" for p in problems]
    lines += ["", "## Runs", ""]
    lines.append(
        table(
            [
                {"benchmark": j.name, "command": f"`{j.command.replace(str(root), 'ROOT')}`",
                 "seconds": j.seconds, "exit": j.code if j.error is None else j.error,
                 "run": j.extra.get("taken", "this run")}
                for j in jobs.values()
            ],
            ["benchmark", "command", "seconds", "exit", "run"],
        )
    )  # fmt: skip
    lines += ["", f"Logs: `ROOT/logs/` (ROOT = `{root}` for this run).", ""]
    lines += ["## Raw output", ""]
    for j in jobs.values():
        body = "\n".join(j.stdout.strip().splitlines()[-60:]) or "(no output)"
        lines += [f"<details><summary>{j.name}</summary>", "", "```", body, "```", "</details>",
                  ""]  # fmt: skip
    return "\n".join(lines) + "\n"


def _peers_section(jobs: dict[str, Job]) -> list[str]:
    p = jobs.get("peers")
    e = jobs.get("export")
    rows: list[Row] = []
    g_rate = None
    if e is not None and e.data:
        g = e.data["rows"][0]
        g_rate = g["files/s"]
        rows.append({"tool": "gantry export", "version": "this repo", "files": g["files"],
                     "files/s": g_rate, "MB/s": g["MB/s"], "peak RSS MB": g["peak RSS MB"],
                     "gantry ×": "1.0×", "error": ""})  # fmt: skip
    if p is None or p.data is None:
        why = p.error if p is not None else "not run"
        return [table(rows, ["tool", "files/s"]) if rows else "", "", f"peers: {why}"]
    for r in p.data["peers"]:
        row = {"tool": r["peer"], **{k: r.get(k, "") for k in
               ("version", "files", "files/s", "MB/s", "peak RSS MB", "error")}}  # fmt: skip
        if g_rate and isinstance(r.get("files/s"), float):
            row["gantry ×"] = ratio_text(g_rate / r["files/s"])
        rows.append(row)
    cols = ["tool", "version", "files", "files/s", "MB/s", "peak RSS MB", "gantry ×", "error"]
    return [
        table(rows, cols),
        "",
        f"Peers ran on the first {p.data['files']:,} files of the corpus ({p.data['MB']:,.0f} "
        f"MB) in `ROOT/peers-venv` ({p.data['venv']}); timed from after their imports. "
        "dicognito: `-o OUT --quiet IN`; deid: `identifiers --action all` (default recipe). "
        "Gantry's figure is its whole verified export of the corpus (pool start and the "
        "safety audit included).",
    ]


def _cluster_section(jobs: dict[str, Job]) -> list[str]:
    c = jobs.get("cluster")
    if c is None or c.data is None:
        return [f"not available: {c.error if c else 'not run'}"]
    d = c.data["compare"]
    out = [
        table([d], [c for c in d if c != "workers"]),
        "",
        f"Dask reaches **{100 * d['dask / pool']:.0f} %** of the default process pool's "
        "ingest throughput (its start-up is inside each run) and "
        f"**{100 * d.get('dask / warm pool', float('nan')):.0f} %** of a pool started and "
        "warmed beforehand, like the cluster (target ≥ 85 %); best of the runs listed, "
        "cluster start-up not included (a cluster outlives one ingest). 2 workers each.",
    ]  # fmt: skip
    if "sizing" in c.data:
        z = c.data["sizing"]
        out += ["", "Per-core costs (one process, `workers=1`, used by docs/cluster.md):", ""]
        out.append(table([z], list(z)))
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument("--quick", action="store_true", help="smaller sizes (~10 minutes)")
    ap.add_argument("--root", type=Path, default=None, help="shared work folder")
    ap.add_argument("--only", default="", help="comma-separated benchmark names")
    ap.add_argument("--out", type=Path, default=HERE / "results.md")
    ap.add_argument(
        "--max-files",
        type=int,
        default=None,
        help="leave out the file-scaling points above this many files (disk, time)",
    )
    ap.add_argument(
        "--resume",
        action="store_true",
        help="take the jobs that finished (exit 0, same command) from ROOT/logs; run the rest",
    )
    args = ap.parse_args(argv)
    sizes = QUICK if args.quick else FULL
    if args.max_files is not None:
        sizes = replace(
            sizes,
            scaling_files=tuple(n for n in sizes.scaling_files if n <= args.max_files),
            scale_files=tuple(n for n in sizes.scale_files if n <= args.max_files),
        )
    root = (args.root or Path(os.environ.get("TMPDIR", "/tmp")) / "gantry-bench").absolute()
    logs = root / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    started = datetime.now(UTC)
    load_start = "{:.1f}/{:.1f}/{:.1f}".format(*os.getloadavg())
    from bench_cluster import corpus

    only = {x for x in args.only.split(",") if x}
    t0 = time.perf_counter()
    # the scaling corpora only when ingest (which reads them) runs
    wanted = {sizes.corpus} | (set(sizes.scaling_files) if not only or "ingest" in only else set())
    for n in sorted(wanted):
        corpus(root, n)
    print(f"[suite] corpora ready in {time.perf_counter() - t0:.0f} s under {root}", flush=True)
    jobs = plan_jobs(sizes, root, args.quick)
    done: dict[str, Job] = {}
    names = {j.name for j in jobs}
    for job in jobs:
        # a name selects its own job, or (when no job has it) the jobs it prefixes
        prefix = job.name.split("-")[0]
        if only and job.name not in only and not (prefix in only and prefix not in names):
            continue
        done[job.name] = job if args.resume and load(job, logs) else run(job, logs)
    load_end = "{:.1f}/{:.1f}/{:.1f}".format(*os.getloadavg())
    command = " ".join(["python -m benchmarks", *(sys.argv[1:] if argv is None else argv)])
    args.out.write_text(
        render(
            done, sizes, root, args.quick, started,
            command=command, load=f"{load_start} at the start, {load_end} (1/5/15 min) at the end",
        )
    )  # fmt: skip
    print(f"[suite] wrote {args.out}", flush=True)
    return 0 if all(j.error is None for j in done.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
