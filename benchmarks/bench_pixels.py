"""Redact + re-encode throughput of gantry.pixels against a naive pydicom loop.

For three synthetic multi-frame inputs (native Explicit VR Little Endian,
JPEG 2000 Lossless, JPEG-LS Lossless; 16-bit, 12 bits stored) two methods blank
the same zones in every frame and produce pixel data in the input's syntax:

* ``gantry``: ``gantry.pixels.redact_dataset`` with its defaults and one
  worker thread per core (``--workers``): frame by frame; native rows rewritten
  in place; every frame's redaction verified, the first re-encoded frame
  decoded back.  ``gantry x1`` is the same on one thread; ``gantry-all`` is
  ``check="all"`` (every re-encoded frame decoded back: one more decode per frame);
* ``naive``: ``ds.pixel_array`` → numpy mask → ``ds.PixelData = arr.tobytes()``
  (native) or ``ds.compress(syntax, arr)`` (compressed), i.e. pydicom alone,
  one thread.  pydicom needs its plugins for JPEG 2000 / JPEG-LS (``pip install
  pylibjpeg pylibjpeg-openjpeg pyjpegls``); without them that row says so.

Both sides code JPEG 2000 with OpenJPEG (Gantry through imagecodecs, pydicom
through pylibjpeg-openjpeg) with the same settings: a J2K codestream, one tile,
reversible 5/3 wavelet, 6 resolutions, 64×64 code-blocks, one quality layer,
LRCP, no colour transform (monochrome), precision 12.

Each run is a fresh process (``spawn``); a second table gives each run's CPU
seconds (all its threads), as the machine may be shared; "peak+" is the peak resident memory
(VmHWM, reset once the file is read) minus the RSS at that point.  A last pass measures
peak traced allocations (tracemalloc) on the native input, in frames.

Usage::

    python benchmarks/bench_pixels.py                # ~256 MB native, 48 compressed frames
    python benchmarks/bench_pixels.py --native-mb 64 --compressed-frames 16   # quick
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import tempfile
import time
import tracemalloc
from pathlib import Path
from typing import Any

import numpy as np

ROWS = COLS = 512
ZONES = [(0, 40, 0, 512), (480, 512, 0, 200)]  # a header band and a footer box


# ----------------------------------------------------------------- inputs
def _frames(count: int, seed: int = 0) -> np.ndarray:
    """Smooth 12-bit frames with a little noise (compress like real images)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:ROWS, 0:COLS].astype(np.float32)
    base = 1800 + 900 * np.sin(x / 37) * np.cos(y / 53)
    out = np.empty((count, ROWS, COLS), np.uint16)
    for i in range(count):
        noise = rng.normal(0, 12, (ROWS, COLS)).astype(np.float32)
        out[i] = np.clip(base + 40 * np.sin(i / 5 + x / 90) + noise, 0, 4095)
    return out


def _write(path: Path, frames: np.ndarray, syntax: str) -> None:
    import imagecodecs
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.encaps import encapsulate
    from pydicom.uid import (
        ExplicitVRLittleEndian,
        JPEG2000Lossless,
        JPEGLSLossless,
        generate_uid,
    )

    uid = {"native": ExplicitVRLittleEndian, "j2k": JPEG2000Lossless, "jpegls": JPEGLSLossless}
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = uid[syntax]
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.7.3"
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID = generate_uid()
    ds.Rows, ds.Columns, ds.SamplesPerPixel = ROWS, COLS, 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    ds.NumberOfFrames = len(frames)
    if syntax == "native":
        ds.PixelData = frames.tobytes()
        ds["PixelData"].VR = "OW"
    else:
        if syntax == "j2k":
            enc = [imagecodecs.jpeg2k_encode(f, level=0, codecformat="J2K", bitspersample=12,
                                             numthreads=1) for f in frames]  # fmt: skip
        else:
            enc = [imagecodecs.jpegls_encode(f) for f in frames]
        ds.PixelData = encapsulate([bytes(e) for e in enc])
        ds["PixelData"].VR = "OB"
        ds["PixelData"].is_undefined_length = True
    ds.save_as(path, enforce_file_format=True)


# ----------------------------------------------------------------- methods
def _rss_mb(field: str = "VmRSS") -> float:
    """Current (VmRSS) or peak (VmHWM) resident memory of this process, in MiB (Linux)."""
    with open(f"/proc/{os.getpid()}/status") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    return float("nan")


def _reset_peak() -> None:
    """Reset VmHWM to the current RSS (Linux >= 4.0); ru_maxrss cannot be reset."""
    try:
        with open(f"/proc/{os.getpid()}/clear_refs", "w") as fh:
            fh.write("5")
    except OSError:
        pass


def _gantry(ds: Any, workers: int, check: str = "first") -> None:
    from gantry.pixels import Zone, redact_dataset

    redact_dataset(ds, [Zone(*z) for z in ZONES], fill=0, workers=workers, check=check)


def _naive(ds: Any) -> None:
    arr = ds.pixel_array
    for r0, r1, c0, c1 in ZONES:
        arr[..., r0:r1, c0:c1] = 0
    syntax = ds.file_meta.TransferSyntaxUID
    if syntax.is_compressed:
        ds.compress(syntax, arr)
    else:
        ds.PixelData = arr.tobytes()


