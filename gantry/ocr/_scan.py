"""Scan pixels for burned-in text → tables ``text_regions`` and ``ocr_scans``.

Per-file work (read, render for display, OCR) runs in worker processes; each
finished chunk is appended to the store at once, so a killed scan resumes
where it stopped.  ``ocr_scans`` has one row per scanned instance (engine,
frames read, whether every frame was read, status); ``text_regions`` one row
per text box.  After a rescan, only each file's latest scan is kept.
"""

from __future__ import annotations

import hashlib
import os
import sys
import time
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import Executor, ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final

import polars as pl

from gantry._messages import capture_warnings, mask, reason_for
from gantry._pool import pool_context
from gantry._progress import tqdm
from gantry.errors import CodecError, ConfigError, GantryError

if TYPE_CHECKING:
    from gantry.store import Store

__all__ = [
    "REGIONS_SCHEMA",
    "SCANS_SCHEMA",
    "ScanResult",
    "current_regions",
    "current_scans",
    "scan_file",
    "scan_pixels",
]

#: What an image needs before its pixels can be read (any one of the pixel data elements).
_NEEDED: Final = ("Rows", "Columns", "BitsAllocated")
_PIXELS: Final = ("PixelData", "FloatPixelData", "DoubleFloatPixelData")

REGIONS_TABLE: Final = "text_regions"
SCANS_TABLE: Final = "ocr_scans"

#: Columns of ``text_regions``.
REGIONS_SCHEMA: Final = pl.Schema(
    {
        "file_id": pl.Int64,
        "frame": pl.Int32,
        "r1": pl.Int32,
        "r2": pl.Int32,
        "c1": pl.Int32,
        "c2": pl.Int32,
        "confidence": pl.Float32,
        "text": pl.String,
        "identity": pl.Boolean,
        "phi": pl.Boolean,
        "match": pl.String,
        "engine": pl.String,
        "scan_id": pl.String,
    }
)

#: Columns of ``ocr_scans``.
SCANS_SCHEMA: Final = pl.Schema(
    {
        "file_id": pl.Int64,
        "scan_id": pl.String,
        "engine": pl.String,
        "status": pl.String,
        "error": pl.String,
        "frames_total": pl.Int32,
        "frames_scanned": pl.Int32,
        "all_frames": pl.Boolean,
        "regions": pl.Int32,
        "phi_regions": pl.Int32,
        "rows": pl.Int32,
        "columns": pl.Int32,
        "scanned_at": pl.Datetime("us"),
    }
)


@dataclass
class ScanResult:
    """What :func:`scan_pixels` did.

    Attributes
    ----------
    selected, scanned, skipped, failed : int
        Instances selected; scanned now; skipped (an earlier scan covers them);
        whose pixels could not be read (``ocr_scans.status = 'failed'``).
    frames, regions, phi_regions : int
        Frames read, text boxes found, and boxes that match identity or PHI patterns.
    seconds : float
    """

    selected: int = 0
    scanned: int = 0
    skipped: int = 0
    failed: int = 0
    frames: int = 0
    regions: int = 0
    phi_regions: int = 0
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)

    def __str__(self) -> str:
        return (
            f"scanned {self.scanned} of {self.selected} instances ({self.skipped} already scanned, "
            f"{self.failed} failed): {self.frames} frames, {self.regions} text regions, "
            f"{self.phi_regions} identifying, in {self.seconds:.1f} s"
        )


