"""Network verbs: ``pacs echo|find|move|get`` and ``listen``."""

from __future__ import annotations

import signal
import threading
from pathlib import Path
from typing import Any

import click

from gantry.cli._app import cli, db_option, print_frame, run_guarded
from gantry.errors import ConfigError


def _query(pairs: tuple[str, ...]) -> dict[str, str]:
    out: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ConfigError("--query", expected="KEYWORD=VALUE", got=pair)
        out[key] = value
    return out


def _tls(cert: Path | None, key: Path | None, ca: Path | None, *, server: bool) -> Any:
    if cert is None and ca is None:
        return None
    from gantry.net import tls_context

    return tls_context(cert=cert, key=key, ca=ca, server=server)


def _tls_options(f: Any) -> Any:
    for opt in (
        click.option("--tls-ca", type=click.Path(exists=True, path_type=Path), default=None,
                     help="CA bundle to verify the peer (turns TLS on)."),
        click.option("--tls-key", type=click.Path(exists=True, path_type=Path), default=None,
                     help="Our private key (PEM)."),
        click.option("--tls-cert", type=click.Path(exists=True, path_type=Path), default=None,
                     help="Our certificate (PEM; turns TLS on)."),
    ):  # fmt: skip
        f = opt(f)
    return f


_ae_option = click.option(
    "--ae-title", default="GANTRY", show_default=True, help="Our (calling) AE title."
)
_query_option = click.option(
    "--query", "-q", "query", multiple=True, metavar="KEYWORD=VALUE",
    help="Matching key, repeatable: -q PatientID=123 -q StudyDate=20240101-",
)  # fmt: skip
_level_option = click.option(
    "--level",
    type=click.Choice(["PATIENT", "STUDY", "SERIES", "IMAGE"], case_sensitive=False),
    default="STUDY",
    show_default=True,
    help="Query/retrieve level.",
)


@cli.group()
def pacs() -> None:
    """Talk to a DICOM peer given as dicom://CALLED_AET@host:port."""


@pacs.command()
@click.argument("url")
@_ae_option
@_tls_options
def echo(url: str, ae_title: str, tls_cert: Path | None, tls_key: Path | None,
         tls_ca: Path | None) -> None:  # fmt: skip
    """C-ECHO the peer at URL."""
    from gantry.net import Peer
    from gantry.net import echo as c_echo

    def body() -> None:
        peer = Peer.parse(url, calling=ae_title)
        secs = c_echo(peer, tls=_tls(tls_cert, tls_key, tls_ca, server=False))
        click.echo(f"echo {peer}: ok in {secs * 1000:.0f} ms")

    run_guarded(body)


@pacs.command()
@click.argument("url")
@_query_option
@_level_option
@_ae_option
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["table", "csv", "json", "text"]),
    default="table",
    show_default=True,
    help="How the matches are printed.",
)
@_tls_options
def find(url: str, query: tuple[str, ...], level: str, ae_title: str, fmt: str,
         tls_cert: Path | None, tls_key: Path | None, tls_ca: Path | None) -> None:  # fmt: skip
    """C-FIND at --level; prints one row per match."""
    from gantry.net import Peer
    from gantry.net import find as c_find

    def body() -> None:
        peer = Peer.parse(url, calling=ae_title)
        tls = _tls(tls_cert, tls_key, tls_ca, server=False)
        print_frame(c_find(peer, _query(query), level=level, tls=tls), fmt)

    run_guarded(body)


def _retrieve(method: str) -> Any:
    @click.argument("url")
    @db_option
    @_query_option
    @_level_option
    @_ae_option
    @click.option(
        "--dest",
        type=click.Path(file_okay=False, path_type=Path),
        default=None,
        help="Folder for the received files (default: <db stem>.received).",
    )
    @click.option("--timeout", type=float, default=None, help="Seconds per step (default 30).")
    @_tls_options
    def verb(url: str, db: Path, query: tuple[str, ...], level: str, ae_title: str,
             dest: Path | None, timeout: float | None, tls_cert: Path | None,
             tls_key: Path | None, tls_ca: Path | None, port: int | None = None) -> None:  # fmt: skip
        from gantry.session import Session

        def body() -> int:
            with Session(db) as s:
                r = s.pull(
                    url, query=_query(query), level=level, method=method, ae_title=ae_title,
                    port=port, dest=dest, timeout=timeout,
                    tls=_tls(tls_cert, tls_key, tls_ca, server=False),
                )  # fmt: skip
                indexed = r.ingest.indexed if r.ingest else 0
                click.echo(
                    f"{r.matched} matches; received {r.retrieved} files into {r.dest} "
                    f"({r.duplicates} already there); indexed {indexed}; failed {r.failed}"
                )
                for line in r.errors:
                    click.echo(f"error: {line}", err=True)
                return 0 if r.ok else 1

        run_guarded(body)

    return verb


pacs.command("move", help="C-MOVE what matches to us (on --port), then ingest it into --db.")(
    click.option("--port", type=int, required=True, help="Port the peer knows for our AE title.")(
        _retrieve("move")
    )
)
pacs.command("get", help="C-GET what matches (same association), then ingest it into --db.")(
    _retrieve("get")
)


@cli.command()
@db_option
@click.option("--port", type=int, required=True, help="TCP port to listen on.")
@click.option("--ae-title", default="GANTRY", show_default=True, help="Our (called) AE title.")
@click.option("--dest", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="Folder the received files are kept in.")  # fmt: skip
@click.option("--host", default="0.0.0.0", show_default=True, help="Address to listen on.")
@click.option("--allow", multiple=True, metavar="AE",
              help="Accept only these calling AE titles (repeatable).")  # fmt: skip
@click.option(
    "--batch-size",
    type=int,
    default=500,
    show_default=True,
    help="Ingest after this many received files.",
)
@click.option(
    "--batch-seconds",
    type=float,
    default=5.0,
    show_default=True,
    help="...or after this many seconds with files waiting.",
)
@_tls_options
def listen(db: Path, port: int, ae_title: str, dest: Path, host: str, allow: tuple[str, ...],
           batch_size: int, batch_seconds: float, tls_cert: Path | None, tls_key: Path | None,
           tls_ca: Path | None) -> None:  # fmt: skip
    """Receive DICOM (C-STORE) into DEST and ingest it in batches; stop with Ctrl-C or TERM."""
    from gantry.session import Session

    def body() -> None:
        stop = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        with Session(db) as s:
            r = s.listen(
                dest, port=port, ae_title=ae_title, host=host, allow=allow or None,
                batch_size=batch_size, batch_seconds=batch_seconds, stop=stop,
                tls=_tls(tls_cert, tls_key, tls_ca, server=True),
                ready=lambda p: click.echo(f"listening as {ae_title} on port {p}", err=True),
            )  # fmt: skip
        click.echo(
            f"received {r.received} files ({r.duplicates} duplicates) in {r.batches} batches; "
            f"indexed {r.indexed} (+{r.resumed} from an earlier run)"
        )

    run_guarded(body)
