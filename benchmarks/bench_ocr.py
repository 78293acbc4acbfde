"""OCR of burned-in text: accuracy and speed of each engine on the same generated frames.

Usage::

    python benchmarks/bench_ocr.py [--frames 500] [--seed 13] [--engines rapidocr,tesseract]
                                   [--workers 2] [--speed-frames 12] [--json FILE]

1. Generates ``--frames`` DICOM frames with a fixed seed (``make_text_instance``):
   60 % carry text (patient name, ID, birth date and one harmless label; fonts,
   sizes 9–22 px, high and low contrast) over ultrasound speckle, CT (16-bit, HU
   window), MR (12-bit, MONOCHROME1 for some) and RGB screen captures, at
   256×256 to 512×512; 40 % are text-free CT and MR.
2. For each engine, on the frames as a viewer shows them (``display_frame``):
   - box recall: true lines at least 10 px high (font line height) matched by a
     found box at IoU ≥ 0.3 (target ≥ 98 %);
   - false flags: text-free CT/MR frames with any box (target ≤ 2 %);
   - after redaction (every box grown by 4 px, blanked), a second OCR pass: identity
     tokens of the instance still read (target 0);
   - speed at 512×512 and 1024×768 (target ≥ 10 frames/s at 512×512 on 2 cores):
     frames/s and CPU seconds per frame in one process with every core, and in
     ``--workers`` processes with one thread each (as ``scan_pixels`` runs them),
     with the frames/s that CPU cost gives on that many free cores; against a plain
     baseline in the same run: the engine's library defaults (RapidOCR: angle
     classifier on, images upsampled to 736 px, spinning ONNX threads; Tesseract:
     page mode 3, no upsampling).  CPU seconds include the tesseract child processes.
3. Accuracy runs ``--workers`` processes (one ONNX thread each).

Prints a markdown table; ``--json`` writes the figures.  The machine is shared:
speed figures are noisy.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import peak_rss_mb, print_table  # noqa: E402

KINDS = ("us", "ct", "mr", "screen")
SIZES = (9, 10, 11, 12, 14, 16, 18, 22)
SHAPES = ((256, 256), (384, 384), (512, 512), (384, 512))


def frame_spec(i: int, seed: int) -> dict[str, Any]:
    """The generation parameters of frame ``i`` (deterministic)."""
    from gantry.testing._text import font_names

    rng = np.random.default_rng([seed, i])
    rows, cols = SHAPES[int(rng.integers(len(SHAPES)))]
    if rng.random() < 0.4:
        kind = "blank-ct" if rng.random() < 0.5 else "blank-mr"
        return {"kind": kind, "rows": rows, "columns": cols, "seed": seed * 100_000 + i}
    kind = KINDS[int(rng.integers(len(KINDS)))]
    fonts = font_names()
    spec: dict[str, Any] = {
        "kind": kind,
        "rows": rows,
        "columns": cols,
        "size": int(SIZES[int(rng.integers(len(SIZES)))]),
        "font": fonts[int(rng.integers(len(fonts)))],
        "contrast": "high" if rng.random() < 0.6 else "low",
        "seed": seed * 100_000 + i,
    }
    if kind == "mr" and rng.random() < 0.5:
        spec["photometric"] = "MONOCHROME1"
    return spec


def _frame(spec: dict[str, Any]) -> tuple[np.ndarray, list[Any], Any]:
    from gantry.ocr import IdentityTokens, display_frame
    from gantry.testing._text import make_text_instance

    ds, truth = make_text_instance(**spec)
    return display_frame(ds), truth, IdentityTokens.from_dataset(ds)


def _accuracy_chunk(engine: str, specs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per frame: truth lines found, boxes on text-free frames, tokens left after redaction."""
    from gantry.ocr import get_engine, phi_kinds
    from gantry.testing._text import box_iou

    ocr = get_engine(engine)
    out = []
    for spec in specs:
        image, truth, identity = _frame(spec)
        t0 = time.perf_counter()
        boxes = ocr.read(image)
        seconds = time.perf_counter() - t0
        tall = [t for t in truth if t.height >= 10]
        hits = sum(any(box_iou(b, t) >= 0.3 for b in boxes) for t in tall)
        left = 0
        if truth:
            redacted = image.copy()
            rows, cols = image.shape[:2]
            for b in boxes:
                p = b.padded(4, rows, cols)
                redacted[p.r1 : p.r2, p.c1 : p.c2] = 0
            again = ocr.read(redacted)
            left = sum(
                1
                for b in again
                if any(k.startswith("identity:") for k in phi_kinds(b.text, identity))
            )
        out.append(
            {
                "blank": not truth and spec["kind"].startswith("blank-"),
                "lines": len(tall),
                "hits": hits,
                "boxes": len(boxes),
                "left": left,
                "seconds": seconds,
                "kind": spec["kind"],
            }
        )
    return out


