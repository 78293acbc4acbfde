"""Ingest: scan folders, read DICOM headers, commit Parquet batches.

:func:`read_batch` reads a batch of files into the three ingest tables (a fast
``struct`` walker, with pydicom as the reference and fallback);
:func:`run_ingest` scans, fans batches out to worker processes and commits each
finished batch atomically. Most users call :meth:`gantry.Session.ingest`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from gantry.ingest._ids import file_id
from gantry.ingest._limits import IngestLimits
from gantry.ingest._runner import IngestResult, ingest_batch, run_ingest

if TYPE_CHECKING:
    from gantry.ingest._batch import BatchResult, read_batch

__all__ = [
    "BatchResult",
    "IngestLimits",
    "IngestResult",
    "file_id",
    "ingest_batch",
    "read_batch",
    "run_ingest",
]


def __getattr__(name: str) -> Any:
    # the reader brings pydicom: the ingest process itself only walks, schedules and
    # commits (its workers read), so it is loaded on first use
    if name in ("BatchResult", "read_batch"):
        from gantry.ingest import _batch

        return getattr(_batch, name)
    raise AttributeError(f"module 'gantry.ingest' has no attribute {name!r}")
