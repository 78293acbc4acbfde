"""``gantry review``: the local web app for human sign-off before release."""

from __future__ import annotations

from pathlib import Path

import click

from gantry.cli._app import cli, db_option, run_guarded


@cli.command()
@db_option
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=0,
    show_default=True,
    help="Port on 127.0.0.1 (0: a free one).",
)
@click.option("--no-browser", is_flag=True, help="Only print the address; open no browser.")
@click.option(
    "--reviewer",
    default=None,
    metavar="NAME",
    help="Name recorded with each decision (default: the login name).",
)
def review(db: Path, port: int, no_browser: bool, reviewer: str | None) -> None:
    """Serve the review web app on 127.0.0.1 until Ctrl-C (needs gantry[review]).

    Browse patients, studies, series and instances, the findings and the planned
    changes; approve or exclude instances and set devices' redaction zones. The
    address printed carries a random token; requests without it get 403.
    """
    from gantry.review import serve

    def announce(url: str) -> None:
        click.echo(f"review at {url}", nl=True)
        click.echo("(Ctrl-C stops the server)", err=True)

    def body() -> None:
        serve(db, port=port, open_browser=not no_browser, reviewer=reviewer, announce=announce)

    run_guarded(body)
