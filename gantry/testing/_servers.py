"""Real DICOM peers for tests and benchmarks: Orthanc and DCMTK's ``storescp``.

Each starts on 127.0.0.1 with free ports and a generated config, waits until it
answers, and stops on exit. They come from Debian (``apt-get install -y orthanc
orthanc-dicomweb dcmtk``); :func:`missing` names what is absent and how to get it.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

ORTHANC_BIN = "Orthanc"
DICOMWEB_PLUGIN = "/usr/share/orthanc/plugins/libOrthancDicomWeb.so"
APT = "apt-get install -y orthanc orthanc-dicomweb dcmtk"


DCMTK_TOOLS = frozenset({"storescu", "storescp", "findscu", "movescu", "getscu", "echoscu"})


@functools.cache
def tool(name: str) -> str | None:
    """The full path of ``name`` on PATH, or None.

    For DCMTK's tools, the first one on PATH that *is* DCMTK: pynetdicom installs
    console scripts of the same names (``storescu``, ``storescp``…) into the
    environment's ``bin``, which comes first on PATH in a venv.
    """
    if name not in DCMTK_TOOLS:
        return shutil.which(name)
    for folder in os.environ.get("PATH", "").split(os.pathsep):
        found = shutil.which(name, path=folder) if folder else None
        if found is None:
            continue
        try:
            out = subprocess.run([found, "--version"], capture_output=True, timeout=20)
        except (OSError, subprocess.TimeoutExpired):
            continue
        if b"dcmtk" in (out.stdout + out.stderr).lower():
            return found
    return None


def missing(*tools: str) -> str | None:
    """A skip reason naming the absent tools and the install command, or None."""
    absent = [t for t in tools if tool(t) is None and not Path(t).exists()]
    if not absent:
        return None
    return f"{', '.join(absent)} not installed (Debian: {APT})"


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_port(port: int, proc: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with code {proc.returncode} before listening")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listened on port {port} within {timeout} s")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        try:
            os.kill(proc.pid, signal.SIGCONT)  # a test may have frozen it
        except ProcessLookupError:
            return
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@dataclass
class Orthanc:
    """A running Orthanc: DICOM on ``dicom_port`` as ``aet``, REST/DICOMweb on ``http_port``."""

    root: Path
    dicom_port: int
    http_port: int
    aet: str
    proc: subprocess.Popen[bytes]

    @property
    def url(self) -> str:
        return f"dicom://{self.aet}@127.0.0.1:{self.dicom_port}"

    @property
    def dicomweb(self) -> str:
        return f"http://127.0.0.1:{self.http_port}/dicom-web"

    def rest(self, path: str, data: bytes | None = None) -> object:
        """Call Orthanc's REST API (GET, or POST when ``data`` is given); JSON answer."""
        req = urllib.request.Request(f"http://127.0.0.1:{self.http_port}{path}", data=data)
        with urllib.request.urlopen(req, timeout=30) as rsp:
            return json.loads(rsp.read() or b"null")

    def instances(self) -> list[str]:
        """Orthanc's ids of every stored instance."""
        return list(self.rest("/instances"))  # type: ignore[call-overload]

    def sop_uids(self) -> list[str]:
        """The SOPInstanceUID of every stored instance."""
        return [
            str(self.rest(f"/instances/{i}/simplified-tags")["SOPInstanceUID"])  # type: ignore[index]
            for i in self.instances()
        ]

    def upload(self, path: str | Path) -> None:
        """Store one file through the REST API."""
        self.rest("/instances", Path(path).read_bytes())


