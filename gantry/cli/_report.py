"""Verbs that report: ``report compliance|audit|manifest`` and ``export-table``."""

from __future__ import annotations

import json
from pathlib import Path

import click

from gantry.cli._app import (
    OUT_FORMATS,
    PathOrURL,
    cli,
    config_option,
    db_option,
    detail,
    run_guarded,
    status,
    summary,
    write_frame,
)
from gantry.errors import GantryError

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
    type=PathOrURL(file_okay=False),
    default=None,
    help="Folder or URL (s3://bucket/prefix) for compliance.html/.json/.csv (default: EXPORT_DIR).",
)
def compliance(
    export_dir: Path, db: Path, config: Path | str | None, out: Path | str | None
) -> None:
    """Verify EXPORT_DIR file by file; exit 1 when it is not compliant."""
    from gantry.session import Session

    def body() -> int:
        with Session(db, read_only=True) as s:
            r = s.compliance_report(export_dir, profile=config, out=out or export_dir)
        summary(
            str(r),
            verdict=r.verdict,
            compliant=r.compliant,
            **{k: v for k, v in r.summary.items()},
            outputs={k: str(v) for k, v in r.outputs.items()},
        )
        if r.problems.height:
            detail(
                "problems by rule and keyword:",
                r.problems.group_by("rule", "keyword").len("problems").sort("rule", "keyword"),
                "problems",
            )
        for key, path in r.outputs.items():
            status(f"{key}: {path}")
        return 0 if r.compliant else 1

    run_guarded(body)


@report.command("audit")
@click.argument("out", type=PathOrURL(dir_okay=False))
@db_option
@click.option(
    "--format", "fmt", type=click.Choice(["csv", "parquet", "text", "json"]), default=None,
    help="File format of OUT (default: from its suffix, .parquet or .csv); "
    "text/json choose how the summary is printed.",
)  # fmt: skip
def audit_report(out: Path | str, db: Path, fmt: str | None) -> None:
    """Write what the plan changes in each instance, and why, to OUT (.csv or .parquet).

    OUT may be a URL (s3://bucket/audit.csv, gs://, az://): docs/storage.md.
    """
    from gantry.session import Session

    def body() -> None:
        with Session(db, read_only=True) as s:
            chosen = fmt if fmt in ("csv", "parquet") else None
            parquet = str(out).lower().endswith(".parquet")
            chosen = chosen or ("parquet" if parquet else "csv")
            path = s.audit_report(out, format=chosen)
        summary(f"wrote {path}", wrote=str(path), format=chosen)

    run_guarded(body)


@report.command("manifest")
@click.argument("export_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@db_option
@click.option(
    "--max-thumbnails",
    default=24,
    show_default=True,
    help="Before/after pairs of redacted images shown (each opens full size on click).",
)
def manifest(export_dir: Path, db: Path, max_thumbnails: int) -> None:
    """Write EXPORT_DIR/manifest.html (counts, series, redaction thumbnails)."""
    from gantry.report import write_manifest_html
    from gantry.session import Session

    def body() -> None:
        with Session(db, read_only=True) as s:
            path = write_manifest_html(s, export_dir, max_thumbnails=max_thumbnails)
        summary(f"wrote {path}", wrote=str(path))

    run_guarded(body)


@cli.command("export-table")
@click.argument("out", type=PathOrURL())
@db_option
@click.option(
    "--level",
    type=click.Choice(["instance", "series", "study", "patient"]),
    default="instance",
    show_default=True,
    help="One row per instance, series, study or patient (the levels above are joined in).",
)
@click.option(
    "--partition-by",
    type=click.Choice(["PatientID", "Modality"]),
    default=None,
    help="Write a folder of Parquet files, one per value (Parquet only).",
)
def export_table(out: Path | str, db: Path, level: str, partition_by: str | None) -> None:
    """Write the index flattened at LEVEL to OUT; its suffix picks the format.

    .parquet (default for other names; with OUT.schema.json), .csv, .json or .html.
    OUT may be a URL (s3://bucket/cohort.parquet, gs://, az://): docs/storage.md.
    """
    from gantry.session import Session
    from gantry.storage import is_url, open_storage
    from gantry.storage._outputs import publish_output, split_url

    def body() -> None:
        fmt = OUT_FORMATS.get(Path(str(out)).suffix.lower(), "parquet")
        if fmt != "parquet" and partition_by:
            raise GantryError("`--partition-by` writes Parquet: give OUT a .parquet name or none")
        with Session(db, read_only=True) as s:
            if fmt == "parquet":
                path = s.to_parquet(out, level=level, partition_by=partition_by)
                if is_url(path):
                    parent, name = split_url(str(path))
                    text = open_storage(parent).read(name + ".schema.json").decode()
                else:
                    text = Path(path).with_name(Path(path).name + ".schema.json").read_text()
                rows = json.loads(text)["rows"]
            else:
                frame = s.to_polars(level)
                if is_url(out):
                    publish_output(str(out), lambda local: write_frame(frame, local, fmt))
                else:
                    write_frame(frame, Path(out), fmt)
                path, rows = out, frame.height
        summary(f"wrote {rows} {level} rows to {path}", wrote=str(path), rows=rows, format=fmt)

    run_guarded(body)
