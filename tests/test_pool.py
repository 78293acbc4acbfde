"""The local worker pool: workers start with the task modules already imported."""

from __future__ import annotations

import multiprocessing
import subprocess
import sys

import pytest

from gantry._pool import WORKER_MODULES

# Run in a fresh interpreter: the fork server is per process, and this one's may
# have been started already by another test.
PROBE = """
import sys
from gantry._pool import process_pool, start_pool_server
{start}
with process_pool(1) as pool:
    seen = pool.submit(eval, "sorted(set({mods!r}) & set(__import__('sys').modules))").result()
print(seen)
print(sorted(set({mods!r}) & set(sys.modules)))
"""


def _probe(start: bool) -> tuple[str, str]:
    code = PROBE.format(start="start_pool_server()" if start else "", mods=list(WORKER_MODULES))
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.splitlines()
    return out[-2], out[-1]


@pytest.mark.skipif(
    "forkserver" not in multiprocessing.get_all_start_methods(),
    reason="workers are spawned here (no forkserver): each imports what its task needs",
)
@pytest.mark.parametrize("start", [True, False])
def test_workers_are_forked_with_the_task_modules_loaded(start: bool) -> None:
    in_worker, in_caller = _probe(start)
    assert in_worker == str(sorted(WORKER_MODULES))  # before any task imported them
    assert in_caller == "[]"  # the caller itself imported none of them
