"""Ingest: scan folders, read DICOM headers, commit Parquet batches.

:func:`read_batch` reads a batch of files into the three ingest tables (a fast
``struct`` walker, with pydicom as the reference and fallback);
:func:`run_ingest` scans, fans batches out to worker processes and commits each
finished batch atomically. Most users call :meth:`gantry.Session.ingest`.
"""

from gantry.ingest._batch import BatchResult, read_batch
from gantry.ingest._ids import file_id
from gantry.ingest._limits import IngestLimits
from gantry.ingest._runner import IngestResult, ingest_batch, run_ingest

__all__ = [
    "BatchResult",
    "IngestLimits",
    "IngestResult",
    "file_id",
    "ingest_batch",
    "read_batch",
    "run_ingest",
]
