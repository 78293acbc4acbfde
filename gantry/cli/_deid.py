"""Verbs that de-identify: ``anonymize``, ``plan``, ``export``, ``maps``."""

from __future__ import annotations

from pathlib import Path

import click

from gantry.cli._app import cli, config_option, db_option, print_frame, run_guarded
from gantry.pixels._transfer_syntax import Compression

_config_option = config_option(
    "YAML config v2, or a built-in profile name (default: built-in defaults)."
)


@cli.command()
@db_option
@_config_option
def anonymize(db: Path, config: Path | str | None) -> None:
    """Compute the remediation plan (writes no DICOM file)."""
    from gantry.session import Session

    def body() -> None:
        with Session(db) as s:
            counts = s.anonymize(config)
            n = s.sql("SELECT count(*) AS n, count(DISTINCT file_id) AS f FROM plan").row(0)
            click.echo(f"plan: {n[0]} actions over {n[1]} instances")
            print_frame(counts)

    run_guarded(body)


@cli.command()
@db_option
@click.option("--where", default=None, help="SQL filter over the plan, e.g. \"action = 'X'\".")
@click.option("--limit", default=50, show_default=True)
@click.option(
    "--format", "fmt", type=click.Choice(["table", "csv", "json", "parquet"]), default="table"
)
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None)
def plan(db: Path, where: str | None, limit: int, fmt: str, out: Path | None) -> None:
    """Show the persisted plan (one row per action)."""
    from gantry.session import Session

    def body() -> None:
        with Session(db) as s:
            cond = f"WHERE {where}" if where else ""
            lim = "" if out is not None else f"LIMIT {int(limit)}"
            print_frame(s.sql(f"SELECT * FROM plan {cond} ORDER BY file_id, path {lim}"), fmt, out)

    run_guarded(body)


@cli.command()
@click.argument("dest")  # a folder, dicom://AE@host:port, or a DICOMweb URL (docs/network.md)
@db_option
@config_option(
    "YAML config v2, or a built-in profile name (default: the config of the last "
    "`anonymize`, kept in the session)."
)
@click.option("--query", default=None, help="SQL WHERE over instances selecting what to export.")
@click.option("--unsafe", is_flag=True, help="Also export instances with unresolved findings.")
@click.option(
    "--compression",
    type=click.Choice([c.value for c in Compression]),
    default=None,
    help="Transcode the pixel data (default: keep the original encoding); objects "
    "without pixel data are copied as they are. Lossy only for the -lossy/-near choices.",
)
@click.option(
    "--strict",
    is_flag=True,
    help="Refuse (with a reason) instances the stored plan does not cover, instead of "
    "planning them again first.",
)
@click.option("--workers", "-j", type=int, default=None)
@click.option("--no-verify", is_flag=True, help="Skip reading the written files back.")
@click.option("--quiet", "-q", is_flag=True)
@click.option(
    "--scheduler",
    metavar="ADDRESS",
    default=None,
    help="Run on a Dask cluster (tcp://host:8786); default: $GANTRY_EXECUTOR or local.",
)
def export(
    dest: str,
    db: Path,
    config: Path | str | None,
    query: str | None,
    unsafe: bool,
    compression: str | None,
    workers: int | None,
    no_verify: bool,
    quiet: bool,
    scheduler: str | None,
    strict: bool,
) -> None:
    """Write de-identified copies into DEST (a folder, or a peer: dicom://AE@host:port);
    exit 1 if any instance failed.

    Without --config, the config of the last `anonymize` (kept in the session) is used.
    """
    from gantry.session import Session

    def body() -> int:
        with Session(db) as s:
            r = s.export(
                dest,
                config=config,
                safe=not unsafe,
                query=query,
                compression=compression,
                workers=workers,
                verify=not no_verify,
                progress=False if quiet else None,
                cluster=scheduler,
                strict=strict,
            )
            if r.planned_again:
                click.echo(
                    f"planned again first: {r.planned_again} selected instances the stored "
                    "plan did not cover (indexed or edited after it, or another config)"
                )
            click.echo(
                f"exported {r.exported} files ({r.bytes_written / 1e6:.1f} MB) to {r.dest} in "
                f"{r.seconds:.2f} s ({r.files_per_second:.0f} files/s); already done "
                f"{r.already_done}; excluded {r.excluded.height}; failed {r.failed.height}"
            )
            if r.excluded.height:
                click.echo("excluded (see the session's `exports`/`findings` tables):")
                print_frame(r.excluded.group_by("reason").len("instances"))
            if r.failed.height:
                click.echo("FAILED:", err=True)
                print_frame(r.failed.group_by("reason").len("instances"))
                return 1
            return 0

    run_guarded(body)


@cli.command()
@click.argument("dest", type=click.Path(file_okay=False, path_type=Path))
@db_option
def maps(dest: Path, db: Path) -> None:
    """Write uid_map.csv and patient_map.csv into DEST (keep them apart from the export)."""
    from gantry.session import Session

    def body() -> None:
        with Session(db) as s:
            for name, p in s.export_maps(dest).items():
                click.echo(f"{name}: {p}")

    run_guarded(body)
