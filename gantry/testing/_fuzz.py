"""A seeded fuzzing campaign over ingest and export, shared by ``benchmarks/fuzz.py`` and the tests.

:func:`run_fuzz` writes mutated copies of sample files (the families of
:data:`gantry.testing._hostile.MUTATIONS`), reads each with the ingest reader
on its own (timing it: a file over ``hang_seconds`` counts as a hang), then
runs the whole pile through a session: ingest, anonymize, export.  It
reports counts by outcome and every problem: an exception that escaped, a
skipped file or failed export without a reason, a reason holding a path.

Examples
--------
>>> import tempfile, pydicom
>>> from pathlib import Path
>>> ct = Path(pydicom.__file__).parent / "data" / "test_files" / "CT_small.dcm"
>>> report = run_fuzz([ct], tempfile.mkdtemp(), per_family=1, seed=3, families=["truncate"])
>>> report.files, report.problems
(1, [])
"""

from __future__ import annotations

import dataclasses
import random
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path

from gantry.testing._hostile import MUTATIONS

__all__ = ["FuzzReport", "run_fuzz"]


@dataclasses.dataclass
class FuzzReport:
    """What a fuzzing run found.

    Attributes
    ----------
    files : int
        Mutated files written.
    outcomes : Counter
        ``indexed``, ``skipped:<reason>`` or ``crash`` per file (ingest reader).
    export_outcomes : Counter
        ``ok``, ``failed``, ``excluded`` per indexed instance (session export).
    slowest : float
        Seconds (wall clock) of the slowest single-file read.
    slowest_cpu : float
        CPU seconds of the most expensive single-file read.
    problems : list of str
        Anything that breaks the promises: an escaped exception, a hang, a
        reason missing or naming a path.  Empty when all is well.
    """

    files: int = 0
    outcomes: Counter[str] = dataclasses.field(default_factory=Counter)
    export_outcomes: Counter[str] = dataclasses.field(default_factory=Counter)
    by_family: dict[str, Counter[str]] = dataclasses.field(default_factory=dict)
    slowest: float = 0.0
    slowest_cpu: float = 0.0
    problems: list[str] = dataclasses.field(default_factory=list)


def run_fuzz(
    samples: Sequence[str | Path],
    workdir: str | Path,
    *,
    per_family: int = 2,
    seed: int = 0,
    families: Iterable[str] | None = None,
    hang_seconds: float = 10.0,
    export: bool = True,
) -> FuzzReport:
    """Mutate `samples`, ingest and export the results, and report what happened.

    Parameters
    ----------
    samples : sequence of paths
        DICOM files to mutate.
    workdir : path
        Receives ``in/`` (the mutated files, under a folder named like a
        patient, so a leaked path is caught), the session and the export.
    per_family : int
        Mutated files per sample and family.
    seed : int
        Seeds every mutation: the same arguments give the same files.
    families : iterable of str, optional
        Mutation families to use (default: all).
    hang_seconds : float
        A single-file read slower than this is reported as a hang.
    export : bool
        Also run ingest, anonymize and export through a session.
    """
    from gantry.ingest import read_batch

    root = Path(workdir)
    marker = "CANARY_DOE^JANE_555-123-4567"
    folder = root / "in" / marker
    folder.mkdir(parents=True, exist_ok=True)
    report = FuzzReport()
    chosen = sorted(families) if families is not None else sorted(MUTATIONS)
    written: list[tuple[str, Path]] = []
    for family in chosen:
        report.by_family[family] = Counter()
        for index, sample in enumerate(samples):
            data = Path(sample).read_bytes()
            for copy in range(per_family):
                rng = random.Random(f"{seed}:{family}:{index}:{copy}")
                path = folder / f"{family}-{index}-{copy}.dcm"
                path.write_bytes(MUTATIONS[family](data, rng))
                written.append((family, path))
    report.files = len(written)
    for family, path in written:
        started, cpu = time.perf_counter(), time.process_time()
        try:
            batch = read_batch([path])
        except Exception as exc:  # the promise is that this never happens
            outcome = "crash"
            report.problems.append(f"{path.name}: {type(exc).__name__} escaped read_batch")
        else:
            if batch.instances.num_rows:
                outcome = "indexed"
            else:
                reason = batch.skipped.column("reason")[0].as_py()
                detail = batch.skipped.column("detail")[0].as_py() or ""
                outcome = f"skipped:{reason}"
                if not reason or not detail:
                    report.problems.append(f"{path.name}: skipped without a reason")
                if marker in detail or str(root) in detail:
                    report.problems.append(f"{path.name}: the skip detail names the path")
        elapsed = time.perf_counter() - started
        cpu = time.process_time() - cpu
        report.slowest = max(report.slowest, elapsed)
        report.slowest_cpu = max(report.slowest_cpu, cpu)
        if elapsed > hang_seconds:  # CPU time tells a hang from a starved machine
            report.problems.append(f"{path.name}: read took {elapsed:.1f} s ({cpu:.1f} s CPU)")
        report.outcomes[outcome] += 1
        report.by_family[family][outcome] += 1
    if export:
        _through_a_session(root, folder, marker, report)
    return report


def _through_a_session(root: Path, folder: Path, marker: str, report: FuzzReport) -> None:
    from gantry import Session

    with Session(root / "fuzz.db") as s:
        result = s.ingest(folder, workers=1, progress=False)
        if result.indexed + result.skipped != report.files:
            report.problems.append(
                f"session ingest accounted for {result.indexed + result.skipped} of "
                f"{report.files} files"
            )
        if not result.indexed:
            return
        s.anonymize(None)
        exported = s.export(root / "out", workers=1, progress=False)
        report.export_outcomes["ok"] += exported.exported
        report.export_outcomes["failed"] += exported.failed.height
        report.export_outcomes["excluded"] += exported.excluded.height
        for reason in [*exported.failed["reason"], *exported.excluded["reason"]]:
            if not reason:
                report.problems.append("an export failure without a reason")
            elif marker in reason or str(root) in reason:
                report.problems.append("an export reason names the source path")
            elif "internal step failed" in reason:
                report.problems.append(f"an internal error reached a reason: {reason}")
