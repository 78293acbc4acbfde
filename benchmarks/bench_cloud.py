"""Object storage: ingest from an S3 API server on loopback vs the same files on local disk.

Usage::

    python benchmarks/bench_cloud.py --n 2000 [--workers 2] [--json FILE]

Starts moto's S3 server on 127.0.0.1 (``pip install 'gantry[s3]' 'moto[server]'``),
uploads ``n`` synthetic CT files, then reports:

- ingest files/s from the bucket beside ingest of the same files from disk
  (target: at least 50%), with the CPU seconds each took in this process tree;
- bytes fetched per file against the header size (bytes before Pixel Data;
  target: at most 2x);
- export files/s to the bucket (staged, verified, published, read back) beside
  export of the same instances to a local folder;
- ingest of the local files into a session whose tables live in the bucket
  (``Session(db, data="s3://...")``) beside the same ingest with local tables.

The server shares the machine's cores with gantry, so on a small machine the
figures are a lower bound of what a remote endpoint gives.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import print_table  # noqa: E402


def _cpu() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def _timed(fn):  # type: ignore[no-untyped-def]
    cpu, wall = _cpu(), time.perf_counter()
    value = fn()
    return value, time.perf_counter() - wall, _cpu() - cpu


def run(n: int, workers: int, root: Path) -> list[dict[str, object]]:
    import boto3

    from gantry import Session
    from gantry.testing import make_ct_files
    from gantry.testing._s3 import moto_server, s3_env

    src = root / f"ct{n}"
    if not src.exists():
        make_ct_files(src, n)
    paths = sorted(p for p in src.rglob("*") if p.is_file())
    rows: list[dict[str, object]] = []
    with moto_server() as server:
        os.environ.update(s3_env(server.url))
        client = boto3.client("s3")
        client.create_bucket(Bucket="bench")
        client.create_bucket(Bucket="clean")

        def put(p: Path) -> None:
            client.put_object(Bucket="bench", Key=f"ct/{p.relative_to(src)}", Body=p.read_bytes())

        with ThreadPoolExecutor(16) as pool:
            list(pool.map(put, paths))
        for p in paths:  # warm the page cache for the local contender
            p.read_bytes()

        results = {}
        for name, source in (("local disk", str(src)), ("S3 (moto, loopback)", "s3://bench/ct")):
            db = root / f"{name.split()[0]}.db"
            shutil.rmtree(db.with_suffix(".gantry"), ignore_errors=True)
            db.unlink(missing_ok=True)
            with Session(db) as s:
                r, wall, cpu = _timed(
                    lambda s=s, source=source: s.ingest(source, workers=workers, progress=False)
                )
                assert r.indexed == n, r.as_dict()
                results[name] = (db, n / wall)
                row: dict[str, object] = {
                    "step": f"ingest from {name}",
                    "files": r.indexed,
                    "files/s": n / wall,
                    "CPU s": cpu,
                }
                if source.startswith("s3://"):
                    b = s.sql(
                        "SELECT avg(o.bytes_fetched) AS fetched, avg(i.pixel_offset) AS header, "
                        "max(o.bytes_fetched / i.pixel_offset) AS worst "
                        "FROM objects o JOIN instances i USING (file_id)"
                    ).row(0, named=True)
                    row["bytes fetched/file"] = b["fetched"]
                    row["header bytes/file"] = b["header"]
                    row["fetched/header (mean, worst)"] = (
                        f"{b['fetched'] / b['header']:.2f}, {b['worst']:.2f}"
                    )
                rows.append(row)
        ratio = results["S3 (moto, loopback)"][1] / results["local disk"][1]
        rows.append({"step": "S3 ingest / local ingest", "files/s": ratio})

        client.create_bucket(Bucket="tables")
        db = root / "tables.db"
        shutil.rmtree(db.with_suffix(".gantry"), ignore_errors=True)
        db.unlink(missing_ok=True)
        with Session(db, data=f"s3://tables/{time.time_ns()}") as s:
            r, wall, cpu = _timed(lambda s=s: s.ingest(str(src), workers=workers, progress=False))
            assert r.indexed == n, r.as_dict()
            parts = s.sql("SELECT count(*) AS n FROM parquet_parts")["n"][0]
        rows.append(
            {
                "step": f"ingest from local disk, tables in S3 ({parts} parts)",
                "files": r.indexed,
                "files/s": n / wall,
                "CPU s": cpu,
            }
        )

        db = results["S3 (moto, loopback)"][0]
        with Session(db) as s:
            s.anonymize(None)
            for name, dest in (
                ("local folder", str(root / "out")),
                ("S3 bucket", "s3://clean/out"),
            ):
                e, wall, cpu = _timed(
                    lambda s=s, dest=dest: s.export(
                        dest, safe=False, workers=workers, progress=False
                    )
                )
                assert e.ok, e.failed
                rows.append(
                    {
                        "step": f"export to {name} (sources in S3)",
                        "files": e.exported,
                        "files/s": e.exported / wall,
                        "CPU s": cpu,
                    }
                )
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--root", type=Path, default=None, help="work folder (default: a temp dir)")
    ap.add_argument("--json", type=Path, default=None, help="also write the rows here")
    args = ap.parse_args()
    root = args.root or Path(tempfile.mkdtemp(prefix="gantry-bench-cloud-"))
    root.mkdir(parents=True, exist_ok=True)
    rows = run(args.n, args.workers, root)
    cols: list[str] = []
    for r in rows:
        cols += [k for k in r if k not in cols]
    print_table([{c: r.get(c, "") for c in cols} for r in rows])
    print("\ntargets: S3 ingest >= 50% of local ingest; bytes fetched <= 2x the header")
    if args.json is not None:
        args.json.write_text(json.dumps({"n": args.n, "rows": rows}, indent=2, default=str))


if __name__ == "__main__":
    main()
