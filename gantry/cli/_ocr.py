"""Verb ``scan``: OCR pixels for burned-in text (``text_regions``)."""

from __future__ import annotations

from pathlib import Path

import click

from gantry.cli._app import cli, db_option, run_guarded


def _frames(value: str) -> str | int:
    return int(value) if value.isdigit() else value


@cli.command()
@db_option
@click.option("--query", default=None, help="SQL WHERE over instances selecting what to scan.")
@click.option(
    "--engine", type=click.Choice(["rapidocr", "tesseract"]), default="rapidocr", show_default=True
)
@click.option(
    "--frames",
    default=None,
    help="Frames of multi-frame images: 'sample' (first, middle, last), 'all', or a count.",
)
@click.option("--safe", is_flag=True, help="Read every frame (only such a scan clears an image).")
@click.option("--min-confidence", type=float, default=0.5, show_default=True)
@click.option("--rescan", is_flag=True, help="Scan again what an earlier scan covers.")
@click.option("--workers", "-j", type=int, default=None)
@click.option("--quiet", "-q", is_flag=True)
def scan(
    db: Path,
    query: str | None,
    engine: str,
    frames: str | None,
    safe: bool,
    min_confidence: float,
    rescan: bool,
    workers: int | None,
    quiet: bool,
) -> None:
    """OCR pixel data for burned-in text; results go to the table text_regions."""
    from gantry.session import Session

    def body() -> None:
        with Session(db) as s:
            result = s.scan_pixels(
                query=query,
                engine=engine,
                frames=_frames(frames) if frames else None,
                safe=safe,
                min_confidence=min_confidence,
                rescan=rescan,
                workers=workers,
                progress=False if quiet else None,
            )
            click.echo(str(result))

    run_guarded(body)
