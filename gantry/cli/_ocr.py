"""Verb ``scan``: OCR pixels for burned-in text (``text_regions``)."""

from __future__ import annotations

from pathlib import Path

import click

from gantry.cli._app import (
    cli,
    db_option,
    query_option,
    run_guarded,
    scheduler_option,
    summary,
    workers_option,
)


def _frames(value: str) -> str | int:
    return int(value) if value.isdigit() else value


@cli.command()
@db_option
@query_option("instances, selecting what to scan")
@click.option(
    "--engine",
    default="rapidocr",
    show_default=True,
    help="OCR engine (rapidocr needs the ocr extra; tesseract the tesseract-ocr program), "
    "or a pixel-detector plugin (see `gantry plugins`).",
)
@click.option(
    "--frames",
    default=None,
    help="Frames of multi-frame images: 'sample' (first, middle, last), 'all', or a count.",
)
@click.option("--safe", is_flag=True, help="Read every frame (only such a scan clears an image).")
@click.option(
    "--min-confidence",
    type=float,
    default=0.5,
    show_default=True,
    help="Ignore text the engine is less sure of (0..1).",
)
@click.option("--rescan", is_flag=True, help="Scan again what an earlier scan covers.")
@workers_option
@click.option("--quiet", "-q", is_flag=True, help="No progress bar; print only the summary.")
@scheduler_option
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
    scheduler: str | None,
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
                cluster=scheduler,
            )
            summary(str(result), **_fields(result))

    run_guarded(body)


def _fields(result: object) -> dict[str, object]:
    """The scan result's plain fields, for --json."""
    import dataclasses

    if not dataclasses.is_dataclass(result):
        return {"result": str(result)}
    return {
        f.name: getattr(result, f.name)
        for f in dataclasses.fields(result)
        if isinstance(getattr(result, f.name), int | float | str | bool | None)
    }
