"""Export throughput: Gantry's verified export vs a naive pydicom script and dicognito.

Usage::

    python benchmarks/bench_export.py [--n 5000] [--workers N] [--root DIR]
                                      [--baseline-files 1000] [--peer-files 1000]
                                      [--no-peers] [--json out.json]

On the CT corpus of ``make_ct_files`` (``--root``/ct{n}, shared with the other
benchmarks; 512x512, ~100 elements with nested sequences and a private block), each
contender in a fresh process with the files in the page cache:

- **gantry**: ingest and ``anonymize`` (plan time reported) in one process, then
  ``Session.export(dest)`` — the default basic profile, ``safe=True``, verification on
  (every written file read back and checked) — in another, ``--repeat`` times into
  fresh destinations (the best run counts), so the export's peak memory is its own: "peak RSS" is the largest sum of the resident sets of the process and
  its workers, sampled every 20 ms;
- **naive**: one Python process looping ``pydicom.dcmread`` → delete ~60 identifying
  elements and the private ones → replace the UIDs by ``2.25.<sha256>`` → ``save_as``,
  on the first ``--baseline-files`` files;
- **verification share**: the part of the export's wall time spent on verification
  (gathering the original values to search for, then the workers' checks spread over
  the workers), and for comparison the same export run once with ``verify=False``;
- **dicognito** (``benchmarks/peers.py``: its own venv from the package index) on the
  first ``--peer-files`` files.

Rates are files per second of each contender's own run (start-up excluded for the
peers; the export's includes its pool start and the safety audit). Targets: Gantry
>= 10x dicognito's files/s with peak RSS < 1 GB.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import multiprocessing
import os
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import print_table  # noqa: E402

# What a hand-written de-identification script typically removes.
NAIVE_REMOVE = [
    "PatientName", "PatientID", "PatientBirthDate", "PatientBirthTime", "PatientSex",
    "PatientAge", "PatientSize", "PatientWeight", "PatientAddress", "PatientTelephoneNumbers",
    "OtherPatientIDs", "OtherPatientNames", "OtherPatientIDsSequence", "PatientMotherBirthName",
    "MedicalRecordLocator", "EthnicGroup", "Occupation", "AdditionalPatientHistory",
    "PatientComments", "MilitaryRank", "BranchOfService", "CountryOfResidence",
    "RegionOfResidence", "IssuerOfPatientID", "ResponsiblePerson", "ResponsibleOrganization",
    "AccessionNumber", "StudyID", "StudyDate", "SeriesDate", "AcquisitionDate", "ContentDate",
    "StudyTime", "SeriesTime", "AcquisitionTime", "ContentTime", "AcquisitionDateTime",
    "InstanceCreationDate", "InstanceCreationTime", "InstitutionName", "InstitutionAddress",
    "InstitutionalDepartmentName", "ReferringPhysicianName", "ReferringPhysicianAddress",
    "ReferringPhysicianTelephoneNumbers", "PhysiciansOfRecord", "PerformingPhysicianName",
    "NameOfPhysiciansReadingStudy", "OperatorsName", "RequestingPhysician", "StationName",
    "DeviceSerialNumber", "ProtocolName", "StudyDescription", "SeriesDescription",
    "RequestedProcedureDescription", "PerformedProcedureStepDescription",
    "PerformedProcedureStepID", "PerformedProcedureStepStartDate",
    "PerformedProcedureStepStartTime", "ImageComments", "AdmittingDiagnosesDescription",
    "DerivationDescription", "ReferencedPatientSequence", "ReferencedStudySequence",
    "RequestAttributesSequence", "TimezoneOffsetFromUTC",
]  # fmt: skip
NAIVE_UIDS = ["StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID", "FrameOfReferenceUID"]


# -- memory -------------------------------------------------------------------------------------


class TreeRSS:
    """Sample the summed RSS of this process and its descendants (psutil) in a thread.

    ``cpu_s`` is the CPU time (user + system) the descendants used while sampled, plus
    this process's own: the export's CPU-seconds, workers and fork server included
    (a worker's last 20 ms before it exits can be missed).
    """

    def __init__(self, interval: float = 0.02) -> None:
        self.interval = interval
        self.peak_mb = 0.0
        self.cpu_s = 0.0
        self._cpu: dict[int, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        import psutil

        me = psutil.Process()
        start = me.cpu_times()
        while True:
            total = 0
            for p in me.children(recursive=True):
                try:
                    total += p.memory_info().rss
                    t = p.cpu_times()
                    self._cpu[p.pid] = t.user + t.system
                except psutil.Error:
                    pass
            total += me.memory_info().rss
            self.peak_mb = max(self.peak_mb, total / 2**20)
            now = me.cpu_times()
            own = now.user + now.system - start.user - start.system
            self.cpu_s = own + sum(self._cpu.values())
            if self._stop.wait(self.interval):
                break

    def __enter__(self) -> TreeRSS:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def _hwm_mb() -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


# -- contenders (each runs in a spawned child) --------------------------------------------------


def _prepare(src: str, db: str, workers: int | None) -> dict[str, float]:
    from gantry import Session

    with Session(db) as s:
        r = s.ingest(src, workers=workers, progress=False)
        t0 = time.perf_counter()
        plan = s.anonymize()
        plan_s = time.perf_counter() - t0
        # the part of it that stores the verification tokens (timed again on its own)
        from gantry.plan._token_table import PlanTokenWriter

        t0 = time.perf_counter()
        tokens = PlanTokenWriter(s.store, s.stored_config())
        try:
            tokens.add(s.store, s.store.scan("plan").collect())
            tokens.write()
        finally:
            tokens.close()
        tokens_s = time.perf_counter() - t0
    return {
        "plan_tokens_s": tokens_s,
        "ingest_s": r.seconds,
        "indexed": r.indexed,
        "plan_s": plan_s,
        "plan_rows": int(plan["rows"].sum()),
    }


def _export(db: str, dest: str, workers: int | None, verify: bool = True) -> dict[str, Any]:
    from gantry import Session

    with TreeRSS() as rss, Session(db) as s:
        r = s.export(dest, workers=workers, verify=verify, progress=False)
    n_workers = workers or os.cpu_count() or 1
    return {
        "seconds": r.seconds,
        "token_s": r.token_seconds,
        "verify_s": r.verify_seconds,
        # wall time verification accounts for: gathering the values to search for,
        # plus the workers' checking time spread over the workers
        "verify share": (r.token_seconds + r.verify_seconds / n_workers) / r.seconds
        if r.seconds
        else 0.0,
        "exported": r.exported,
        "excluded": r.excluded.height,
        "failed": r.failed.height,
        "bytes_written": r.bytes_written,
        "peak_rss_mb": rss.peak_mb,
        "main_rss_mb": _hwm_mb(),
        "cpu_s": rss.cpu_s,
    }


def naive(paths: list[str], out: str) -> dict[str, float]:
    """The hand-written script: read, delete, hash UIDs, write; one process."""
    import pydicom

    def hashed(uid: str) -> str:
        return "2.25." + str(int.from_bytes(hashlib.sha256(uid.encode()).digest()[:16], "big"))

    os.makedirs(out, exist_ok=True)
    t0 = time.perf_counter()
    for p in paths:
        ds = pydicom.dcmread(p)
        for kw in NAIVE_REMOVE:
            if kw in ds:
                delattr(ds, kw)
        ds.remove_private_tags()
        for kw in NAIVE_UIDS:
            if kw in ds:
                setattr(ds, kw, hashed(ds.data_element(kw).value))
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        ds.PatientIdentityRemoved = "YES"
        ds.save_as(os.path.join(out, ds.SOPInstanceUID + ".dcm"), enforce_file_format=True)
    return {
        "seconds": time.perf_counter() - t0,
        "files": len(paths),
        "peak_rss_mb": _hwm_mb(),
        "cpu_s": time.process_time(),
    }


def _child(fn: Any, args: tuple[Any, ...], q: Any) -> None:
    q.put(fn(*args))


def _in_child(fn: Any, *args: Any) -> Any:
    ctx = multiprocessing.get_context("spawn")
    q = ctx.Queue()
    proc = ctx.Process(target=_child, args=(fn, args, q))
    proc.start()
    result = q.get()
    proc.join()
    return result


# -- the benchmark ------------------------------------------------------------------------------


def _settle(paths: list[str]) -> None:
    """Start every run in the same state: earlier outputs on disk, the corpus in the cache.

    Without it a run can pay for the one before: the 2.6 GB a 5,000-file export
    writes are written back while the next run works, and when the page cache is
    full they evict part of the corpus, which the next run reads from disk again.
    """
    os.sync()
    for p in paths:
        Path(p).read_bytes()


def run(
    n: int = 5000,
    workers: int | None = None,
    root: Path | None = None,
    baseline_files: int = 1000,
    peer_files: int = 1000,
    peers: bool = True,
    repeat: int = 2,
) -> dict[str, Any]:
    """Run every contender; return their figures (rows) and the ratios."""
    from bench_cluster import corpus

    root = root or Path(tempfile.mkdtemp(prefix="gantry-bench-export-"))
    root.mkdir(parents=True, exist_ok=True)
    src = corpus(root, n)
    paths = sorted(str(p) for p in src.rglob("*.dcm"))
    mb_per_file = sum(os.path.getsize(p) for p in paths) / len(paths) / 1e6
    _settle(paths)
    work = root / "export-work"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)

    prep = _in_child(_prepare, str(src), str(work / "bench.db"), workers)
    runs = []
    for i in range(repeat):  # each into a fresh destination; the best run counts
        _settle(paths)
        runs.append(_in_child(_export, str(work / "bench.db"), str(work / f"out-gantry{i}"),
                              workers))  # fmt: skip
        shutil.rmtree(work / f"out-gantry{i}", ignore_errors=True)
    g = min(runs, key=lambda r: r["seconds"])
    g["runs s"] = [round(r["seconds"], 2) for r in runs]
    # the same export without verification: the other way to see its share
    _settle(paths)
    off = _in_child(_export, str(work / "bench.db"), str(work / "out-noverify"), workers, False)
    shutil.rmtree(work / "out-noverify", ignore_errors=True)
    g["no-verify s"] = off["seconds"]
    g["verify share (on - off)"] = max(0.0, g["seconds"] - off["seconds"]) / g["seconds"]
    g_rate = g["exported"] / g["seconds"]
    rows: list[dict[str, Any]] = [
        {
            "method": f"gantry export (verify, {workers or os.cpu_count()} workers)",
            "files": g["exported"],
            "seconds": g["seconds"],
            "files/s": g_rate,
            "MB/s": g_rate * mb_per_file,
            "peak RSS MB": g["peak_rss_mb"],
            "CPU s": g["cpu_s"],
            "gantry ×": 1.0,
        }
    ]
    k = min(baseline_files, n)
    _settle(paths)
    nv = _in_child(naive, paths[:k], str(work / "out-naive"))
    rows.append(_row("naive pydicom script (1 process)", nv["files"], nv["seconds"], nv, g_rate,
                     mb_per_file))  # fmt: skip
    peer_row: dict[str, Any] | None = None
    if peers:
        import peers as peers_mod

        python, log = peers_mod.ensure_venv(root)
        if python is None:
            peer_row = {"peer": "dicognito", "error": log}
        else:
            folder, m, _ = peers_mod.subset(src, root, min(peer_files, n))
            peer_row = peers_mod.run_peer(python, "dicognito", folder, work / "out-dicognito", m)
        if "seconds" in peer_row:
            rows.append(_row(f"dicognito {peer_row['version']} (1 process)", peer_row["files"],
                             peer_row["seconds"], {"peak_rss_mb": peer_row["peak RSS MB"]},
                             g_rate, mb_per_file))  # fmt: skip
        else:
            rows.append({"method": "dicognito", "files": 0, "seconds": 0.0, "files/s": 0.0,
                         "MB/s": 0.0, "peak RSS MB": 0.0, "CPU s": 0.0,
                         "gantry ×": f"error: {peer_row.get('error')}"})  # fmt: skip
    return {
        "n": n,
        "MB per file": mb_per_file,
        "ingest s": prep["ingest_s"],
        "plan s": prep["plan_s"],
        "plan rows": prep["plan_rows"],
        "plan tokens s": prep["plan_tokens_s"],
        "gantry": g,
        "rows": rows,
    }


def _row(
    name: str, files: int, seconds: float, r: dict[str, Any], g_rate: float, mb: float
) -> dict[str, Any]:
    rate = files / seconds
    return {
        "method": name,
        "files": files,
        "seconds": seconds,
        "files/s": rate,
        "MB/s": rate * mb,
        "peak RSS MB": r["peak_rss_mb"],
        "CPU s": r.get("cpu_s", float("nan")),
        "gantry ×": g_rate / rate,
    }


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--n", type=int, default=5000)
    ap.add_argument("--workers", type=int, default=None)
    ap.add_argument("--root", type=Path, default=None, help="work folder, shared corpus")
    ap.add_argument("--baseline-files", type=int, default=1000)
    ap.add_argument("--peer-files", type=int, default=1000)
    ap.add_argument("--no-peers", action="store_true")
    ap.add_argument("--repeat", type=int, default=2, help="Gantry export runs (best counts)")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    res = run(args.n, args.workers, args.root, args.baseline_files, args.peer_files,
              not args.no_peers, args.repeat)  # fmt: skip
    g = res["gantry"]
    print(f"## Export of {res['n']:,} CT files ({res['MB per file']:.2f} MB each)\n")
    print(f"plan: {res['plan rows']:,} rows in {res['plan s']:.2f} s "
          f"(ingest before it: {res['ingest s']:.2f} s); export excluded {g['excluded']}, "
          f"failed {g['failed']}; runs {g['runs s']} s\n")  # fmt: skip
    print_table(res["rows"])
    print(
        f"\nverification: {g['verify share']:.1%} of the export's wall time (values to search "
        f"for {g['token_s']:.2f} s, checking {g['verify_s']:.2f} s summed over files); "
        f"without verification the export took {g['no-verify s']:.2f} s "
        f"({g['verify share (on - off)']:.1%} less; noisy on a shared machine)"
    )
    print(
        f"verification tokens are computed by anonymize and stored beside the plan: "
        f"{res['plan tokens s']:.2f} s of the plan's time (export only reads them); "
        f"export CPU {g['cpu_s'] / max(g['exported'], 1) * 1000:.2f} ms/file, all processes"
    )
    print("\ntarget: gantry >= 10x dicognito's files/s, peak RSS < 1 GB; verification <= 20%")
    if args.json:
        args.json.write_text(json.dumps(res, indent=1, default=str))


if __name__ == "__main__":
    main()
