"""Identity locking throughput: Gantry's vectorised lock vs a naive per-instance loop.

Usage::

    python benchmarks/bench_identity.py [--instances 100000] [--patients 10000] [--repeat 3]

Builds a synthetic index (``make_synthetic_index``, no DICOM files) and the plan rows
the vault reads (``docs/internals.md``: P for PatientID/PatientName, U for the Study,
Series and SOP Instance UIDs, plus one X row for every other element so the plan has
its real size), then, each in a fresh spawned process:

- **gantry**: ``Session.lock_identities()`` — one Polars pipeline builds one JSON
  document per patient, one AES-256-GCM encryption per patient, lookup tags for every
  new UID in four AES passes, Parquet parts of 20,000 patients. Cold (first call in
  the process) and best-of-``--repeat`` warm timings (wall and CPU seconds), the
  lock's peak RSS, and a phase breakdown measured after them;
- **naive**: the same inputs loaded the same way, then a Python loop over instances:
  a JSON document, an AES-256-GCM encryption and an HMAC-SHA256 lookup tag per
  instance, rows written to Parquet 100,000 at a time.

The plan is written one part per ingest batch of 100,000 instances, as ``anonymize``
writes it, so a 1,000,000-instance run (``--instances 1000000 --patients 100000``)
fits in memory.

Pass ``--real-plan`` to build the plan with ``Session.anonymize`` instead.
"""

from __future__ import annotations

import argparse
import hmac
import json
import multiprocessing
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import print_table  # noqa: E402

UID_PATHS = {
    "StudyInstanceUID": "0020000D",
    "SeriesInstanceUID": "0020000E",
    "SOPInstanceUID": "00080018",
}


def peak_rss_mb() -> float:
    """This process's peak RSS (VmHWM: unlike ru_maxrss it is not inherited across exec)."""
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def build(db: Path, key: Path, n: int, patients: int, real_plan: bool) -> dict[str, float]:
    from gantry import Session
    from gantry.testing._synthetic_index import make_synthetic_index

    t0 = time.perf_counter()
    with Session(db) as s:
        make_synthetic_index(
            s.store, n, patients=patients, instances_per_series=5, series_per_study=2,
            elements_per_instance=40,
        )  # fmt: skip
        t1 = time.perf_counter()
        if real_plan:
            s.anonymize(None)
        else:
            s.store.write_table_parts("plan", _plan_parts(s))
        s.enable_reversible_anonymization(key)
        rows = s.sql("SELECT count(*) AS n FROM plan")["n"][0]
    return {"index_s": t1 - t0, "plan_s": time.perf_counter() - t1, "plan_rows": rows}


def _plan_parts(s):  # type: ignore[no-untyped-def]
    """The plan, one part per ingest batch (as ``anonymize`` writes it: bounded memory)."""
    import polars as pl

    from gantry.plan import uid_map
    from gantry.plan._pseudonyms import assign_pseudonyms

    people = assign_pseudonyms(
        s.store,
        s.sql("SELECT DISTINCT coalesce(PatientID, '') AS p FROM instances")["p"].to_list(),
        template="ANON_{id}",
        method="counter",
    ).select("PatientID", "pseudonym")
    for file in s.store.files_of("instances"):
        inst = (
            s.store.scan_files([file])
            .select("file_id", pl.col("PatientID").fill_null(""), *UID_PATHS)
            .collect()
        )
        per_file = inst.join(people, on="PatientID")
        uids = uid_map(s.store.secret, pl.concat([inst[c] for c in UID_PATHS]).to_list())
        el = (
            s.store.scan_files([s.store.sibling(file, "elements")])
            .select("file_id", "path", "tag", "keyword", "vr")
            .collect()
        )
        new = pl.concat(
            [
                per_file.select(
                    "file_id", pl.lit(p).alias("path"), pl.col("pseudonym").alias("new_value")
                )
                for p in ("00100020", "00100010")
            ]
            + [
                inst.join(uids, left_on=kw, right_on="id_old").select(
                    "file_id", pl.lit(tag).alias("path"), pl.col("id_new").alias("new_value")
                )
                for kw, tag in UID_PATHS.items()
            ]
        )
        yield (
            el.join(new, on=["file_id", "path"], how="left")
            .with_columns(
                pl.when(pl.col("path").is_in(["00100020", "00100010"]))
                .then(pl.lit("P"))
                .when(pl.col("new_value").is_not_null())
                .then(pl.lit("U"))
                .otherwise(pl.lit("X"))
                .alias("action"),
                pl.lit("bench").alias("rule"),
            )
            .select("file_id", "path", "tag", "keyword", "vr", "action", "new_value", "rule")
            .sort("file_id", "path")
        )


