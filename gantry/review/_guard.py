"""The review server's guard: the token, the host, and no PHI in the logs.

A pure ASGI middleware in front of the whole app:

- every request must carry the session's random token as ``?token=``, compared
  in constant time; otherwise ``403`` (no page, no hint of the data);
- the ``Host`` header must name the loopback address the server is bound to
  (a DNS-rebinding page cannot reach the app under another name);
- a ``POST`` whose ``Origin`` is another site is refused (with the token in the
  form too, a page elsewhere cannot make a decision);
- responses forbid framing, referrers to other sites and every outside resource (CSP);
- an unexpected error is logged by its type only and answered ``500``: a
  traceback could quote a value read from a file.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any, Final
from urllib.parse import parse_qs

__all__ = ["SECURITY_HEADERS", "TokenGuard"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

#: Headers on every response.
SECURITY_HEADERS: Final[dict[str, str]] = {
    "content-security-policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
        "form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'"
    ),
    "referrer-policy": "same-origin",  # the token never leaves; POSTs keep their Origin
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "cache-control": "no-store",
}

_LOG = logging.getLogger("gantry.review")
_LOOPBACK: Final = ("127.0.0.1", "localhost")


def _host_ok(host: str, port: int | None) -> bool:
    name, _, given_port = host.rpartition(":") if ":" in host else (host, "", "")
    if name not in _LOOPBACK:
        return False
    return port is None or given_port in ("", str(port))


class TokenGuard:
    """Refuse (403) every request without the token; see the module docstring.

    ``port`` None accepts any port on a loopback host (the in-process test client).
    """

    def __init__(self, app: ASGIApp, *, token: str, port: int | None = None) -> None:
        if len(token) < 16:
            raise ValueError("`token` must be at least 16 characters")
        self.app = app
        self.token = token
        self.port = port

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
        given = (query.get("token") or [""])[0]
        allowed = (
            secrets.compare_digest(given.encode(), self.token.encode())
            and _host_ok(headers.get("host", ""), self.port)
            and not (
                scope["method"] == "POST"
                and "origin" in headers
                and not _host_ok(headers["origin"].split("://", 1)[-1], self.port)
            )
        )
        if not allowed:
            await _plain(send, 403, b"forbidden: open the address `gantry review` printed\n")
            return

        started = False

        async def send_secured(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                message["headers"] = [*message.get("headers", [])] + [
                    (k.encode(), v.encode()) for k, v in SECURITY_HEADERS.items()
                ]
            await send(message)

        try:
            await self.app(scope, receive, send_secured)
        except Exception as exc:  # never log a traceback: it may quote a file's value
            _LOG.error("review: %s while answering %s", type(exc).__name__, scope["method"])
            if not started:
                await _plain(send, 500, b"internal error: see the server's log\n")


async def _plain(send: Send, status: int, body: bytes) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"text/plain; charset=utf-8"),
                (b"content-length", str(len(body)).encode()),
                *((k.encode(), v.encode()) for k, v in SECURITY_HEADERS.items()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
