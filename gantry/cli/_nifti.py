"""The ``export-nifti`` verb: de-identified series as NIfTI, in a BIDS or flat layout."""

from __future__ import annotations

from pathlib import Path

import click

from gantry.cli._app import (
    cli,
    db_option,
    detail,
    problem,
    query_option,
    run_guarded,
    summary,
    workers_option,
)


@cli.command("export-nifti")
@click.argument("dest", type=click.Path(file_okay=False, path_type=Path))
@db_option
@click.option(
    "--config",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="YAML config v2 (default: the last plan's, else built-in defaults).",
)
@query_option("instances, selecting what to convert")
@click.option(
    "--layout",
    type=click.Choice(["bids", "flat"]),
    default="bids",
    show_default=True,
    help="BIDS folders and names (sub-*/ses-*/anat/...), or one file per series.",
)
@click.option(
    "--rules",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="BIDS datatype/suffix rules (YAML or JSON with `bids_rules:`).",
)
@click.option("--unsafe", is_flag=True, help="Also convert instances with unresolved findings.")
@workers_option
@click.option("--quiet", "-q", is_flag=True, help="No progress bar; print only the summary line.")
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
            summary(
                f"converted {r.converted} of {r.conversions.height} series to {r.dest} "
                f"({layout}) in {r.seconds:.2f} s; unmatched {r.unmatched.height}; "
                f"not converted {r.not_converted.height}",
                converted=r.converted,
                series=r.conversions.height,
                dest=str(r.dest),
                layout=layout,
                seconds=round(r.seconds, 3),
            )
            if r.unmatched.height:
                detail(
                    "unmatched (no BIDS rule; add one with --rules, or use --layout flat):",
                    r.unmatched.select("series_uid", "Modality", "SeriesNumber", "reason"),
                    "unmatched",
                )
            if r.not_converted.height:
                problem(
                    "NOT CONVERTED:",
                    r.not_converted.select("series_uid", "Modality", "instances", "reason"),
                    "not_converted",
                )
                return 1
            return 0

    run_guarded(body)
