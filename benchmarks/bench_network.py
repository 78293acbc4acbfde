"""DICOM over loopback: Gantry's C-STORE and ``listen`` against DCMTK, in one run.

Usage::

    python benchmarks/bench_network.py [--n 1000] [--size 512] [--repeat 2] [--json FILE]

1. Writes ``--n`` native CT files (``make_ct_files``, ``--size``² pixels, 16-bit).
2. **Send**: C-STORE all of them to a fresh Orthanc, once with DCMTK ``storescu``
   (the baseline) and once with Gantry (``gantry.net.send_files``, the network leg
   of ``Session.export("dicom://…")``). Target: Gantry ≥ 80 % of storescu.
3. **Receive**: ``storescu`` sends all of them to DCMTK ``storescp`` (the baseline)
   and to ``Session.listen`` (write atomically + ingest in batches). ``received`` is
   the time until storescu finished (every file acknowledged, so on disk);
   ``+ ingest`` until the last batch is indexed. Target: Gantry ≥ 80 % of storescp.

Each measurement keeps the best of ``--repeat`` runs (fresh servers and folders
every time). Peak RSS: Gantry's own process (``ru_maxrss``; it grows over the
run) and the DCMTK/Orthanc processes'. Needs ``apt-get install -y orthanc dcmtk``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import peak_rss_mb, print_table  # noqa: E402

from gantry import Session  # noqa: E402
from gantry.net import Peer, SendItem, send_files  # noqa: E402
from gantry.testing import make_ct_files  # noqa: E402
from gantry.testing._servers import free_port, missing, orthanc, storescp, storescu  # noqa: E402


def _row(what: str, tool: str, n: int, mb: float, seconds: float, rss: float) -> dict[str, Any]:
    return {
        "what": what,
        "tool": tool,
        "files": n,
        "seconds": round(seconds, 2),
        "files/s": round(n / seconds, 1),
        "MB/s": round(mb / seconds, 1),
        "peak RSS MB": round(rss, 0),
    }


def send_storescu(files: list[Path], work: Path) -> float:
    with orthanc(work / "o-dcmtk", dicomweb=False) as o:
        t0 = time.perf_counter()
        done = storescu(o.dicom_port, o.aet, files[0].parents[3])
        secs = time.perf_counter() - t0
        assert done.returncode == 0, done.stderr.decode()[-500:]
        assert len(o.instances()) == len(files)
    return secs


def send_gantry(files: list[Path], work: Path) -> float:
    with orthanc(work / "o-gantry", dicomweb=False) as o:
        items = [SendItem(i, str(p)) for i, p in enumerate(files)]
        t0 = time.perf_counter()
        out = send_files(Peer.parse(o.url), items)
        secs = time.perf_counter() - t0
        assert all(x.status == "ok" for x in out), {x.reason for x in out}
        assert len(o.instances()) == len(files)
    return secs


def receive_storescp(files: list[Path], work: Path) -> float:
    with storescp(work / "scp") as scp:
        t0 = time.perf_counter()
        done = storescu(scp.port, scp.aet, files[0].parents[3])
        secs = time.perf_counter() - t0
        assert done.returncode == 0
        assert len(scp.files()) == len(files)
    return secs


def receive_gantry(files: list[Path], work: Path) -> tuple[float, float]:
    port = free_port()
    stop, ready = threading.Event(), threading.Event()
    out: dict[str, Any] = {}
    with Session(work / "listen.db") as s:

        def run() -> None:
            out["r"] = s.listen(
                work / "inbox", port=port, host="127.0.0.1", stop=stop,
                ready=lambda p: ready.set(), batch_size=500, batch_seconds=2.0,
            )  # fmt: skip

        t = threading.Thread(target=run)
        t.start()
        assert ready.wait(30)
        t0 = time.perf_counter()
        done = storescu(port, "GANTRY", files[0].parents[3])
        received = time.perf_counter() - t0
        stop.set()
        t.join()
        ingested = time.perf_counter() - t0
        assert done.returncode == 0, done.stderr.decode()[-500:]
        assert out["r"].indexed == len(files)
    return received, ingested


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--quick", action="store_true", help="200 files of 256², one run")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)
    if args.quick:
        args.n, args.size, args.repeat = 200, 256, 1
    reason = missing("Orthanc", "storescu", "storescp")
    if reason:
        print(f"skipped: {reason}")
        return 0
    root = Path(tempfile.mkdtemp(prefix="gantry-bench-net-"))
    try:
        files = make_ct_files(root / "dicom", args.n, rows=args.size, columns=args.size)
        mb = sum(p.stat().st_size for p in files) / 1e6

        def best(fn: Any) -> Any:
            results = []
            for i in range(args.repeat):
                work = root / f"{fn.__name__}-{i}"
                results.append(fn(files, work))
                shutil.rmtree(work, ignore_errors=True)
            return min(results)

        base_send = best(send_storescu)
        our_send = best(send_gantry)
        base_recv = best(receive_storescp)
        dcmtk_rss = peak_rss_mb(children=True)
        our_recv, our_ingest = best(receive_gantry)
        rss = peak_rss_mb()
        rows = [
            _row("C-STORE to Orthanc", "DCMTK storescu", args.n, mb, base_send, dcmtk_rss),
            _row("C-STORE to Orthanc", "gantry send_files", args.n, mb, our_send, rss),
            _row("receive from storescu", "DCMTK storescp", args.n, mb, base_recv, dcmtk_rss),
            _row("receive from storescu", "gantry listen", args.n, mb, our_recv, rss),
            _row("receive + ingest", "gantry listen", args.n, mb, our_ingest, rss),
        ]
        print(f"{args.n} files of {args.size}x{args.size} ({mb:.0f} MB) over loopback")
        print_table(rows)
        ratios = {
            "send: gantry / storescu throughput": base_send / our_send,
            "receive: gantry listen / storescp throughput": base_recv / our_recv,
            "receive+ingest: gantry listen / storescp throughput": base_recv / our_ingest,
        }
        for k, v in ratios.items():
            print(f"{k}: {v:.0%} (target >= 80%)")
        if args.json:
            args.json.write_text(json.dumps({"rows": rows, "ratios": ratios}, indent=1))
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
