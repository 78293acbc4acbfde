"""Verbs over the index: ``demo``, ``ingest``, ``sql``, ``info``."""

from __future__ import annotations

from pathlib import Path

import click

from gantry.cli._app import cli, db_option, print_frame, run_guarded


@cli.command()
@click.argument("dest", type=click.Path(file_okay=False, path_type=Path), default="gantry-demo")
@click.option("--patients", default=4, show_default=True, help="Synthetic patients to make.")
@click.option("--seed", default=0, show_default=True)
def demo(dest: Path, patients: int, seed: int) -> None:
    """Write a small synthetic DICOM sample (with clutter) into DEST."""
    from gantry.testing import make_clutter, make_corpus

    corpus = make_corpus(dest / "dicom", patients=patients, seed=seed)
    clutter = make_clutter(dest / "dicom" / "clutter")
    click.echo(
        f"wrote {len(corpus.paths)} DICOM files for {patients} patients and "
        f"{len(clutter)} clutter files under {dest / 'dicom'}"
    )


@cli.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@db_option
@click.option("--workers", "-j", type=int, default=None, help="Worker processes (default: all cores).")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar, one summary line.")
def ingest(paths: tuple[Path, ...], db: Path, workers: int | None, quiet: bool) -> None:
    """Index every DICOM header under PATHS into the session (resumable)."""
    from gantry.session import Session

    def body() -> None:
        with Session(db) as s:
            r = s.ingest(list(paths), workers=workers, progress=None if not quiet else False)
            click.echo(
                f"indexed {r.indexed} instances ({r.elements} elements), skipped {r.skipped}, "
                f"already indexed {r.already_indexed}, in {r.seconds:.2f} s "
                f"({r.files_per_second:.0f} files/s)"
            )
            if not quiet:
                click.echo(str(s.info()))

    run_guarded(body)


@cli.command()
@click.argument("query")
@db_option
@click.option(
    "--format", "fmt", type=click.Choice(["table", "csv", "json", "parquet"]), default="table"
)
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None)
def sql(query: str, db: Path, fmt: str, out: Path | None) -> None:
    """Run a SQL QUERY over the session's tables and views."""
    from gantry.session import Session

    def body() -> None:
        with Session(db) as s:
            print_frame(s.sql(query), fmt, out)

    run_guarded(body)


@cli.command()
@db_option
def info(db: Path) -> None:
    """Counts by patient/study/series/modality/manufacturer; skipped files by reason."""
    from gantry.session import Session

    def body() -> None:
        with Session(db) as s:
            click.echo(str(s.info()))

    run_guarded(body)
