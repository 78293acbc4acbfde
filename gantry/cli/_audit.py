"""Verbs of the audit stage: ``config init``, ``audit``, ``preview``."""

from __future__ import annotations

from pathlib import Path

import click

from gantry.cli._app import cli, config_option, db_option, print_frame, run_guarded

_config_option = config_option(
    "YAML config v2, or a built-in profile name (default: built-in defaults)."
)


@cli.group()
def config() -> None:
    """Write and check configuration files (YAML config v2)."""


@config.command("init")
@click.argument("path", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--force", is_flag=True, help="Overwrite PATH if it exists.")
def config_init(path: Path, force: bool) -> None:
    """Write the commented default configuration to PATH."""
    from gantry.config import write_default_config

    def body() -> int:
        try:
            written = write_default_config(path, overwrite=force)
        except FileExistsError:
            click.echo(f"error: {path} exists (use --force to overwrite it)", err=True)
            return 1
        click.echo(f"wrote {written}")
        return 0

    run_guarded(body)


@cli.command()
@db_option
@_config_option
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Also write every finding to this file (.parquet or .csv).",
)
@click.option(
    "--by",
    type=click.Choice(["rule", "tag", "modality", "device", "severity"]),
    default="rule",
    show_default=True,
    help="How the printed summary is grouped.",
)
@click.option("--no-save", is_flag=True, help="Do not persist the findings table.")
@click.option(
    "--fail-on-unresolved",
    is_flag=True,
    help="Exit with status 3 when some instances cannot be exported as clean.",
)
def audit(
    db: Path,
    config: Path | str | None,
    out: Path | None,
    by: str,
    no_save: bool,
    fail_on_unresolved: bool,
) -> None:
    """Audit the index for PHI and print a summary of the findings.

    The findings are saved as the session's ``findings`` table (query them with
    ``gantry sql "SELECT * FROM findings"``).
    """
    from gantry.session import Session

    def body() -> int:
        with Session(db) as s:
            report = s.audit(config)
            if not no_save:
                s.save_analysis(report)
            unresolved = report.unresolved()
            click.echo(
                f"audit: {len(report)} findings over "
                f"{report.to_polars()['file_id'].n_unique()} instances in {report.seconds:.2f} s; "
                f"{unresolved['file_id'].n_unique()} instances unresolved"
            )
            print_frame(report.summary(by=by))  # type: ignore[arg-type]
            if out is not None:
                _write_findings(report.to_polars(), out)
            return 3 if fail_on_unresolved and unresolved.height else 0

    run_guarded(body)


def _write_findings(findings: object, out: Path) -> None:
    import polars as pl

    assert isinstance(findings, pl.DataFrame)
    text = findings.with_columns(pl.exclude("file_id", "resolved").cast(pl.String))
    if out.suffix.lower() == ".csv":
        text.write_csv(out)
    else:
        findings.write_parquet(out)
    click.echo(f"wrote {findings.height} findings to {out}")


@cli.command()
@db_option
@_config_option
@click.option("--kept", is_flag=True, help="Also count the elements that are kept.")
@click.option(
    "--format", "fmt", type=click.Choice(["table", "csv", "json", "parquet"]), default="table"
)
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None)
def preview(db: Path, config: Path | str | None, kept: bool, fmt: str, out: Path | None) -> None:
    """Dry run: what anonymization would do, per rule, tag and action (writes nothing)."""
    from gantry.session import Session

    def body() -> None:
        with Session(db, read_only=True) as s:
            print_frame(s.preview(config, include_kept=kept), fmt, out)
            failures = s.preview_failures(config)
        if failures.height:
            click.echo(
                f"export verification would fail {failures['file_id'].n_unique()} instance(s); "
                "fix the config (or acknowledge a known false alarm by attribute and "
                "value_hash under `acknowledged`) first:",
                err=True,
            )
            shown = failures.select("file_id", "path", "tag", "keyword", "value_hash")
            click.echo(str(shown.head(50)), err=True)

    run_guarded(body)
