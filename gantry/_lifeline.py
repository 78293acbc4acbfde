"""Worker processes that die with the process that started them.

A ``ProcessPoolExecutor`` worker blocks on its task queue forever if the main
process is killed with SIGKILL (nothing runs to shut the pool down), and
with ``forkserver`` the fork server and the resource tracker wait for those
workers: four processes outlive every ``kill -9``.

:class:`LifelinePool` gives each worker the read end of a pipe whose only
write end the main process holds.  A daemon thread in the worker waits on it;
when the main process dies, however it dies, the kernel closes the write end,
the read returns end-of-file and the worker exits at once.  The fork server
and the resource tracker then exit on their own, as they do after a normal
shutdown.

Examples
--------
>>> import operator
>>> with LifelinePool(max_workers=1) as pool:
...     pool.submit(operator.mul, 6, 7).result()
42
"""

from __future__ import annotations

import multiprocessing
import os
import threading
from concurrent.futures import ProcessPoolExecutor
from multiprocessing.connection import Connection
from multiprocessing.context import BaseContext
from typing import Any

__all__ = ["LifelinePool"]


def _watch(lifeline: Connection) -> None:
    """Worker initializer: exit as soon as the main process's end of `lifeline` closes."""

    def wait() -> None:
        try:
            lifeline.poll(None)  # returns on end-of-file; nothing is ever sent
        except (OSError, EOFError):
            pass
        os._exit(70)  # EX_SOFTWARE: the process that owned this worker is gone

    threading.Thread(target=wait, name="gantry-lifeline", daemon=True).start()


class LifelinePool(ProcessPoolExecutor):
    """A process pool whose workers exit when this process dies (even by SIGKILL).

    Parameters
    ----------
    max_workers : int
        Worker processes.
    mp_context : multiprocessing context, optional
        Default: ``forkserver`` where available, else ``spawn``.
    """

    def __init__(self, max_workers: int, mp_context: BaseContext | None = None) -> None:
        if mp_context is None:
            methods = multiprocessing.get_all_start_methods()
            mp_context = multiprocessing.get_context(
                "forkserver" if "forkserver" in methods else "spawn"
            )
        self._lifeline_r, self._lifeline_w = mp_context.Pipe(duplex=False)
        super().__init__(
            max_workers=max_workers,
            mp_context=mp_context,
            initializer=_watch,
            initargs=(self._lifeline_r,),
        )

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        super().shutdown(wait=wait, cancel_futures=cancel_futures)
        if wait:
            for end in (self._lifeline_r, self._lifeline_w):
                end.close()

    def __getstate__(self) -> Any:  # pragma: no cover - pools are never pickled
        raise TypeError("a LifelinePool cannot be pickled")
