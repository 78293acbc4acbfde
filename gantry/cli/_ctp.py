"""Verbs for RSNA CTP scripts: ``gantry ctp convert``."""

from __future__ import annotations

from pathlib import Path

import click

from gantry.cli._app import cli, run_guarded


@cli.group()
def ctp() -> None:
    """Work with RSNA CTP anonymizer scripts."""


@ctp.command()
@click.argument("source", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.argument("dest", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--kind",
    type=click.Choice(["auto", "pixel", "header"]),
    default="auto",
    show_default=True,
    help="Pixel (DicomPixelAnonymizer) or header (DicomAnonymizer XML) script; "
    "auto reads XML as header.",
)
@click.option(
    "--report",
    "report_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Conversion report: YAML for .yaml/.yml, else Markdown "
    "[default: DEST's name + .report.md, beside it].",
)
def convert(source: Path, dest: Path, kind: str, report_path: Path | None) -> None:
    """Convert the CTP script SOURCE into the Gantry config DEST (YAML).

    Every rule without an exact Gantry equivalent is listed in the report,
    as approximate (converted, differs) or not converted (with the reason).
    """
    from gantry.ctp import convert_file, default_report_path

    target = report_path or default_report_path(dest)

    def body() -> None:
        report = convert_file(source, dest, kind=kind, report_path=target)  # type: ignore[arg-type]
        click.echo(report.summary())
        click.echo(f"wrote {dest}")
        click.echo(f"wrote {target}")

    run_guarded(body)
