"""``gantry plugins``: the installed plugins and whether each loads."""

from __future__ import annotations

import click

from gantry.cli._app import cli, print_frame


@cli.command()
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["table", "csv", "json"]),
    default="table",
    show_default=True,
    help="How to print the list: a table for people, csv or json for scripts.",
)
def plugins(fmt: str) -> None:
    """List the installed plugins (entry points), loading each to check it.

    Exits with 1 when a plugin fails to load; its ``status`` says why.
    """
    from gantry.plugins import plugins_table

    table = plugins_table()
    if table.is_empty() and fmt == "table":
        click.echo("no plugins installed (entry-point groups: see docs/plugins.md)")
        return
    print_frame(table, fmt)
    failed = table.filter(table["status"] != "ok")
    for kind, name, status in failed.select("kind", "name", "status").iter_rows():
        click.echo(f"error: plugin `{name}` ({kind}): {status.removeprefix('error: ')}", err=True)
    if failed.height:
        raise SystemExit(1)