@contextmanager
def orthanc(
    root: str | Path,
    *,
    aet: str = "ORTHANC",
    modalities: dict[str, tuple[str, int]] | None = None,
    dicomweb: bool = True,
) -> Iterator[Orthanc]:
    """Run Orthanc with its storage in ``root``; ``modalities`` maps AE titles it may
    C-MOVE to (``{"GANTRY": ("127.0.0.1", port)}``)."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    dicom_port, http_port = free_port(), free_port()
    config = {
        "Name": "gantry-test",
        "StorageDirectory": str(root / "storage"),
        "IndexDirectory": str(root / "index"),
        "DicomAet": aet,
        "DicomPort": dicom_port,
        "HttpPort": http_port,
        "RemoteAccessAllowed": False,
        "AuthenticationEnabled": False,
        "DicomCheckCalledAet": True,
        "DicomAlwaysAllowEcho": True,
        "DicomAlwaysAllowStore": True,
        "UnknownSopClassAccepted": True,
        "DicomModalities": {
            name: [name, host, port] for name, (host, port) in (modalities or {}).items()
        },
        "StorageCompression": False,
        "HttpCompressionEnabled": False,
        "ConcurrentJobs": 1,
        "Plugins": [DICOMWEB_PLUGIN] if dicomweb and Path(DICOMWEB_PLUGIN).exists() else [],
        "DicomWeb": {"Enable": True, "Root": "/dicom-web/", "StudiesMetadata": "Full"},
    }
    cfg = root / "orthanc.json"
    cfg.write_text(json.dumps(config, indent=1))
    log = open(root / "orthanc.log", "wb")  # noqa: SIM115 - closed below
    proc = subprocess.Popen([ORTHANC_BIN, str(cfg)], stdout=log, stderr=subprocess.STDOUT)
    try:
        _wait_port(http_port, proc)
        _wait_port(dicom_port, proc)
        yield Orthanc(root, dicom_port, http_port, aet, proc)
    finally:
        _stop(proc)
        log.close()


@dataclass
class StoreSCP:
    """A running DCMTK ``storescp`` writing into ``folder``."""

    folder: Path
    port: int
    aet: str
    proc: subprocess.Popen[bytes]

    @property
    def url(self) -> str:
        return f"dicom://{self.aet}@127.0.0.1:{self.port}"

    def files(self) -> list[Path]:
        return sorted(p for p in self.folder.rglob("*") if p.is_file())

    def freeze(self) -> None:
        """Stop the process answering (SIGSTOP): a peer that hangs."""
        os.kill(self.proc.pid, signal.SIGSTOP)

    def thaw(self) -> None:
        os.kill(self.proc.pid, signal.SIGCONT)

    def kill(self) -> None:
        """Kill it outright (SIGKILL): a peer that dies mid-transfer."""
        self.thaw()
        self.proc.kill()
        self.proc.wait()


@contextmanager
def storescp(
    folder: str | Path,
    *,
    aet: str = "STORESCP",
    port: int | None = None,
    accept_all: bool = False,
    extra: list[str] | None = None,
) -> Iterator[StoreSCP]:
    """Run ``storescp`` (uncompressed syntaxes only unless ``accept_all``)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    args = [tool("storescp") or "storescp", "--aetitle", aet, "--output-directory", str(folder)]
    if accept_all:
        args.append("+xa")
    args += list(extra or [])
    args.append(str(port))
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait_port(port, proc)
        yield StoreSCP(folder, port, aet, proc)
    finally:
        _stop(proc)


def storescu(url_port: int, aet: str, files: list[Path] | Path, *, calling: str = "STORESCU",
             timeout: float = 600) -> subprocess.CompletedProcess[bytes]:  # fmt: skip
    """Send ``files`` (or a folder, recursively) with DCMTK ``storescu``."""
    args = [
        tool("storescu") or "storescu",
        "-aet",
        calling,
        "-aec",
        aet,
        "--scan-directories",
        "--recurse",
    ]
    args += ["-nh", "-R"]  # go on after a failed file; propose each file's own syntax
    targets = [str(files)] if isinstance(files, Path) else [str(f) for f in files]
    return subprocess.run(
        [*args, "127.0.0.1", str(url_port), *targets],
        capture_output=True,
        timeout=timeout,
        check=False,
    )