def scan_file(
    file_id: int,
    path: str,
    *,
    engine: str = "rapidocr",
    frames: str | int | Sequence[int] = "sample",
    min_confidence: float = 0.5,
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """OCR one instance: ``(region rows, scan row)``; never raises for a bad file.

    pydicom's warnings (which quote values) go to the ``gantry`` log masked, not to stderr.
    """
    with capture_warnings():
        return _scan_file(file_id, path, engine, frames, min_confidence)


def _scan_file(
    file_id: int,
    path: str,
    engine: str,
    frames: str | int | Sequence[int],
    min_confidence: float,
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    import pydicom

    from gantry.ocr._display import display_frame, frame_count, sample_frames
    from gantry.ocr._engine import TextBox, get_engine
    from gantry.ocr._match import IdentityTokens, phi_kinds

    scan_id = uuid.uuid4().hex
    ocr = get_engine(engine, min_confidence=min_confidence)
    row: dict[str, Any] = {
        "file_id": file_id,
        "scan_id": scan_id,
        "engine": engine,
        "status": "ok",
        "error": None,
        "frames_total": 0,
        "frames_scanned": 0,
        "all_frames": False,
        "regions": 0,
        "phi_regions": 0,
        "rows": None,
        "columns": None,
        "scanned_at": datetime.now(UTC).replace(tzinfo=None),
    }
    regions: list[dict[str, Any]] = []
    try:
        ds = pydicom.dcmread(path, force=True)
        lacking = _lacking(ds)
        if lacking:
            raise _Unreadable(f"the image lacks {', '.join(lacking)}")
        n = frame_count(ds)
        wanted = sample_frames(n, frames)
        identity = IdentityTokens.from_dataset(ds)
        row.update(frames_total=n, rows=int(ds.Rows), columns=int(ds.Columns))
        seen: dict[bytes, list[TextBox]] = {}  # a frame identical to one read before
        for index in wanted:
            image = display_frame(ds, index, path=path)
            key = hashlib.blake2b(image.tobytes(), digest_size=16).digest()
            if key not in seen:
                seen[key] = ocr.read(image)
            for box in seen[key]:
                kinds = phi_kinds(box.text, identity)
                regions.append(
                    {
                        "file_id": file_id,
                        "frame": index,
                        "r1": box.r1,
                        "r2": box.r2,
                        "c1": box.c1,
                        "c2": box.c2,
                        "confidence": box.confidence,
                        "text": box.text,
                        "identity": any(k.startswith("identity:") for k in kinds),
                        "phi": bool(kinds),
                        "match": ",".join(kinds) or None,
                        "engine": engine,
                        "scan_id": scan_id,
                    }
                )
            row["frames_scanned"] += 1
        row["all_frames"] = row["frames_scanned"] == n
    except Exception as exc:  # recorded, never raised: the batch goes on
        regions = []
        row.update(status="failed", error=failure_reason(exc), all_frames=False)
    row["regions"] = len(regions)
    row["phi_regions"] = sum(r["phi"] for r in regions)
    return regions, row


class _Unreadable(Exception):
    """An image the scan cannot read; the message is the recorded reason (no value in it)."""


def _lacking(ds: Any) -> list[str]:
    """The keywords of what the image needs and lacks (absent or empty)."""
    out = [k for k in _NEEDED if ds.get(k) in (None, "")]
    if not any(k in ds for k in _PIXELS):
        out.append("PixelData")
    return out


def failure_reason(exc: BaseException) -> str:
    """Why a file could not be scanned, with no value, UID or path in it.

    Examples
    --------
    >>> failure_reason(_Unreadable("the image lacks Rows"))
    'the image lacks Rows'
    >>> failure_reason(CodecError("/data/DOE^JANE/x.dcm", None, "could not be decoded: 'x'"))
    "the pixel data could not be decoded: '<masked>'"
    >>> failure_reason(KeyError("DOE^JANE"))
    'an internal step failed (KeyError): report this with the scan id'
    """
    if isinstance(exc, _Unreadable):
        return str(exc)
    if isinstance(exc, CodecError):
        return f"the pixel data {mask(exc.reason)}"
    if isinstance(exc, MemoryError):
        return "ran out of memory; scan with fewer workers"
    if isinstance(exc, GantryError | OSError):
        return reason_for(exc)
    return f"an internal step failed ({type(exc).__name__}): report this with the scan id"


def _scan_chunk(
    chunk: list[tuple[int, str]], engine: str, frames: Any, min_confidence: float
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    regions: list[dict[str, Any]] = []
    rows: list[dict[str, Any]] = []
    for fid, path in chunk:
        got, row = scan_file(fid, path, engine=engine, frames=frames, min_confidence=min_confidence)
        regions += got
        rows.append(row)
    return regions, rows


def current_scans(store: Store) -> pl.DataFrame:
    """The latest scan of each instance (columns of :data:`SCANS_SCHEMA`)."""
    if SCANS_TABLE not in store.table_names():
        return pl.DataFrame(schema=SCANS_SCHEMA)
    return (
        store.scan(SCANS_TABLE)
        .sort("scanned_at")
        .group_by("file_id")
        .last()
        .collect()
        .cast(dict(SCANS_SCHEMA))  # type: ignore[arg-type]
        .select(SCANS_SCHEMA.names())
    )


def current_regions(store: Store) -> pl.DataFrame:
    """Text regions of each instance's latest scan (columns of :data:`REGIONS_SCHEMA`)."""
    scans = current_scans(store)
    if REGIONS_TABLE not in store.table_names() or scans.height == 0:
        return pl.DataFrame(schema=REGIONS_SCHEMA)
    return (
        store.scan(REGIONS_TABLE)
        .join(scans.lazy().select("scan_id"), on="scan_id", how="semi")
        .collect()
        .cast(dict(REGIONS_SCHEMA))  # type: ignore[arg-type]
        .select(REGIONS_SCHEMA.names())
    )


def _todo(store: Store, selected: pl.DataFrame, engine: str, full: bool) -> pl.DataFrame:
    scans = current_scans(store).filter((pl.col("status") == "ok") & (pl.col("engine") == engine))
    if full:
        scans = scans.filter(pl.col("all_frames"))
    return selected.join(scans.select("file_id"), on="file_id", how="anti")


def _compact(store: Store) -> None:
    """Keep only each file's latest scan in both tables."""
    scans = current_scans(store)
    store.write_table(SCANS_TABLE, scans)
    store.write_table(REGIONS_TABLE, current_regions(store))


def scan_pixels(
    store: Store,
    *,
    query: str | None = None,
    engine: str = "rapidocr",
    frames: str | int | Sequence[int] = "sample",
    min_confidence: float = 0.5,
    rescan: bool = False,
    workers: int | None = None,
    progress: bool | None = None,
    callback: Callable[[int, int], None] | None = None,
    executor: Executor | None = None,
) -> ScanResult:
    """OCR the selected instances; see :meth:`gantry.Session.scan_pixels`."""
    from gantry.ocr._engine import get_engine

    if isinstance(frames, str) and frames not in ("sample", "all"):
        raise ConfigError("frames", expected="'sample', 'all', an int or frame numbers", got=frames)
    get_engine(engine, min_confidence=min_confidence)  # a missing package fails before any work
    started = time.perf_counter()
    # only images: instances without (7FE0,0010) (SR, KO, PR, …) have nothing to read
    where = "WHERE pixel_offset IS NOT NULL" + (f" AND ({query})" if query else "")
    selected = store.sql(f"SELECT file_id, file_path FROM instances {where} ORDER BY file_id")
    result = ScanResult(selected=selected.height)
    full = frames == "all"
    todo = selected if rescan else _todo(store, selected, engine, full)
    result.skipped = selected.height - todo.height
    items = list(todo.iter_rows())
    frames_arg: Any = frames if isinstance(frames, str | int) else list(frames)
    n_workers = max(1, workers if workers is not None else (os.cpu_count() or 1))
    size = max(1, min(16, -(-len(items) // (n_workers * 4)))) if items else 1
    chunks = [items[i : i + size] for i in range(0, len(items), size)]
    show = progress if progress is not None else sys.stderr.isatty()
    details = {"engine": engine, "frames": str(frames_arg), "query": query}
    with store.run("scan_pixels", details) as counts:
        bar = tqdm(total=len(items), unit="file", desc="scanning", disable=not show)

        def record(got: tuple[list[dict[str, Any]], list[dict[str, Any]]]) -> None:
            regions, rows = got
            if regions:
                store.write_table(
                    REGIONS_TABLE, pl.DataFrame(regions, schema=REGIONS_SCHEMA), mode="append"
                )
            store.write_table(SCANS_TABLE, pl.DataFrame(rows, schema=SCANS_SCHEMA), mode="append")
            for r in rows:
                result.scanned += r["status"] == "ok"
                result.failed += r["status"] != "ok"
                result.frames += r["frames_scanned"]
                result.regions += r["regions"]
                result.phi_regions += r["phi_regions"]
            bar.update(len(rows))
            if callback is not None:
                callback(result.scanned + result.failed, len(items))

        try:
            if executor is None and (n_workers == 1 or len(chunks) <= 1):
                for chunk in chunks:
                    record(_scan_chunk(chunk, engine, frames_arg, min_confidence))
            else:
                own = executor is None
                ex = executor or ProcessPoolExecutor(
                    max_workers=n_workers,
                    mp_context=pool_context(),  # workers never import __main__
                    initializer=_worker_init,
                    initargs=(n_workers,),
                )
                try:
                    futs = [
                        ex.submit(_scan_chunk, c, engine, frames_arg, min_confidence)
                        for c in chunks
                    ]
                    for fut in as_completed(futs):
                        record(fut.result())
                finally:
                    if own:
                        ex.shutdown(wait=True, cancel_futures=True)
        finally:
            bar.close()
        if REGIONS_TABLE not in store.table_names():  # a scan that found no text: an empty table
            store.write_table(REGIONS_TABLE, pl.DataFrame(schema=REGIONS_SCHEMA))
        if items:
            _compact_if_superseded(store)
        result.seconds = time.perf_counter() - started
        counts.update(result.as_dict())
    return result


def _compact_if_superseded(store: Store) -> None:
    n = store.sql(f"SELECT count(*) - count(DISTINCT file_id) AS extra FROM {SCANS_TABLE}")
    if int(n["extra"][0]):
        _compact(store)


def _worker_init(workers: int) -> None:
    """Share the cores between worker processes instead of each engine taking them all."""
    threads = max(1, (os.cpu_count() or 1) // max(1, workers))
    os.environ["OMP_NUM_THREADS"] = str(threads)
    os.environ["OMP_THREAD_LIMIT"] = str(threads)  # the tesseract program's OpenMP threads
    os.environ["GANTRY_OCR_THREADS"] = str(threads)