def _run(path: str, method: str, workers: int, trace: bool, queue: Any) -> None:
    """One method on one file in this (fresh) process; ``gantry x1`` means 1 worker."""
    import warnings

    import pydicom

    import gantry.pixels  # noqa: F401  (imports stay out of the timing and the memory)

    warnings.simplefilter("ignore")
    ds = pydicom.dcmread(path)
    _ = ds.PixelData
    _reset_peak()
    base = _rss_mb()
    if trace:
        tracemalloc.start()
    t0, cpu0 = time.perf_counter(), time.process_time()
    try:
        if method == "gantry-all":
            _gantry(ds, workers, "all")
        elif method.startswith("gantry"):
            _gantry(ds, int(method.partition(" x")[2] or workers))
        else:
            _naive(ds)
    except Exception as exc:  # pydicom without plugins, typically
        queue.put({"error": f"{type(exc).__name__}: {str(exc).splitlines()[0][:90]}"})
        return
    seconds, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    traced = tracemalloc.get_traced_memory()[1] / 2**20 if trace else float("nan")
    peak = _rss_mb("VmHWM")
    queue.put({"seconds": seconds, "cpu": cpu, "extra_mb": peak - base, "traced_mb": traced,
               "out_mb": len(ds.PixelData) / 2**20})  # fmt: skip


def measure(path: Path, method: str, *, workers: int = 1, trace: bool = False) -> dict[str, Any]:
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_run, args=(str(path), method, workers, trace, queue))
    proc.start()
    result = queue.get()
    proc.join()
    return result  # type: ignore[no-any-return]


# --------------------------------------------------------------------- main
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--native-mb", type=int, default=256, help="size of the native input")
    parser.add_argument("--compressed-frames", type=int, default=48)
    parser.add_argument("--repeat", type=int, default=1, help="runs per method (best kept)")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1,
                        help="threads for the 'gantry' rows (default: one per core)")  # fmt: skip
    args = parser.parse_args()

    frame_mb = ROWS * COLS * 2 / 2**20
    native_frames = max(1, int(args.native_mb / frame_mb))
    with tempfile.TemporaryDirectory(prefix="gantry-bench-") as tmp:
        inputs = []
        t0 = time.perf_counter()
        for syntax, count in (("native", native_frames), ("j2k", args.compressed_frames),
                              ("jpegls", args.compressed_frames)):  # fmt: skip
            path = Path(tmp) / f"{syntax}.dcm"
            frames = _frames(min(count, 64))
            reps = -(-count // len(frames))
            _write(path, np.concatenate([frames] * reps)[:count], syntax)
            inputs.append((syntax, path, count))
        print(f"inputs written in {time.perf_counter() - t0:.1f} s "
              f"({ROWS}x{COLS} 16-bit frames, zones {ZONES})\n")  # fmt: skip

        print(f"gantry: {args.workers} worker thread(s); naive: 1 thread; JPEG 2000 on both "
              "sides: OpenJPEG, J2K, reversible 5/3, 6 resolutions, 64x64 blocks, 1 layer\n")  # fmt: skip
        methods = ["gantry"] + (["gantry x1"] if args.workers > 1 else []) + ["gantry-all", "naive"]
        header = (f"{'input':<8}{'file MB':>9}{'frames':>8}  {'method':<10}{'s':>8}"
                  f"{'MB/s':>9}{'frames/s':>10}{'peak+ MB':>10}{'vs naive':>10}")  # fmt: skip
        print(header)
        print("-" * len(header))
        cpu_table: list[tuple[str, dict[str, dict[str, Any]]]] = []
        for syntax, path, count in inputs:
            decoded_mb = count * frame_mb
            results: dict[str, dict[str, Any]] = {}
            for method in methods:
                runs = [measure(path, method, workers=args.workers) for _ in range(args.repeat)]
                ok = [r for r in runs if "error" not in r]
                results[method] = min(ok, key=lambda r: r["seconds"]) if ok else runs[0]
            naive = results["naive"]
            for method in methods:
                r = results[method]
                name = f"{syntax:<8}{path.stat().st_size / 2**20:>9.1f}{count:>8}  {method:<10}"
                if "error" in r:
                    print(f"{name}  n/a: {r['error']}")
                    continue
                speed = ""
                if method != "naive" and "error" not in naive:
                    speed = f"{naive['seconds'] / r['seconds']:>9.1f}x"
                print(f"{name}{r['seconds']:>8.2f}{decoded_mb / r['seconds']:>9.1f}"
                      f"{count / r['seconds']:>10.1f}{r['extra_mb']:>10.0f}{speed:>10}")  # fmt: skip
            cpu_table.append((syntax, results))

        print("\nCPU seconds per run (every thread of the process; wall s in brackets):")
        for syntax, results in cpu_table:
            cells = [f"{m} {r['cpu']:.2f} ({r['seconds']:.2f})" for m, r in results.items()
                     if "error" not in r]  # fmt: skip
            print(f"  {syntax:<8}" + "   ".join(cells))

        native = inputs[0][1]
        print(f"\npeak traced allocations on the native input ({native_frames} frames of "
              f"{frame_mb:.2f} MB = {native_frames * frame_mb:.0f} MB):")  # fmt: skip
        for method in ("gantry", "naive"):
            r = measure(native, method, trace=True)
            if "error" in r:
                print(f"  {method:<7} n/a: {r['error']}")
                continue
            print(f"  {method:<7} {r['traced_mb']:8.1f} MB traced "
                  f"(= output {r['out_mb']:.0f} MB + {(r['traced_mb'] - r['out_mb']) / frame_mb:.1f}"
                  f" frames)")  # fmt: skip


if __name__ == "__main__":
    main()
