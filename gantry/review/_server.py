"""Serve the review app with uvicorn on 127.0.0.1, behind a fresh random token."""

from __future__ import annotations

import getpass
import os
import secrets
import socket
import threading
import webbrowser
from collections.abc import Callable

from gantry._deps import require
from gantry.errors import ConfigError

__all__ = ["serve"]

HOST = "127.0.0.1"


def _reviewer() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no login name (a container's unnamed uid)
        return "reviewer"


def serve(
    db: str | os.PathLike[str],
    *,
    port: int = 0,
    open_browser: bool = True,
    reviewer: str | None = None,
    announce: Callable[[str], None] = print,
) -> None:
    """Run the review app on ``127.0.0.1:port`` (0: a free port) until interrupted.

    The address, with its token, is passed to ``announce`` once the port is
    bound (and opened in a browser unless ``open_browser`` is False). The session
    is opened for writing (decisions change it) and closed on exit. Access logs
    are off: the server logs nothing a request carried.
    """
    uvicorn = require("uvicorn", extra="review")
    from gantry.review._app import create_app
    from gantry.session import Session

    with Session(db) as session:
        session.sql("SELECT 1")  # a missing session fails here, before the port is bound
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((HOST, port))
        except OSError:
            sock.close()
            raise ConfigError("port", expected=f"a free port on {HOST}", got=port) from None
        sock.listen(128)  # connections wait in the backlog from the moment the address shows
        bound = sock.getsockname()[1]
        token = secrets.token_urlsafe(24)
        app = create_app(session, token=token, reviewer=reviewer or _reviewer(), port=bound)
        url = f"http://{HOST}:{bound}/?token={token}"
        config = uvicorn.Config(
            app, access_log=False, log_level="warning", lifespan="off", server_header=False
        )
        server = uvicorn.Server(config)
        announce(url)
        if open_browser:
            threading.Timer(0.5, webbrowser.open, args=(url,)).start()
        try:
            server.run(sockets=[sock])
        except KeyboardInterrupt:  # Ctrl-C: uvicorn has shut down; close the session
            pass
