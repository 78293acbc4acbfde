"""Peers on the same corpus: dicognito and deid, each in a virtual environment of its own.

Usage::

    python benchmarks/peers.py SRC [--work DIR] [--files 500] [--json out.json]

The peers are not dependencies of Gantry: the first run creates ``WORK/peers-venv``
(``python -m venv`` + ``pip install dicognito deid`` from the package index) and later
runs reuse it. Each peer then de-identifies the first ``--files`` files of ``SRC``
(``*.dcm``, sorted; linked into a folder of their own) into a fresh output folder, in a
fresh process:

- **dicognito**: ``dicognito.__main__.main(["-o", OUT, "--quiet", IN])``;
- **deid**: ``deid --outfolder OUT identifiers --input IN --action all`` (its default
  recipe).

The timed span is the peer's own call, after its imports (so start-up does not count
against it); peak RSS is the process's ``VmHWM``. A peer that fails to install or to
run is reported with its error, never dropped.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

PEERS = ("dicognito", "deid")

_HARNESS = textwrap.dedent(
    """
    import json, sys, time

    def hwm():
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
        return float("nan")

    peer, src, out = sys.argv[1:4]
    t0 = time.perf_counter()
    if peer == "dicognito":
        from importlib.metadata import version as dist_version
        from dicognito.__main__ import main
        version = dist_version("dicognito")
        imported = time.perf_counter()
        main(["-o", out, "--quiet", src])
    else:
        from importlib.metadata import version as dist_version
        from deid.main import main
        version = dist_version("deid")
        imported = time.perf_counter()
        sys.argv = ["deid", "--quiet", "--outfolder", out, "identifiers",
                    "--input", src, "--action", "all"]
        try:
            main()
        except SystemExit as exc:
            if exc.code not in (None, 0):
                raise
    done = time.perf_counter()
    print("PEER " + json.dumps({"version": version, "import_s": imported - t0,
                                "seconds": done - imported, "peak_rss_mb": hwm()}))
    """
)


def ensure_venv(work: Path) -> tuple[Path | None, str]:
    """The peers' interpreter (created on first use) and an install log / error text."""
    venv = work / "peers-venv"
    python = venv / "bin" / "python"
    ok = venv / ".installed"
    if ok.exists():
        return python, ok.read_text()
    shutil.rmtree(venv, ignore_errors=True)
    try:
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, capture_output=True)
        got = subprocess.run(
            [str(python), "-m", "pip", "install", "-q", *PEERS],
            capture_output=True,
            text=True,
            timeout=900,
        )
    except (subprocess.SubprocessError, OSError) as exc:
        return None, f"venv: {type(exc).__name__}: {exc}"
    if got.returncode != 0:
        return None, "pip install failed: " + _last_line(got.stderr)
    versions = subprocess.run(
        [str(python), "-m", "pip", "list", "--format=freeze"], capture_output=True, text=True
    ).stdout
    wanted = [
        line for line in versions.splitlines() if line.split("==")[0].lower() in (*PEERS, "pydicom")
    ]
    ok.write_text(", ".join(wanted))
    return python, ok.read_text()


def _last_line(text: str) -> str:
    lines = [ln.strip() for ln in text.splitlines() if ln.strip() and "Location 'file" not in ln]
    return lines[-1][:300] if lines else "(no output)"


def subset(src: Path, work: Path, files: int) -> tuple[Path, int, float]:
    """A folder of links to the first ``files`` DICOM files of ``src``: (folder, count, MB)."""
    paths = sorted(src.rglob("*.dcm"))[:files]
    folder = work / f"peer-input-{len(paths)}"
    if not folder.exists() or len(list(folder.iterdir())) != len(paths):
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        for i, p in enumerate(paths):
            (folder / f"{i:07d}.dcm").symlink_to(p.resolve())
    for p in paths:  # warm the page cache, as for every contender
        p.read_bytes()
    return folder, len(paths), sum(p.stat().st_size for p in paths) / 1e6


def run_peer(python: Path, peer: str, src: Path, out: Path, files: int) -> dict[str, Any]:
    """Run one peer on ``src`` into a fresh ``out``; its figures or its error."""
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    t0 = time.perf_counter()
    got = subprocess.run(
        [str(python), "-c", _HARNESS, peer, str(src), str(out)],
        capture_output=True,
        text=True,
        timeout=3600,
    )
    wall = time.perf_counter() - t0
    line = next((ln for ln in got.stdout.splitlines() if ln.startswith("PEER ")), None)
    if got.returncode != 0 or line is None:
        return {"peer": peer, "error": _last_line(got.stderr or got.stdout)}
    stats = json.loads(line[5:])
    written = sum(1 for p in out.rglob("*") if p.is_file())
    row = {
        "peer": peer,
        "version": stats["version"],
        "files": files,
        "written": written,
        "seconds": stats["seconds"],
        "files/s": files / stats["seconds"],
        "peak RSS MB": stats["peak_rss_mb"],
        "wall s (incl. start-up)": wall,
    }
    if written != files:
        row["error"] = f"wrote {written} of {files} files"
    return row


def run(src: Path, work: Path | None = None, files: int = 500) -> dict[str, Any]:
    """Install (once) and run every peer on the first ``files`` files of ``src``."""
    work = work or Path(tempfile.mkdtemp(prefix="gantry-peers-"))
    work.mkdir(parents=True, exist_ok=True)
    python, log = ensure_venv(work)
    folder, n, mb = subset(src, work, files)
    rows: list[dict[str, Any]] = []
    for peer in PEERS:
        if python is None:
            rows.append({"peer": peer, "error": log})
            continue
        try:
            row = run_peer(python, peer, folder, work / f"peer-out-{peer}", n)
        except subprocess.TimeoutExpired:
            row = {"peer": peer, "error": "timed out after 3600 s"}
        if "seconds" in row:
            row["MB/s"] = mb / row["seconds"]
        rows.append(row)
    return {"files": n, "MB": mb, "venv": log if python else None, "peers": rows}


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("src", type=Path, help="folder of DICOM files (searched recursively)")
    ap.add_argument("--work", type=Path, default=None, help="venv and outputs (default: temp)")
    ap.add_argument("--files", type=int, default=500)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    res = run(args.src, args.work, args.files)
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from _common import print_table

    print(f"peers: {res['venv']}\n")
    cols = ["peer", "version", "files", "seconds", "files/s", "MB/s", "peak RSS MB", "error"]
    print_table([{c: r.get(c, "") for c in cols} for r in res["peers"]])
    if args.json:
        args.json.write_text(json.dumps(res, indent=1))


if __name__ == "__main__":
    os.environ.setdefault("PYTHONWARNINGS", "ignore")
    main()
