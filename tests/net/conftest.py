"""Real peers for the network tests: Orthanc (archive) and DCMTK (client, receiver).

Each test module gets fresh servers on 127.0.0.1 with free ports; they are stopped
after. Without the Debian packages the tests skip, naming the install command.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("pynetdicom", reason="pynetdicom missing: pip install 'gantry[net]'")

from gantry.testing._servers import (  # noqa: E402
    ORTHANC_BIN,
    Orthanc,
    StoreSCP,
    free_port,
    missing,
    orthanc,
    storescp,
)


def need(*tools: str) -> None:
    reason = missing(*tools)
    if reason:
        pytest.skip(reason)


@pytest.fixture
def move_port() -> int:
    """The port our C-MOVE storage server uses (Orthanc has it on file for GANTRY)."""
    return free_port()


@pytest.fixture
def pacs(tmp_path: Path, move_port: int) -> Iterator[Orthanc]:
    need(ORTHANC_BIN)
    with orthanc(tmp_path / "orthanc", modalities={"GANTRY": ("127.0.0.1", move_port)}) as o:
        yield o


@pytest.fixture
def receiver(tmp_path: Path) -> Iterator[StoreSCP]:
    need("storescp")
    with storescp(tmp_path / "storescp") as scp:
        yield scp
