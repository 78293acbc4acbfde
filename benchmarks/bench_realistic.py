"""De-identification of a realistic corpus with the default config: completion and leaks.

Usage::

    python benchmarks/bench_realistic.py [--n 5000] [--workers N] [--root DIR] [--json out.json]

Builds ``n`` CT files with :func:`gantry.testing.make_realistic_corpus` (code meanings
repeating descriptions, kernel words, vendor names inside other names, date-valued
private tags, UIDs in private sequences, identity text in free text, and a canary in
every identifying element), writes the default config (``create_config``), then
ingests, plans and exports in a fresh session, and scans every output byte (and path)
for canaries.  The naive pydicom script of ``bench_export.py`` runs on the same files
as the plain baseline.  Targets: export completes for >= 99.9% of the files, 0 canary
leaks, verification <= 20% of the export's wall time.  ``preview_failures`` runs before
the plan (its prediction is compared with the export's failures) and the compliance
report reads the export back under the same rules.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import print_table  # noqa: E402
from bench_export import TreeRSS, _in_child, naive  # noqa: E402

_CANARY = re.compile(rb"CNRY[0-9A-F]{8}")


def _build(root: str, n: int) -> dict[str, Any]:
    from gantry.testing import make_realistic_corpus

    t0 = time.perf_counter()
    corpus = make_realistic_corpus(Path(root), files=n)
    return {"files": len(corpus.paths), "build_s": time.perf_counter() - t0}


def _deidentify(src: str, work: str, workers: int | None) -> dict[str, Any]:
    from collections import Counter

    from gantry import Session

    config = Path(work) / "gantry.yaml"
    with TreeRSS() as rss, Session(Path(work) / "s.db") as s:
        s.create_config(config, overwrite=True)
        ingest = s.ingest(src, workers=workers, progress=False)
        t0 = time.perf_counter()
        predicted = s.preview_failures(config)
        preview_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        s.anonymize(config)
        plan_s = time.perf_counter() - t0
        r = s.export(Path(work) / "out", config=config, workers=workers, progress=False)
        t0 = time.perf_counter()
        report = s.compliance_report(r, profile=config)
        report_s = time.perf_counter() - t0
    n_workers = workers or os.cpu_count() or 1
    reasons = Counter(
        re.sub(r"value hash [0-9a-f]+", "value hash …", x) for x in r.failed["reason"].to_list()
    )
    return {
        "indexed": ingest.indexed,
        "ingest_s": ingest.seconds,
        "plan_s": plan_s,
        "preview_s": preview_s,
        "predicted failures": predicted["file_id"].n_unique(),
        "predicted ids": sorted(predicted["file_id"].unique().to_list()),
        "failed ids": sorted(r.failed["file_id"].to_list()),
        "compliance": report.verdict,
        "compliance problems": report.problems.group_by("rule").len().rows(),
        "report_s": report_s,
        "selected": r.selected,
        "exported": r.exported,
        "excluded": r.excluded.height,
        "failed": r.failed.height,
        "failures": reasons.most_common(5),
        "seconds": r.seconds,
        "verify share": (r.token_seconds + r.verify_seconds / n_workers) / r.seconds,
        "peak_rss_mb": rss.peak_mb,
    }


def _leaks(out: Path) -> int:
    leaking = 0
    for p in out.rglob("*"):
        if p.is_file() and (_CANARY.search(p.read_bytes()) or "CNRY" in str(p.relative_to(out))):
            leaking += 1
    return leaking


def run(n: int, workers: int | None, root: Path | None) -> dict[str, Any]:
    root = root or Path(tempfile.mkdtemp(prefix="gantry-bench-realistic-"))
    src = root / f"realistic{n}"
    built = {"files": n, "build_s": 0.0}
    if not src.is_dir():
        built = _in_child(_build, str(src), n)
    work = root / "work"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    g = _in_child(_deidentify, str(src), str(work), workers)
    g["canary leaks"] = _leaks(work / "out")
    paths = sorted(str(p) for p in src.rglob("*") if p.is_file())
    nv = _in_child(naive, paths[: min(1000, len(paths))], str(work / "out-naive"))
    rate = g["exported"] / g["seconds"]
    naive_rate = nv["files"] / nv["seconds"]
    rows = [
        {"method": "gantry export (default config, verify)", "files": g["exported"],
         "seconds": g["seconds"], "files/s": rate, "peak RSS MB": g["peak_rss_mb"],
         "gantry ×": 1.0},
        {"method": "naive pydicom script (1 process)", "files": nv["files"],
         "seconds": nv["seconds"], "files/s": naive_rate, "peak RSS MB": nv["peak_rss_mb"],
         "gantry ×": rate / naive_rate},
    ]  # fmt: skip
    return {"n": n, "built": built, "gantry": g, "rows": rows}


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--n", type=int, default=5000)
    ap.add_argument("--workers", type=int, default=None)
    ap.add_argument("--root", type=Path, default=None, help="work folder (corpus kept there)")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    res = run(args.n, args.workers, args.root)
    g = res["gantry"]
    done = g["exported"] / g["selected"] if g["selected"] else 0.0
    print(f"## De-identification of {res['n']:,} realistic CT files, default config\n")
    print(
        f"corpus built in {res['built']['build_s']:.1f} s; ingest {g['ingest_s']:.1f} s, "
        f"plan {g['plan_s']:.1f} s\n"
        f"exported {g['exported']:,} of {g['selected']:,} ({done:.2%}); excluded "
        f"{g['excluded']}, failed {g['failed']}; files with a canary: {g['canary leaks']}\n"
        f"verification: {g['verify share']:.1%} of the export's wall time\n"
        f"preview_failures predicted {g['predicted failures']} failing instance(s) in "
        f"{g['preview_s']:.1f} s (the same as export: "
        f"{g['predicted ids'] == g['failed ids']}); compliance report "
        f"{g['compliance']} in {g['report_s']:.1f} s {g['compliance problems'] or ''}\n"
    )
    if g["failures"]:
        print("failures:", g["failures"], "\n")
    print_table(res["rows"])
    print("\ntarget: >= 99.9% exported, 0 canary leaks, verification <= 20%")
    if args.json:
        args.json.write_text(json.dumps(res, indent=1, default=str))


if __name__ == "__main__":
    main()
