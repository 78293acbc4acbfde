"""Object storage: one small file-system interface, and ingest / export through it.

:class:`Storage` is what Gantry needs of a place holding files (list, ranged read,
atomic write, publish, remove); :class:`LocalStorage` and :class:`FsspecStorage`
implement it (docs/storage.md).  :func:`run_remote_ingest` indexes a bucket
prefix reading headers only; :func:`export_to_bucket` writes a verified export
to one.  Most users call :meth:`gantry.Session.ingest` and
:meth:`gantry.Session.export` with an ``s3://``, ``gs://`` or ``az://`` URL.
"""

from typing import TYPE_CHECKING, Any

from gantry.storage._fs import (
    FsspecStorage,
    LocalStorage,
    ObjectInfo,
    Storage,
    is_url,
    open_storage,
)

if TYPE_CHECKING:
    from gantry.storage._export import BucketExportResult, export_to_bucket
    from gantry.storage._ingest import RangedFile, run_remote_ingest
    from gantry.storage._outputs import committed_files

__all__ = [
    "BucketExportResult",
    "FsspecStorage",
    "LocalStorage",
    "ObjectInfo",
    "RangedFile",
    "Storage",
    "committed_files",
    "export_to_bucket",
    "is_url",
    "open_storage",
    "run_remote_ingest",
]

# the exporter and the remote reader bring pydicom: a local ingest (which asks
# ``is_url`` of its paths) should not import them, so they load on first use
_LAZY = {
    "BucketExportResult": "gantry.storage._export",
    "export_to_bucket": "gantry.storage._export",
    "RangedFile": "gantry.storage._ingest",
    "run_remote_ingest": "gantry.storage._ingest",
    "committed_files": "gantry.storage._outputs",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'gantry.storage' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)
