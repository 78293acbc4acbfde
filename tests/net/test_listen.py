"""``listen``: receive from DCMTK storescu, ingest in batches, survive a kill, TLS."""

from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pydicom
import pytest

from gantry import Session
from gantry.net import Peer, SendItem, send_files, tls_context
from gantry.testing import make_ct_files
from gantry.testing._servers import free_port, missing, storescu, tool


@dataclass
class _Files:
    root: Path
    paths: list[Path]


def _corpus(root: Path, patients: int = 2, instances: int = 3) -> _Files:
    """Native CT files (DCMTK's storescu proposes uncompressed syntaxes by default)."""
    return _Files(root, make_ct_files(root, patients * 2 * instances, rows=32, columns=32))


@contextmanager
def _listening(s: Session, dest: Path, **kw) -> Iterator[tuple[int, threading.Event, dict]]:
    port = free_port()
    stop = threading.Event()
    out: dict = {}
    ready = threading.Event()

    def run() -> None:
        out["result"] = s.listen(
            dest, port=port, host="127.0.0.1", stop=stop, ready=lambda p: ready.set(),
            batch_seconds=0.5, **kw,
        )  # fmt: skip

    t = threading.Thread(target=run)
    t.start()
    assert ready.wait(30)
    try:
        yield port, stop, out
    finally:
        stop.set()
        t.join(60)


def _uids(paths) -> list[str]:
    return [str(pydicom.dcmread(p, stop_before_pixels=True).SOPInstanceUID) for p in paths]


def test_listen_receives_from_storescu_and_ingests(tmp_path: Path) -> None:
    if missing("storescu"):
        pytest.skip(missing("storescu"))
    corpus = _corpus(tmp_path / "dicom")
    with Session(tmp_path / "s.db") as s:
        with _listening(s, tmp_path / "inbox", batch_size=5) as (port, stop, out):
            done = storescu(port, "GANTRY", corpus.root)
            assert done.returncode == 0, done.stderr.decode()
            again = storescu(port, "GANTRY", corpus.root)  # the same files twice
            assert again.returncode == 0
        r = out["result"]
        n = len(corpus.paths)
        assert (r.received, r.duplicates, r.indexed) == (2 * n, n, n)
        assert r.batches >= 2
        got = s.sql("SELECT SOPInstanceUID FROM instances ORDER BY 1")["SOPInstanceUID"]
        assert got.to_list() == sorted(_uids(corpus.paths))
        t = s.sql(
            "SELECT peer, status, count(*) FROM transfers WHERE direction='receive' GROUP BY ALL"
        )
        assert t.rows() == [("STORESCU", "ok", 2 * n)]
        files = [p for p in (tmp_path / "inbox").rglob("*.dcm")]
        assert len(files) == n


def test_listen_rejects_unlisted_calling_ae_titles(tmp_path: Path) -> None:
    if missing("storescu"):
        pytest.skip(missing("storescu"))
    corpus = _corpus(tmp_path / "dicom", patients=1, instances=1)
    with Session(tmp_path / "s.db") as s:
        with _listening(s, tmp_path / "inbox", allow=["MODALITY1"]) as (port, _, out):
            refused = storescu(port, "GANTRY", corpus.root, calling="INTRUDER")
            assert refused.returncode != 0
            wrong_called = storescu(port, "NOTGANTRY", corpus.root, calling="MODALITY1")
            assert wrong_called.returncode != 0
            ok = storescu(port, "GANTRY", corpus.root, calling="MODALITY1")
            assert ok.returncode == 0
        assert out["result"].received == len(corpus.paths)


def _cli_listen(db: Path, dest: Path, port: int) -> subprocess.Popen[bytes]:
    code = "import sys; from gantry.cli import main; main(sys.argv[1:])"
    args = [sys.executable, "-c", code, "listen", "--db", str(db), "--port", str(port),
            "--dest", str(dest), "--host", "127.0.0.1", "--batch-seconds", "0.5"]  # fmt: skip
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    import socket

    while time.monotonic() < deadline:
        with socket.socket() as sk:
            if sk.connect_ex(("127.0.0.1", port)) == 0:
                return proc
        assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
        time.sleep(0.1)
    raise TimeoutError("gantry listen did not start")


@pytest.mark.slow
def test_listen_killed_mid_transfer_resumes_without_loss_or_duplicates(tmp_path: Path) -> None:
    if missing("storescu"):
        pytest.skip(missing("storescu"))
    corpus = _corpus(tmp_path / "dicom", patients=3, instances=10)
    n = len(corpus.paths)
    db, dest, port = tmp_path / "s.db", tmp_path / "inbox", free_port()
    proc = _cli_listen(db, dest, port)
    sender = subprocess.Popen(
        [str(tool("storescu")), "-aec", "GANTRY", "--scan-directories", "--recurse", "-nh", "-R",
         "127.0.0.1", str(port), str(corpus.root)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while len(list(dest.rglob("*.dcm"))) < 10 and time.monotonic() < deadline:
        time.sleep(0.02)
    proc.kill()  # SIGKILL: no chance to flush anything
    proc.communicate()
    sender.wait(120)
    stored = len(list(dest.rglob("*.dcm")))
    assert 10 <= stored <= n
    # a new run ingests what the killed one had not, and the sender resends everything
    proc = _cli_listen(db, dest, port)
    resend = storescu(port, "GANTRY", corpus.root)
    assert resend.returncode == 0, resend.stderr.decode()
    proc.send_signal(signal.SIGTERM)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 0, stderr.decode()
    assert b"received" in stdout
    with Session(db, read_only=True) as s:
        uids = s.sql("SELECT SOPInstanceUID FROM instances")["SOPInstanceUID"].to_list()
        assert sorted(uids) == sorted(_uids(corpus.paths))  # every file, once
        assert s.sql("SELECT count(*) FROM skipped").item() == 0
    assert len(list(dest.rglob("*.dcm"))) == n
    assert not list((dest / ".incoming").iterdir())


def _self_signed(tmp: Path) -> tuple[Path, Path]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.IPAddress(__import__("ipaddress").ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp / "cert.pem", tmp / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    os.chmod(key_path, 0o600)
    return cert_path, key_path


def test_listen_over_tls(tmp_path: Path) -> None:
    cert, key = _self_signed(tmp_path)
    corpus = _corpus(tmp_path / "dicom", patients=1, instances=2)
    items = [SendItem(i, str(p)) for i, p in enumerate(corpus.paths)]
    with Session(tmp_path / "s.db") as s:
        server = tls_context(cert=cert, key=key, server=True)
        with _listening(s, tmp_path / "inbox", tls=server) as (port, _, out):
            peer = Peer.parse(f"dicom://GANTRY@127.0.0.1:{port}?timeout=5")
            sent = send_files(peer, items, tls=tls_context(ca=cert))
            assert {o.status for o in sent} == {"ok"}
            if not missing("storescu"):  # a plain (no TLS) sender gets nothing through
                assert storescu(port, "GANTRY", corpus.paths[:1]).returncode != 0
        assert out["result"].indexed == len(corpus.paths)
