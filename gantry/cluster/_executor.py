"""Choose where ingest and export tasks run: the local process pool or a Dask cluster."""

from __future__ import annotations

import os
import sys
import uuid
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Executor, Future, ProcessPoolExecutor, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from gantry._deps import require
from gantry.errors import ConfigError

T = TypeVar("T")

ENV_VAR = "GANTRY_EXECUTOR"
"""Environment variable naming the default executor: a scheduler address
(``tcp://host:8786``) or ``local`` (the process pool, as when it is unset)."""

_LOCAL_WORDS = frozenset({"", "local", "process", "processes", "pool"})
_EXTRA = "cluster"


class DaskExecutor(Executor):
    """A :class:`concurrent.futures.Executor` over a ``dask.distributed`` client.

    The runners submit tasks and iterate them with
    :func:`concurrent.futures.as_completed`, exactly as with the local process pool;
    every task gets a fresh key (``<function>-gantry-<uuid>``), so identical arguments
    are never served from an earlier result. Leaving the ``with`` block (or
    :meth:`shutdown` with ``wait=False``) cancels tasks still pending on the cluster.

    Parameters
    ----------
    client : distributed.Client
        A connected client.
    own_client : bool
        Close ``client`` on :meth:`shutdown` (set when Gantry opened it from an address).
    """

    def __init__(self, client: Any, *, own_client: bool = False) -> None:
        self._client = client
        self._inner = client.get_executor(pure=False)
        self._own = own_client
        self._pending: set[Future[Any]] = set()
        self._closed = False

    @property
    def client(self) -> Any:
        """The ``distributed.Client`` tasks are submitted through."""
        return self._client

    @property
    def workers(self) -> int:
        """Task slots on the cluster now: the sum of every worker's threads (at least 1)."""
        return max(1, int(sum(self._client.nthreads().values())))

    def submit(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> Future[T]:
        """Run ``fn(*args, **kwargs)`` on a worker; return a ``concurrent.futures.Future``."""
        if self._closed:
            raise RuntimeError("cannot submit to a DaskExecutor after shutdown")
        name = getattr(fn, "__name__", "task")
        fut: Future[T] = self._inner.submit(
            fn, *args, key=f"{name}-gantry-{uuid.uuid4().hex}", **kwargs
        )
        self._pending.add(fut)
        fut.add_done_callback(self._pending.discard)
        return fut

    def cancel_pending(self) -> int:
        """Cancel every task of this executor not finished yet; return how many."""
        pending = list(self._pending)
        for fut in pending:
            fut.cancel()
        return len(pending)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Stop accepting tasks; cancel the pending ones unless ``wait`` and not
        ``cancel_futures``; close the client when this executor opened it."""
        if self._closed:
            return
        self._closed = True
        try:
            if cancel_futures or not wait:
                self.cancel_pending()
                self._inner.shutdown(wait=False)
            else:
                self._inner.shutdown(wait=True)
        finally:
            if self._own:
                self._client.close()


@dataclass(frozen=True)
class Backend:
    """Where one ingest or export runs.

    Attributes
    ----------
    executor : Executor or None
        ``None``: the runner's own local process pool (the default).
    workers : int or None
        Task slots the executor offers (cluster threads), used to size batches;
        ``None`` when unknown.
    address : str or None
        The scheduler address when the tasks run on a Dask cluster.
    """

    executor: Executor | None
    workers: int | None = None
    address: str | None = None

    @property
    def is_cluster(self) -> bool:
        return isinstance(self.executor, DaskExecutor)


def connect(address: str, *, timeout: float = 30.0) -> Any:
    """Connect a ``distributed.Client`` to the scheduler at ``address``.

    Raises :class:`~gantry.errors.MissingDependencyError` naming ``gantry[cluster]``
    when dask.distributed is not installed, and ``ConfigError`` for an address that
    is not ``scheme://host:port``.
    """
    _check_address(address, "cluster")
    distributed = require("distributed", extra=_EXTRA)
    return distributed.Client(address, timeout=timeout, set_as_default=False)


def _check_address(address: str, name: str) -> None:
    if "://" not in address:
        raise ConfigError(
            name,
            expected="a scheduler address such as 'tcp://host:8786'",
            got=address,
        )


def _is_dask_client(obj: object) -> bool:
    mod = sys.modules.get("distributed")
    return mod is not None and isinstance(obj, mod.Client)


def _slots(executor: Executor) -> int | None:
    if isinstance(executor, ProcessPoolExecutor | ThreadPoolExecutor):
        return int(executor._max_workers)  # type: ignore[union-attr]  # no public accessor
    if isinstance(executor, DaskExecutor):
        return executor.workers
    return None


@contextmanager
def open_backend(
    executor: Executor | str | Any | None = None,
    *,
    cluster: str | Any | None = None,
    writable: Iterable[str | os.PathLike[str]] = (),
    readable: Iterable[str | os.PathLike[str]] = (),
) -> Iterator[Backend]:
    """Resolve where tasks run, for the duration of one ingest or export.

    Precedence: ``executor``, then ``cluster``, then the ``GANTRY_EXECUTOR``
    environment variable, then the local process pool.

    Parameters
    ----------
    executor : Executor, distributed.Client, str or None
        A ``concurrent.futures`` executor (used as is), a dask client, or a
        scheduler address.
    cluster : str or distributed.Client, optional
        A scheduler address (``"tcp://host:8786"``) or a client.
    writable : paths
        Folders every worker writes into (the store's ``tmp/``, the export
        destination): with a cluster a probe file written here must read back the
        same on every worker.
    readable : paths
        Files or folders every worker reads (the inputs): each must exist on every
        worker. A worker failing either check raises ``ConfigError`` before any
        task runs.

    Yields
    ------
    Backend
        Pending tasks are cancelled, and a client opened here is closed, on exit.

    Examples
    --------
    >>> import os
    >>> os.environ.pop("GANTRY_EXECUTOR", None) and None
    >>> with open_backend() as backend:
    ...     print(backend.executor, backend.is_cluster)
    None False
    """
    if executor is not None and cluster is not None:
        raise ConfigError("cluster", expected="not given together with `executor`", got=cluster)
    target = executor if executor is not None else cluster
    if target is None:
        env = os.environ.get(ENV_VAR, "").strip()
        if env.lower() in _LOCAL_WORDS:
            yield Backend(None)
            return
        _check_address(env, ENV_VAR)
        target = env
    if isinstance(target, Executor) and not isinstance(target, DaskExecutor):
        yield Backend(target, _slots(target))
        return
    if isinstance(target, DaskExecutor):
        ex, own = target, False
    elif isinstance(target, str):
        ex, own = DaskExecutor(connect(target), own_client=True), True
    elif _is_dask_client(target):
        ex, own = DaskExecutor(target), True
    else:
        raise ConfigError(
            "executor",
            expected="a concurrent.futures.Executor, a distributed.Client or a scheduler address",
            got=type(target).__name__,
        )
    try:
        check_shared(ex.client, writable=writable, readable=readable)
        yield Backend(ex, ex.workers, str(ex.client.scheduler.address))
    finally:
        if own:
            ex.shutdown(wait=False)
        else:
            ex.cancel_pending()  # a caller's executor stays open


def _probe(path: str, token: str | None) -> bool:
    """Runs on each worker: does ``path`` exist here (and hold ``token``)?"""
    try:
        if token is None:
            return os.path.exists(path)
        with open(path, encoding="utf-8") as fh:
            return fh.read() == token
    except OSError:
        return False


def check_shared(
    client: Any,
    *,
    writable: Iterable[str | os.PathLike[str]] = (),
    readable: Iterable[str | os.PathLike[str]] = (),
) -> None:
    """Raise ``ConfigError`` unless every worker of ``client`` sees the given paths.

    Each ``writable`` folder is probed with a file written here and read back on
    every worker (the same path on a worker's own disk would otherwise pass, and
    its staged shards would never reach the store); each ``readable`` path by
    existence. Nothing is written into ``readable`` paths.
    """
    checks: list[tuple[Path, str | None]] = [(Path(p), None) for p in readable]
    checks += [(Path(p), uuid.uuid4().hex) for p in writable]
    for path, token in checks:
        probe = path
        if token is not None:
            probe = path / f".gantry-probe-{token}"
            try:
                probe.write_text(token, encoding="utf-8")
            except OSError:
                continue  # not writable from here either: the run itself reports it
        try:
            seen = client.run(_probe, str(probe), token)
        finally:
            if token is not None:
                probe.unlink(missing_ok=True)
        blind = sorted(w for w, ok in seen.items() if not ok)
        if blind:
            raise ConfigError(
                "cluster",
                expected=f"every worker to see {str(path)!r} at the same path (shared storage)",
                got=f"{len(blind)} worker(s) without it: {', '.join(blind[:3])}",
                hint="see docs/cluster.md",
            )