def accuracy(engine: str, specs: list[dict[str, Any]], workers: int) -> dict[str, Any]:
    chunks = [specs[i : i + 10] for i in range(0, len(specs), 10)]
    t0 = time.perf_counter()
    rows: list[dict[str, Any]] = []
    if workers <= 1:
        for c in chunks:
            rows += _accuracy_chunk(engine, c)
    else:
        os.environ["GANTRY_OCR_THREADS"] = "1"
        with ProcessPoolExecutor(max_workers=workers) as ex:
            for got in ex.map(_accuracy_chunk, [engine] * len(chunks), chunks):
                rows += got
        os.environ.pop("GANTRY_OCR_THREADS", None)
    wall = time.perf_counter() - t0
    lines = sum(r["lines"] for r in rows)
    blank = [r for r in rows if r["blank"]]
    text = [r for r in rows if not r["blank"]]
    return {
        "engine": engine,
        "frames": len(rows),
        "text lines >= 10 px": lines,
        "recall %": 100 * sum(r["hits"] for r in rows) / max(lines, 1),
        "text-free frames": len(blank),
        "false flags %": 100 * sum(r["boxes"] > 0 for r in blank) / max(len(blank), 1),
        "identity tokens left": sum(r["left"] for r in text),
        "accuracy wall s": wall,
        "by kind recall %": {
            k: 100
            * sum(r["hits"] for r in text if r["kind"] == k)
            / max(sum(r["lines"] for r in text if r["kind"] == k), 1)
            for k in KINDS
        },
    }


def _baseline(engine: str) -> Any:
    """The engine as its library ships, for the speed ratio."""
    if engine == "rapidocr":
        from rapidocr_onnxruntime import RapidOCR

        raw = RapidOCR()
        return lambda img: raw(np.ascontiguousarray(np.repeat(img[:, :, None], 3, 2)))
    import pytesseract
    from PIL import Image

    return lambda img: pytesseract.image_to_data(Image.fromarray(img))


def _cpu() -> float:
    """CPU seconds of this process and its waited-for children (tesseract runs as a child)."""
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + kids.ru_utime + kids.ru_stime


def _timed_reads(engine: str, images: list[np.ndarray]) -> tuple[float, float, float]:
    """Read ``images`` with a warmed engine: ``(cpu s, start, end)`` (wall clock stamps)."""
    from gantry.ocr import get_engine

    ocr = get_engine(engine)
    ocr.read(images[0])  # loads the model: not timed
    c0, t0 = _cpu(), time.time()
    for im in images:
        ocr.read(im)
    return _cpu() - c0, t0, time.time()


def _one_thread() -> None:
    os.environ["GANTRY_OCR_THREADS"] = "1"
    os.environ["OMP_THREAD_LIMIT"] = "1"


