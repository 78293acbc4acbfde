"""Verbs that report: ``report compliance|audit|manifest`` and ``export-table``."""

from __future__ import annotations

import json
from pathlib import Path

import click

from gantry.cli._app import cli, config_option, db_option, print_frame, run_guarded

_config_option = config_option(
    "YAML config v2 the export used, or a built-in profile name (default: the config of "
    "the last `anonymize`, kept in the session; else built-in defaults)."
)


@cli.group()
def report() -> None:
    """Compliance, audit and manifest reports."""


@report.command("compliance")
@click.argument("export_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@db_option
@_config_option
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Folder for compliance.html/.json/.csv (default: EXPORT_DIR).",
)
def compliance(export_dir: Path, db: Path, config: Path | str | None, out: Path | None) -> None:
    """Verify EXPORT_DIR file by file; exit 1 when it is not compliant."""
    from gantry.session import Session

    def body() -> int:
        with Session(db, read_only=True) as s:
            r = s.compliance_report(export_dir, profile=config, out=out or export_dir)
        click.echo(str(r))
        if r.problems.height:
            print_frame(
                r.problems.group_by("rule", "keyword").len("problems").sort("rule", "keyword")
            )
        for key, path in r.outputs.items():
            click.echo(f"{key}: {path}")
        return 0 if r.compliant else 1

    run_guarded(body)


@report.command("audit")
@click.argument("out", type=click.Path(dir_okay=False, path_type=Path))
@db_option
@click.option(
    "--format", "fmt", type=click.Choice(["csv", "parquet"]), default=None,
    help="Default: from OUT's suffix (.parquet), else csv.",
)  # fmt: skip
def audit_report(out: Path, db: Path, fmt: str | None) -> None:
    """Write what the plan changes in each instance, and why, to OUT."""
    from gantry.session import Session

    def body() -> None:
        with Session(db, read_only=True) as s:
            chosen = fmt or ("parquet" if out.suffix == ".parquet" else "csv")
            path = s.audit_report(out, format=chosen)
        click.echo(f"wrote {path}")

    run_guarded(body)


@report.command("manifest")
@click.argument("export_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@db_option
@click.option("--max-thumbnails", default=24, show_default=True)
def manifest(export_dir: Path, db: Path, max_thumbnails: int) -> None:
    """Write EXPORT_DIR/manifest.html (counts, series, redaction thumbnails)."""
    from gantry.report import write_manifest_html
    from gantry.session import Session

    def body() -> None:
        with Session(db, read_only=True) as s:
            path = write_manifest_html(s, export_dir, max_thumbnails=max_thumbnails)
        click.echo(f"wrote {path}")

    run_guarded(body)


@cli.command("export-table")
@click.argument("out", type=click.Path(path_type=Path))
@db_option
@click.option(
    "--level",
    type=click.Choice(["instance", "series", "study", "patient"]),
    default="instance",
    show_default=True,
)
@click.option("--partition-by", type=click.Choice(["PatientID", "Modality"]), default=None)
def export_table(out: Path, db: Path, level: str, partition_by: str | None) -> None:
    """Write the index flattened at LEVEL to Parquet OUT (+ OUT.schema.json)."""
    from gantry.session import Session

    def body() -> None:
        with Session(db, read_only=True) as s:
            path = s.to_parquet(out, level=level, partition_by=partition_by)
        doc = json.loads(path.with_name(path.name + ".schema.json").read_text())
        click.echo(f"wrote {doc['rows']} {level} rows to {path}")

    run_guarded(body)
