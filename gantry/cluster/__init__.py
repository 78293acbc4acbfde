"""Run ingest and export tasks on a Dask cluster instead of the local process pool.

The per-batch tasks are the same functions the local pool runs; each writes only
its own staging folder (ingest) or its own output files (export), and the main
process commits every finished task once. Dask is an optional extra
(``pip install 'gantry[cluster]'``); without it everything else works and asking
for a cluster raises :class:`~gantry.errors.MissingDependencyError`.

Examples
--------
>>> from gantry.cluster import ENV_VAR
>>> ENV_VAR
'GANTRY_EXECUTOR'
"""

from gantry.cluster._executor import (
    ENV_VAR,
    Backend,
    DaskExecutor,
    check_shared,
    connect,
    open_backend,
)

__all__ = ["Backend", "DaskExecutor", "ENV_VAR", "check_shared", "connect", "open_backend"]