def speed(engine: str, n: int, seed: int, workers: int) -> list[dict[str, Any]]:
    """frames/s and CPU s/frame: one process with every core, then ``workers`` processes
    with one thread each (as ``scan_pixels`` runs), and the library's defaults."""
    from gantry.ocr._engine import RapidOcrEngine

    cores = os.cpu_count() or 1
    base = _baseline(engine)
    rows = []
    for rows_, cols in ((512, 512), (768, 1024)):
        specs = [
            {"kind": ["us", "ct", "mr", "blank-ct"][i % 4], "rows": rows_, "columns": cols,
             "size": 14, "seed": seed + i}
            for i in range(n)
        ]  # fmt: skip
        images = [_frame(s)[0] for s in specs]
        images = [im if im.ndim == 2 else im.mean(axis=-1).astype(np.uint8) for im in images]
        # one process, every core (ONNX threads that sleep when idle)
        read = RapidOcrEngine(threads=cores).read if engine == "rapidocr" else _reader(engine)
        read(images[0])
        base(images[0])  # warm both
        t0, c0 = time.perf_counter(), _cpu()
        for im in images:
            read(im)
        ours, cpu = time.perf_counter() - t0, _cpu() - c0
        t0, c0 = time.perf_counter(), _cpu()
        for im in images:
            base(im)
        plain, plain_cpu = time.perf_counter() - t0, _cpu() - c0
        # `workers` processes, one thread each, as a scan runs them
        parts = [images[i::workers] for i in range(workers)]
        with ProcessPoolExecutor(max_workers=workers, initializer=_one_thread) as ex:
            got = list(ex.map(_timed_reads, [engine] * workers, parts))
        pool_wall = max(g[2] for g in got) - min(g[1] for g in got)
        pool_cpu = sum(g[0] for g in got) / n
        rows.append(
            {
                "engine": engine,
                "size": f"{cols}x{rows_}",
                "frames": n,
                "1 process frames/s": n / ours,
                "1 process cpu s/frame": cpu / n,
                f"{workers} workers frames/s": n / pool_wall,
                # CPU seconds per frame (all threads): on a machine shared with other
                # jobs, wall-clock rates understate what free cores would do
                f"{workers} workers cpu s/frame": pool_cpu,
                f"frames/s on {workers} free cores": workers / pool_cpu,
                "baseline frames/s": n / plain,
                "baseline cpu s/frame": plain_cpu / n,
            }
        )
    return rows


def _reader(engine: str) -> Any:
    from gantry.ocr import get_engine

    return get_engine(engine).read


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=500)
    ap.add_argument("--seed", type=int, default=13)
    ap.add_argument("--engines", default="rapidocr,tesseract")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--speed-frames", type=int, default=12)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)
    engines = [e for e in args.engines.split(",") if e]
    if "tesseract" in engines and shutil.which("tesseract") is None:
        print("tesseract is not installed (apt-get install -y tesseract-ocr): skipped")
        engines.remove("tesseract")
    specs = [frame_spec(i, args.seed) for i in range(args.frames)]
    acc = []
    fast: list[dict[str, Any]] = []
    for engine in engines:
        print(f"[ocr] {engine}: accuracy on {len(specs)} frames", flush=True)
        acc.append(accuracy(engine, specs, args.workers))
        print(f"[ocr] {engine}: speed", flush=True)
        fast += speed(engine, args.speed_frames, args.seed, args.workers)
    print("\n## Accuracy (same frames, fixed seed)\n")
    print_table([{k: v for k, v in a.items() if k != "by kind recall %"} for a in acc])
    for a in acc:
        per = ", ".join(f"{k} {v:.1f}" for k, v in a["by kind recall %"].items())
        print(f"\n{a['engine']} recall by background: {per}")
    print(
        "\n## Speed (one process / worker processes with one thread; baseline: library defaults)\n"
    )
    print_table(fast)
    print(f"\npeak RSS {peak_rss_mb():.0f} MB (children {peak_rss_mb(children=True):.0f} MB)")
    if args.json:
        args.json.write_text(json.dumps({"accuracy": acc, "speed": fast}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
