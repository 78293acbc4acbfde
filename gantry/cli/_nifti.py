"""The ``export-nifti`` verb: de-identified series as NIfTI, in a BIDS or flat layout."""

from __future__ import annotations

from pathlib import Path

import click

from gantry.cli._app import cli, db_option, print_frame, run_guarded


@cli.command("export-nifti")
@click.argument("dest", type=click.Path(file_okay=False, path_type=Path))
@db_option
@click.option(
    "--config",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="YAML config v2 (default: the last plan's, else built-in defaults).",
)
@click.option("--query", default=None, help="SQL WHERE over instances selecting what to convert.")
@click.option("--layout", type=click.Choice(["bids", "flat"]), default="bids", show_default=True)
@click.option(
    "--rules",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="BIDS datatype/suffix rules (YAML or JSON with `bids_rules:`).",
)
@click.option("--unsafe", is_flag=True, help="Also convert instances with unresolved findings.")
@click.option("--workers", "-j", type=int, default=None)
@click.option("--quiet", "-q", is_flag=True)
def export_nifti(
    dest: Path,
    db: Path,
    config: Path | None,
    query: str | None,
    layout: str,
    rules: Path | None,
    unsafe: bool,
    workers: int | None,
    quiet: bool,
) -> None:
    """Convert de-identified series to NIfTI in DEST; exit 1 if a series was not converted."""
    from gantry.session import Session

    def body() -> int:
        with Session(db) as s:
            r = s.export_nifti(
                dest,
                query=query,
                layout=layout,
                rules=rules,
                config=config,
                safe=not unsafe,
                workers=workers,
                progress=False if quiet else None,
            )
            click.echo(
                f"converted {r.converted} of {r.conversions.height} series to {r.dest} "
                f"({layout}) in {r.seconds:.2f} s; unmatched {r.unmatched.height}; "
                f"not converted {r.not_converted.height}"
            )
            if r.unmatched.height:
                click.echo("unmatched (no BIDS rule; add one with --rules, or use --layout flat):")
                print_frame(r.unmatched.select("series_uid", "Modality", "SeriesNumber", "reason"))
            if r.not_converted.height:
                click.echo("NOT CONVERTED:", err=True)
                print_frame(r.not_converted.select("series_uid", "Modality", "instances", "reason"))
                return 1
            return 0

    run_guarded(body)