def gantry_lock(db: str, key: str, repeat: int, q: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    from gantry import Session
    from gantry.vault._documents import identity_documents
    from gantry.vault._seal import seal

    with Session(db) as s:
        s.load_key(key)
        times, cpu = [], []
        for _ in range(repeat):
            if "identities" in s.tables():
                s.store.drop_table("identities")
            t0, c0 = time.perf_counter(), time.process_time()
            n = s.lock_identities()
            times.append(time.perf_counter() - t0)
            cpu.append(time.process_time() - c0)
        rss = peak_rss_mb()  # the lock's peak, before the breakdown below seals in one piece
        # phase breakdown, outside the timed runs
        t0, c0 = time.perf_counter(), time.process_time()
        docs = identity_documents(s.store)
        t1, c1 = time.perf_counter(), time.process_time()
        rows = seal(s._vault_key, docs.frame, docs.uids)  # type: ignore[arg-type]
        t2, c2 = time.perf_counter(), time.process_time()
        s.store.write_table("identities", rows)
        t3, c3 = time.perf_counter(), time.process_time()
        size = sum(f.stat().st_size for f in s.store.files_of("identities"))
        q.put(
            {
                "patients": n,
                "cold_s": times[0],
                "cold_cpu_s": cpu[0],
                "warm_s": min(times[1:] or times),
                "warm_cpu_s": min(cpu[1:] or cpu),
                "documents_s": t1 - t0,
                "seal_s": t2 - t1,
                "write_s": t3 - t2,
                "phase_cpu_s": (c1 - c0, c2 - c1, c3 - c2),
                "vault_mb": size / 1e6,
                "rss_mb": rss,
            }
        )


def naive_lock(db: str, key: str, q: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    """Same inputs, then one JSON document, encryption and HMAC per instance in Python."""
    import polars as pl
    import pyarrow.parquet as pq
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    from gantry import Session
    from gantry.vault import read_key_file

    vault_key = read_key_file(key)
    aead = AESGCM(vault_key.subkey("identity-aead"))
    lookup = vault_key.subkey("uid-lookup")
    with Session(db) as s:
        t0, c0 = time.perf_counter(), time.process_time()
        inst = s.store.scan("instances").select(
            "file_id", "PatientID", "PatientName", pl.col("PatientBirthDate").dt.strftime("%Y%m%d"),
            "PatientSex", "AccessionNumber", *UID_PATHS,
        ).collect()  # fmt: skip
        plan = (
            s.store.scan("plan")
            .filter(pl.col("path").is_in(["00100020", *UID_PATHS.values()]))
            .select("file_id", "path", "new_value")
            .collect()
            .pivot("path", index="file_id", values="new_value", aggregate_function="first")
        )
        joined = inst.join(plan, on="file_id", how="left")
        writer = None
        for chunk in joined.iter_slices(100_000):  # rows written as they come: bounded memory
            out = _naive_rows(chunk, aead, lookup)
            writer = writer or pq.ParquetWriter(
                Path(db).with_name("naive_identities.parquet"), out.schema
            )
            writer.write_table(out)
        if writer is not None:
            writer.close()
        seconds = time.perf_counter() - t0
        cpu = time.process_time() - c0
    q.put({"seconds": seconds, "cpu_s": cpu, "rss_mb": peak_rss_mb()})


def _naive_rows(chunk, aead, lookup):  # type: ignore[no-untyped-def]
    """One JSON document, AES-256-GCM encryption and HMAC tags per instance row."""
    import pyarrow as pa

    out = {k: [] for k in ("pseudonym", "nonce", "ciphertext", "uid_keys")}  # type: ignore[var-annotated]
    for row in chunk.iter_rows(named=True):
        pseudonym = row["00100020"]
        doc = {
            "PatientID": row["PatientID"],
            "PatientName": row["PatientName"],
            "PatientBirthDate": row["PatientBirthDate"],
            "PatientSex": row["PatientSex"],
            "AccessionNumber": row["AccessionNumber"],
            **{kw: [row[kw], row[tag]] for kw, tag in UID_PATHS.items()},
        }
        nonce = os.urandom(12)
        out["pseudonym"].append(pseudonym)
        out["nonce"].append(nonce)
        out["ciphertext"].append(aead.encrypt(nonce, json.dumps(doc).encode(), pseudonym.encode()))
        out["uid_keys"].append(
            [hmac.digest(lookup, row[tag].encode(), "sha256")[:16] for tag in UID_PATHS.values()]
        )
    return pa.table(out)


def _in_child(target, *args):  # type: ignore[no-untyped-def]
    ctx = multiprocessing.get_context("spawn")
    q = ctx.Queue()
    proc = ctx.Process(target=target, args=(*args, q))
    proc.start()
    result = q.get()
    proc.join()
    return result


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--instances", type=int, default=100_000)
    ap.add_argument("--patients", type=int, default=10_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--real-plan", action="store_true")
    ap.add_argument(
        "--dir", type=Path, default=None, help="Work folder (default: a temp dir); reused if built."
    )
    args = ap.parse_args()
    root = args.dir or Path(tempfile.mkdtemp(prefix="bench-identity-"))
    db, key = root / "bench.db", root / "bench.key"
    if db.exists() and key.exists():
        print(f"reusing {db} ({os.cpu_count()} cores)")
    else:
        setup = build(db, key, args.instances, args.patients, args.real_plan)
        print(
            f"setup: {args.instances:,} instances / {args.patients:,} patients indexed in "
            f"{setup['index_s']:.1f} s, plan of {setup['plan_rows']:,} rows in "
            f"{setup['plan_s']:.1f} s ({os.cpu_count()} cores)"
        )
    g = _in_child(gantry_lock, str(db), str(key), args.repeat)
    nv = _in_child(naive_lock, str(db), str(key))
    n, p = args.instances, g["patients"]
    rows = [
        {
            "method": "gantry (warm, best)",
            "seconds": g["warm_s"],
            "CPU s": g["warm_cpu_s"],
            "instances/s": round(n / g["warm_s"]),
            "patients/s": round(p / g["warm_s"]),
            "peak RSS MB": g["rss_mb"],
            "speedup": nv["seconds"] / g["warm_s"],
        },
        {
            "method": "gantry (cold, first call)",
            "seconds": g["cold_s"],
            "CPU s": g["cold_cpu_s"],
            "instances/s": round(n / g["cold_s"]),
            "patients/s": round(p / g["cold_s"]),
            "peak RSS MB": g["rss_mb"],
            "speedup": nv["seconds"] / g["cold_s"],
        },
        {
            "method": "naive per-instance loop",
            "seconds": nv["seconds"],
            "CPU s": nv["cpu_s"],
            "instances/s": round(n / nv["seconds"]),
            "patients/s": round(p / nv["seconds"]),
            "peak RSS MB": nv["rss_mb"],
            "speedup": 1.0,
        },
    ]
    print_table(rows)
    print(
        f"gantry phases: documents {g['documents_s']:.3f} s, seal (encrypt + lookup tags) "
        f"{g['seal_s']:.3f} s, write {g['write_s']:.3f} s; vault {g['vault_mb']:.1f} MB "
        f"for {p:,} patients"
    )
    docs_cpu, seal_cpu, write_cpu = g["phase_cpu_s"]
    print(
        f"gantry phases, CPU s: documents {docs_cpu:.3f}, seal {seal_cpu:.3f}, "
        f"write {write_cpu:.3f}"
    )


if __name__ == "__main__":
    main()
