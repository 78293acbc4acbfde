"""A real S3 API server for tests and benchmarks: moto's, plus a proxy that injects faults.

:func:`moto_server` starts ``moto``'s HTTP server (PyPI ``moto[server]``) on
127.0.0.1 with a free port, in a process of its own.  :class:`FaultProxy` sits
between a client and that server: it forwards every request, and can answer
some with HTTP 503 *SlowDown* (throttling) or stop answering altogether (the
endpoint killed) and come back on the same port.
"""

from __future__ import annotations

import http.client
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from gantry.testing._servers import free_port

__all__ = ["FaultProxy", "MotoServer", "S3Bucket", "moto_missing", "moto_server", "s3_env"]


def moto_missing() -> str | None:
    """Why moto's server cannot run here (with the install command), or None."""
    try:
        import flask  # noqa: F401  (moto's server needs it)
        import moto  # noqa: F401
        import s3fs  # noqa: F401
    except ImportError as exc:
        return f"{exc.name} missing: pip install 'gantry[s3]' 'moto[server]'"
    return None


@dataclass
class MotoServer:
    """A running moto server."""

    port: int
    process: subprocess.Popen[bytes]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def _wait_http(port: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", "/moto-api/")
            conn.getresponse().read()
            conn.close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


@contextmanager
def moto_server(env: dict[str, str] | None = None) -> Iterator[MotoServer]:
    """Start ``python -m moto.server`` on a free loopback port; stop it after."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, **(env or {})},
    )
    server = MotoServer(port, proc)
    try:
        _wait_http(port)
        yield server
    finally:
        server.stop()


def s3_env(endpoint: str, key: str = "testing", secret: str = "testing") -> dict[str, str]:
    """The environment the AWS SDK reads: endpoint, region and credentials."""
    return {
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_ACCESS_KEY_ID": key,
        "AWS_SECRET_ACCESS_KEY": secret,
        "AWS_DEFAULT_REGION": "us-east-1",
    }


@dataclass
class S3Bucket:
    """A bucket on a test server, read and written with boto3 directly (not through gantry)."""

    server: MotoServer
    bucket: str
    env: dict[str, str]
    _client: Any = None

    def client(self, endpoint: str | None = None) -> Any:
        import boto3

        if endpoint is None and self._client is not None:
            return self._client
        made = boto3.client(
            "s3",
            endpoint_url=endpoint or self.server.url,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
            region_name="us-east-1",
        )
        if endpoint is None:
            self._client = made
        return made

    def keys(self, prefix: str = "") -> list[str]:
        pages = (
            self.client()
            .get_paginator("list_objects_v2")
            .paginate(Bucket=self.bucket, Prefix=prefix)
        )
        return sorted(o["Key"] for page in pages for o in page.get("Contents", []))

    def get(self, key: str) -> bytes:
        return bytes(self.client().get_object(Bucket=self.bucket, Key=key)["Body"].read())

    def upload(self, root: Path, prefix: str) -> list[str]:
        client = self.client()
        keys = []
        for path in sorted(p for p in root.rglob("*") if p.is_file()):
            key = f"{prefix}/{path.relative_to(root).as_posix()}"
            client.put_object(Bucket=self.bucket, Key=key, Body=path.read_bytes())
            keys.append(key)
        return keys


_HOP = {"connection", "keep-alive", "transfer-encoding", "proxy-connection", "upgrade"}


@dataclass
class FaultProxy:
    """An HTTP proxy on a free loopback port in front of `upstream_port`.

    ``throttle_every = n`` answers every n-th request with 503 SlowDown (the
    client's retries must carry on); :meth:`kill` closes the port and every
    connection (the endpoint died), :meth:`start` opens it again.
    ``requests`` counts forwarded requests, ``throttled`` the 503s sent.
    """

    upstream_port: int
    port: int = field(default_factory=free_port)
    throttle_every: int = 0
    requests: int = 0
    throttled: int = 0
    _server: Any = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def _body(self) -> bytes:
                if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                    out = b""
                    while True:
                        size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                        if size == 0:
                            while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                                pass
                            return out
                        out += self.rfile.read(size)
                        self.rfile.readline()
                length = int(self.headers.get("Content-Length") or 0)
                return self.rfile.read(length) if length else b""

            def _forward(self) -> None:
                if proxy._server is None:  # killed: drop kept-alive connections unanswered
                    self.close_connection = True
                    return
                body = self._body()
                with proxy._lock:
                    proxy.requests += 1
                    throttle = proxy.throttle_every and proxy.requests % proxy.throttle_every == 0
                    if throttle:
                        proxy.throttled += 1
                if throttle:
                    msg = (
                        b'<?xml version="1.0" encoding="UTF-8"?><Error><Code>SlowDown</Code>'
                        b"<Message>Please reduce your request rate.</Message></Error>"
                    )
                    self.send_response(503)
                    self.send_header("Content-Type", "application/xml")
                    self.send_header("Content-Length", str(len(msg)))
                    self.end_headers()
                    self.wfile.write(msg)
                    return
                headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP}
                if body or self.command in ("PUT", "POST"):
                    headers["Content-Length"] = str(len(body))
                conn = http.client.HTTPConnection("127.0.0.1", proxy.upstream_port, timeout=60)
                try:
                    conn.request(self.command, self.path, body=body, headers=headers)
                    resp = conn.getresponse()
                    data = resp.read()
                finally:
                    conn.close()
                self.send_response(resp.status, resp.reason)
                for k, v in resp.getheaders():
                    if k.lower() not in _HOP and k.lower() != "content-length":
                        self.send_header(k, v)
                # a HEAD answer has no body: its length is the object's, as upstream said
                length = resp.getheader("Content-Length") if self.command == "HEAD" else None
                self.send_header("Content-Length", length or str(len(data)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _forward

        return Handler

    def start(self) -> FaultProxy:
        server = ThreadingHTTPServer(("127.0.0.1", self.port), self._handler())
        server.daemon_threads = True
        self._server = server
        threading.Thread(target=server.serve_forever, daemon=True).start()
        return self

    def kill(self) -> None:
        """Stop answering: close the listening port (new connections are refused)."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.kill()
