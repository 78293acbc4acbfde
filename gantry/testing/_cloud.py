"""GCS and Azure Blob emulators for tests: gcp-storage-emulator (PyPI) and Azurite (npm).

Each starts on 127.0.0.1 with a free port in a process of its own and yields
the environment and ``storage_options`` a client needs; :func:`gcs_missing`
and :func:`azurite_missing` say why one cannot run here, with the install command.
"""

from __future__ import annotations

import importlib.util
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from gantry.testing._servers import free_port

__all__ = ["CloudBucket", "Emulator", "azurite", "azurite_missing", "gcs_emulator", "gcs_missing"]

#: Azurite's well-known development account (public, documented by Microsoft)
AZURITE_ACCOUNT = "devstoreaccount1"
AZURITE_KEY = (
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)


@dataclass
class Emulator:
    """A running emulator: the URL scheme, its environment and fsspec options."""

    scheme: str
    env: dict[str, str]
    options: dict[str, Any] = field(default_factory=dict)

    def make_bucket(self, name: str) -> None:
        """Create a bucket (container) through fsspec."""
        import fsspec

        fs = fsspec.filesystem(self.scheme, skip_instance_cache=True, **self.options)
        fs.mkdir(name)


def gcs_missing() -> str | None:
    """Why the GCS emulator cannot run here, or None."""
    if shutil.which("gcp-storage-emulator") is None:
        return "gcp-storage-emulator missing: pip install gcp-storage-emulator 'gantry[gcs]'"
    # not imported here: gcsfs reads its settings from the environment when imported
    if importlib.util.find_spec("gcsfs") is None:
        return "gcsfs missing: pip install 'gantry[gcs]'"
    return None


def azurite_missing() -> str | None:
    """Why Azurite cannot run here, or None."""
    if shutil.which("azurite-blob") is None:
        return "azurite missing: apt-get install nodejs npm && npm install -g azurite"
    if importlib.util.find_spec("adlfs") is None:
        return "adlfs missing: pip install 'gantry[azure]'"
    return None


def _wait(port: int, proc: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), 1).close()
            return
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the emulator on port {port} did not start") from None
            time.sleep(0.1)


@contextmanager
def _running(cmd: list[str], port: int) -> Iterator[None]:
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait(port, proc)
        yield
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@contextmanager
def gcs_emulator() -> Iterator[Emulator]:
    """gcp-storage-emulator in memory; clients find it by ``STORAGE_EMULATOR_HOST``."""
    port = free_port()
    cmd = ["gcp-storage-emulator", "start", "-H", "127.0.0.1", "--port", str(port), "-M", "-q"]
    with _running(cmd, port):
        yield Emulator(
            "gs",
            {
                "STORAGE_EMULATOR_HOST": f"http://127.0.0.1:{port}",
                # gcsfs's zonal-bucket probe speaks gRPC, which the emulator does not
                "GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT": "false",
            },
            {"token": "anon", "project": "gantry-test"},
        )


@contextmanager
def azurite() -> Iterator[Emulator]:
    """Azurite's blob service in memory; clients find it by ``AZURE_STORAGE_CONNECTION_STRING``."""
    port = free_port()
    cmd = [
        "azurite-blob",
        "--blobHost", "127.0.0.1", "--blobPort", str(port),
        "--inMemoryPersistence", "--skipApiVersionCheck", "--loose", "--silent",
        "--disableTelemetry",
    ]  # fmt: skip
    conn = (
        f"DefaultEndpointsProtocol=http;AccountName={AZURITE_ACCOUNT};AccountKey={AZURITE_KEY};"
        f"BlobEndpoint=http://127.0.0.1:{port}/{AZURITE_ACCOUNT};"
    )
    with _running(cmd, port):
        yield Emulator("az", {"AZURE_STORAGE_CONNECTION_STRING": conn})


@dataclass
class CloudBucket:
    """A fresh bucket on one emulator: its URL root and the fsspec options to reach it."""

    server: Emulator
    bucket: str

    @property
    def root(self) -> str:
        return f"{self.server.scheme}://{self.bucket}"

    def fs(self) -> Any:
        import fsspec

        return fsspec.filesystem(
            self.server.scheme, skip_instance_cache=True, **self.server.options
        )
