"""Fuzzing campaign: mutated sample files through ingest, anonymize and export.

Usage::

    python benchmarks/fuzz.py [--samples 54] [--per-family 4] [--seed 0] [--families a,b]

Takes the first ``--samples`` DICOM files that pydicom ships (and pydicom-data
when it is installed), writes ``--per-family`` mutated copies of each per
mutation family (``gantry.testing._hostile.MUTATIONS``: truncation, bit flips,
splices, extreme lengths, bad VRs, bad text, deep nesting, huge elements,
deflate bombs, huge frame counts, garbage), reads each with the ingest reader
(timed), then ingests, anonymizes and exports the pile through one session.

Prints counts by outcome per family, the slowest single-file read, peak RSS,
and every problem found (an escaped exception, a hang over 10 s, a reason
missing or naming a path).  Exits 1 when there is a problem.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import peak_rss_mb, print_table  # noqa: E402


def sample_files(limit: int) -> list[Path]:
    """DICOM samples shipped with pydicom (plus pydicom-data when installed); no downloads."""
    import pydicom

    roots = [Path(pydicom.__file__).parent / "data" / "test_files"]
    try:
        import pydicom_data  # type: ignore[import-not-found]

        roots.append(Path(pydicom_data.__file__).parent / "data")
    except ImportError:
        pass
    found = sorted(p for root in roots for p in root.rglob("*.dcm"))
    out = []
    for path in found:
        if path.stat().st_size > 8 << 20:  # keep the campaign quick
            continue
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # choosing samples is not under test
                pydicom.dcmread(path, stop_before_pixels=True)
        except Exception:
            continue
        out.append(path)
        if len(out) >= limit:
            break
    return out


def main(argv: list[str] | None = None) -> int:
    from gantry.testing._fuzz import run_fuzz
    from gantry.testing._hostile import MUTATIONS

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=54)
    parser.add_argument("--per-family", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--families", default=",".join(sorted(MUTATIONS)))
    parser.add_argument("--no-export", action="store_true")
    args = parser.parse_args(argv)
    samples = sample_files(args.samples)
    families = [f for f in args.families.split(",") if f]
    with tempfile.TemporaryDirectory(prefix="gantry-fuzz-") as tmp:
        started = time.perf_counter()
        report = run_fuzz(
            samples,
            tmp,
            per_family=args.per_family,
            seed=args.seed,
            families=families,
            export=not args.no_export,
        )
        seconds = time.perf_counter() - started
    print(f"{report.files} mutated files from {len(samples)} samples, {len(families)} families")
    outcomes = sorted({o for c in report.by_family.values() for o in c})
    print_table(
        [
            {"family": family, **{o: counts.get(o, 0) for o in outcomes}}
            for family, counts in sorted(report.by_family.items())
        ]
    )
    print(f"\ningest outcomes: {dict(sorted(report.outcomes.items()))}")
    print(f"export outcomes: {dict(sorted(report.export_outcomes.items()))}")
    print(f"slowest single-file read: {report.slowest:.2f} s wall, "
          f"most expensive: {report.slowest_cpu:.2f} s CPU")  # fmt: skip
    print(f"total {seconds:.1f} s ({report.files / seconds:.0f} files/s), "
          f"peak RSS {peak_rss_mb():.0f} MB")  # fmt: skip
    if report.problems:
        print(f"\n{len(report.problems)} problem(s):")
        for problem in report.problems:
            print(f"- {problem}")
        return 1
    print("no problems")
    return 0


if __name__ == "__main__":
    sys.exit(main())
