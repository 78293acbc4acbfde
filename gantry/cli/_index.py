"""Verbs over the index: ``demo``, ``ingest``, ``sql``, ``info``."""

from __future__ import annotations

from pathlib import Path

import click

from gantry.cli._app import cli, db_option, print_frame, run_guarded

_DEMO_CONFIG = """\
# Gantry config v2 for the demo (see docs/config.md for every key).
version: 2
privacy_profile: basic
options: [retain-longitudinal-modified-dates]   # shift dates per patient, keep intervals
date_jitter: {min_days: -365, max_days: -1}
machines:
  # the synthetic ultrasound burns a banner into the top rows of every frame
  - name: Sonoria S8 banner
    match: {manufacturer: Sonoria, model: Sonoria S8}
    redaction_zones: [[0, 8, 0, 64]]
    fill: 0
# secondary captures have no zone: under safe export they are excluded, with a reason
"""


@cli.command()
@click.argument("dest", type=click.Path(file_okay=False, path_type=Path), default="gantry-demo")
@click.option("--patients", default=4, show_default=True, help="Synthetic patients to make.")
@click.option("--seed", default=0, show_default=True)
@click.option("--no-run", is_flag=True, help="Only write the sample; do not run the pipeline.")
def demo(dest: Path, patients: int, seed: int, no_run: bool) -> None:
    """Make a synthetic sample in DEST and run the whole pipeline on it.

    Writes DEST/dicom (patients with PHI in headers, nested sequences, private
    blocks, compressed and multi-frame images, plus clutter), then ingests it into
    DEST/project.db, audits it, plans the anonymization, exports clean copies to
    DEST/export and the re-identification maps to DEST/maps.
    """
    from gantry.testing import make_clutter, make_corpus

    corpus = make_corpus(dest / "dicom", patients=patients, seed=seed)
    clutter = make_clutter(dest / "dicom" / "clutter")
    click.echo(
        f"wrote {len(corpus.paths)} DICOM files for {patients} patients and "
        f"{len(clutter)} clutter files under {dest / 'dicom'}"
    )
    if no_run:
        return

    config = dest / "gantry.yaml"
    config.write_text(_DEMO_CONFIG)
    click.echo(f"wrote the demo config {config} (basic profile, shifted dates, one redaction zone)")

    def body() -> int:
        from gantry.session import Session

        with Session(dest / "project.db") as s:
            r = s.ingest(dest / "dicom", progress=False)
            click.echo(
                f"\n== ingest: {r.indexed} instances, {r.elements} elements, "
                f"{r.skipped} files skipped, {r.seconds:.2f} s"
            )
            click.echo(str(s.info()))
            report = s.audit(config)
            s.save_analysis(report)
            click.echo(f"\n== audit: {len(report)} findings")
            print_frame(report.summary(by="rule"))
            counts = s.anonymize(config)
            click.echo("\n== plan (actions by rule, top 12)")
            print_frame(counts.head(12))
            e = s.export(dest / "export", config=config, progress=False)
            click.echo(
                f"\n== export: {e.exported} clean files in {dest / 'export'} "
                f"({e.files_per_second:.0f} files/s, verified), excluded {e.excluded.height} "
                f"(unresolved findings), failed {e.failed.height}"
            )
            if e.excluded.height:
                print_frame(e.excluded.group_by("reason").len("instances"))
            maps = s.export_maps(dest / "maps")
            click.echo(
                f"maps (keep them apart from the export): {', '.join(str(p) for p in maps.values())}"
            )
            click.echo(
                f'\nTry: gantry sql "SELECT action, count(*) FROM plan GROUP BY 1" --db {dest / "project.db"}'
            )
            return 0 if e.ok else 1

    run_guarded(body)


@cli.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@db_option
@click.option(
    "--workers", "-j", type=int, default=None, help="Worker processes (default: all cores)."
)
@click.option("--quiet", "-q", is_flag=True, help="No progress bar, one summary line.")
@click.option(
    "--scheduler",
    metavar="ADDRESS",
    default=None,
    help="Run on a Dask cluster (tcp://host:8786); default: $GANTRY_EXECUTOR or local.",
)
@click.option(
    "--limit",
    "limit_items",
    metavar="NAME=VALUE",
    multiple=True,
    help="A per-file limit, e.g. max_depth=32 (max_depth, max_element_bytes, "
    "max_inflated_bytes, max_frames); files over it are skipped as over_limit.",
)
def ingest(
    paths: tuple[Path, ...],
    db: Path,
    workers: int | None,
    quiet: bool,
    scheduler: str | None,
    limit_items: tuple[str, ...] = (),
) -> None:
    """Index every DICOM header under PATHS into the session (resumable)."""
    from gantry.errors import ConfigError
    from gantry.session import Session

    def body() -> None:
        limits: dict[str, int] = {}
        for item in limit_items:
            name, _, value = item.partition("=")
            if not value.strip().isdigit():
                raise ConfigError(f"--limit {name}", expected="NAME=<positive integer>", got=item)
            limits[name.strip()] = int(value)
        with Session(db) as s:
            r = s.ingest(
                list(paths),
                workers=workers,
                progress=None if not quiet else False,
                cluster=scheduler,
                limits=limits,
            )
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
