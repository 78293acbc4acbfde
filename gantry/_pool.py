"""The local process pool that ingest and export run their per-file work on.

Worker processes only ever run Gantry's own task functions (``ingest_batch``,
``export_items``), so they never need the caller's ``__main__`` module. The
standard ``spawn`` and ``forkserver`` start methods import it anyway, in every
worker, which breaks three common ways of running Gantry:

- a script without the ``if __name__ == "__main__":`` guard (each worker runs
  the script again and fails while starting its own pool);
- code piped to ``python -`` (the workers look for a file named ``<stdin>``);
- ``python -m module`` of a module without the guard (the same re-run).

:func:`process_pool` starts its workers with the main module hidden from the
preparation data, so none of them imports it: a script, ``python -``,
``python -c`` and Jupyter all work the same, with or without the guard.

Where the ``forkserver`` start method exists, the fork server imports the worker
code (:data:`WORKER_MODULES`: pydicom, Polars, PyArrow and Gantry's readers and
writers) once, and every worker is forked from it with all of that already
loaded, instead of each worker importing it again. :func:`start_pool_server`
starts that server early, so its imports run while the caller is still planning
the work (ingest walks the inputs, export builds its items).
"""

from __future__ import annotations

import multiprocessing
import os
import sys
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from multiprocessing import context
from multiprocessing.context import BaseContext
from typing import Any

__all__ = ["WORKER_MODULES", "pool_context", "process_pool", "start_pool_server", "warm_pool"]

WORKER_MODULES = ("gantry.ingest._runner", "gantry.ingest._batch", "gantry.export._apply")
"""What the fork server imports before it forks any worker (the tasks' modules)."""

_MISSING = object()


@contextmanager
def _main_hidden() -> Iterator[None]:
    """Hide where ``__main__`` came from while a worker process is launched.

    ``multiprocessing.spawn.get_preparation_data`` tells a new process to import
    the main module by ``__spec__.name`` or ``__file__``; with both absent it
    imports nothing (as for an interactive interpreter).
    """
    main = sys.modules.get("__main__")
    if main is None:
        yield
        return
    saved = {k: main.__dict__.get(k, _MISSING) for k in ("__spec__", "__file__")}
    main.__dict__["__spec__"] = None
    main.__dict__.pop("__file__", None)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is _MISSING:
                main.__dict__.pop(key, None)
            else:
                main.__dict__[key] = value


class _SpawnProcess(context.SpawnProcess):
    @staticmethod
    def _Popen(process_obj: Any) -> Any:
        with _main_hidden():
            return context.SpawnProcess._Popen(process_obj)


class _SpawnContext(context.SpawnContext):
    Process = _SpawnProcess


_CONTEXTS: dict[str, type[BaseContext]] = {"spawn": _SpawnContext}

if sys.platform != "win32":

    class _ForkServerProcess(context.ForkServerProcess):
        @staticmethod
        def _Popen(process_obj: Any) -> Any:
            with _main_hidden():
                return context.ForkServerProcess._Popen(process_obj)

    class _ForkServerContext(context.ForkServerContext):
        Process = _ForkServerProcess

    _CONTEXTS["forkserver"] = _ForkServerContext


def pool_context() -> BaseContext:
    """A ``forkserver`` context (``spawn`` where there is none) whose processes
    start without importing ``__main__``.

    Examples
    --------
    >>> ctx = pool_context()
    >>> ctx.get_start_method() in ("forkserver", "spawn")
    True
    """
    method = "forkserver" if "forkserver" in multiprocessing.get_all_start_methods() else "spawn"
    ctx = _CONTEXTS.get(method, _SpawnContext)()
    if method == "forkserver":
        # taken into account when the (per-process) server starts; a no-op after
        ctx.set_forkserver_preload(list(WORKER_MODULES))  # type: ignore[attr-defined]
    return ctx


def start_pool_server() -> None:
    """Start the fork server now, so that it imports :data:`WORKER_MODULES` while the
    caller does other work; the pool's workers are then forked ready to run.

    A no-op where there is no ``forkserver`` (workers are spawned and import
    what they need themselves) or when the server already runs.

    Examples
    --------
    >>> start_pool_server()
    >>> with process_pool(1) as pool:
    ...     pool.submit(pow, 2, 10).result()
    1024
    """
    if pool_context().get_start_method() != "forkserver":
        return
    from multiprocessing import forkserver

    with _main_hidden():
        forkserver.ensure_running()  # type: ignore[attr-defined]


def warm_pool(workers: int | None, jobs: int = 2) -> None:
    """Start the fork server early (:func:`start_pool_server`) when a local pool of more
    than one worker (``None``: every core) will run more than one job.

    The caller decides that the pool is local (no executor, no cluster).

    Examples
    --------
    >>> warm_pool(1)  # one worker runs in the caller's process: nothing to start
    >>> warm_pool(2, jobs=1)
    """
    if (workers or os.cpu_count() or 1) > 1 and jobs > 1:
        start_pool_server()


def process_pool(workers: int) -> ProcessPoolExecutor:
    """A process pool of ``workers`` processes that never import ``__main__``.

    Examples
    --------
    >>> import operator
    >>> with process_pool(1) as pool:
    ...     pool.submit(operator.add, 2, 3).result()
    5
    """
    return ProcessPoolExecutor(max_workers=workers, mp_context=pool_context())
