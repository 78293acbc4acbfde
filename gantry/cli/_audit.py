"""Verbs of the audit stage: ``config init|check``, ``machines suggest``, ``audit``, ``preview``."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import click
import polars as pl

from gantry.cli._app import (
    cli,
    config_option,
    db_option,
    detail,
    print_frame,
    run_guarded,
    status,
    summary,
    table_options,
    write_frame,
)

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
        summary(f"wrote {written}", wrote=str(written))
        return 0

    run_guarded(body)


@config.command("check")
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def config_check(path: Path) -> None:
    """Validate the config file PATH; exit 2 with the first mistake, naming its key."""
    from gantry.config import load_config

    def body() -> None:
        cfg = load_config(path)
        machines = len(cfg.machines)
        zones = sum(len(m.redaction_zones) for m in cfg.machines)
        summary(
            f"ok: {path} (profile {cfg.privacy_profile}, options {_names(cfg.options) or 'none'}, "
            f"{machines} machines with {zones} redaction zones)",
            ok=True,
            path=str(path),
            privacy_profile=str(cfg.privacy_profile),
            options=_names(cfg.options),
            machines=machines,
            redaction_zones=zones,
        )

    run_guarded(body)


def _names(options: Iterable[object]) -> list[str]:
    return [str(getattr(o, "value", o)) for o in options]


@cli.group()
def machines() -> None:
    """Devices that burn text into their images (the config's `machines:`)."""


@machines.command("suggest")
@db_option
@config_option("YAML config v2 whose machines are already known (default: built-in defaults).")
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write the YAML stub to this file (default: print it on stdout).",
)
def machines_suggest(db: Path, config: Path | str | None, out: Path | None) -> None:
    """Write a `machines:` stub for each device whose burned-in images no entry matches.

    One entry per Manufacturer, model, Rows and Columns, with an empty
    `redaction_zones` to fill in (look at the images first, e.g. in the manifest).
    """
    from gantry.session import Session

    def body() -> None:
        with Session(db) as s:
            unresolved = s.audit(config).unresolved().filter(pl.col("rule") == "burned-in")
            devices = (
                s.table("instances")
                .filter(pl.col("file_id").is_in(unresolved["file_id"].unique().implode()))
                .group_by("Manufacturer", "ManufacturerModelName", "Rows", "Columns")
                .agg(pl.len().alias("instances"), pl.col("file_path").min().alias("example"))
                .sort("instances", "Manufacturer", descending=[True, False], nulls_last=True)
                .collect()
            )
        text = _machines_yaml(devices)
        if out is not None:
            out.write_text(text)
            status(f"wrote {devices.height} machine entries to {out}")
        summary(
            text.rstrip("\n") if out is None else f"{devices.height} devices without a zone",
            devices=devices.to_dicts(),
        )

    run_guarded(body)


def _machines_yaml(devices: pl.DataFrame) -> str:
    import yaml

    if not devices.height:
        return "# every device with burned-in images has a machines: entry\nmachines: []\n"
    lines = ["# Fill in each redaction_zones ([row_start, row_end, col_start, col_end], ends",
             "# exclusive, in pixels), then add the entries to your config's machines: list.",
             "machines:"]  # fmt: skip
    for row in devices.iter_rows(named=True):
        match = {
            k: v
            for k, v in (
                ("manufacturer", row["Manufacturer"]),
                ("model", row["ManufacturerModelName"]),
                ("rows", row["Rows"]),
                ("columns", row["Columns"]),
            )
            if v is not None
        }
        name = " ".join(str(v) for v in (row["ManufacturerModelName"] or row["Manufacturer"] or "device",
                                          f"{row['Columns']}x{row['Rows']}"))  # fmt: skip
        entry = yaml.safe_dump([{"name": name, "match": match, "redaction_zones": []}],
                               sort_keys=False, default_flow_style=None, width=1000)  # fmt: skip
        lines.append(f"  # {row['instances']} unresolved instances, e.g. {row['example']}")
        lines += ["  " + line for line in entry.splitlines()]
    return "\n".join(lines) + "\n"


@cli.command()
@db_option
@_config_option
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Also write every finding to this file; its suffix picks the format "
    "(.csv, .json, .parquet, .html).",
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
@click.option("--wide", is_flag=True, help="Show whole values in the summary table.")
def audit(
    db: Path,
    config: Path | str | None,
    out: Path | None,
    by: str,
    no_save: bool,
    fail_on_unresolved: bool,
    wide: bool,
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
            findings = report.to_polars()
            n_unresolved = unresolved["file_id"].n_unique()
            summary(
                f"audit: {len(report)} findings over {findings['file_id'].n_unique()} instances "
                f"in {report.seconds:.2f} s; {n_unresolved} instances unresolved",
                findings=len(report),
                instances=findings["file_id"].n_unique(),
                unresolved_instances=n_unresolved,
                seconds=round(report.seconds, 3),
            )
            detail(f"findings by {by}:", report.summary(by=by), f"by_{by}")  # type: ignore[arg-type]
            if out is not None:
                _write_findings(findings, out)
            return 3 if fail_on_unresolved and unresolved.height else 0

    run_guarded(body)


def _write_findings(findings: pl.DataFrame, out: Path) -> None:
    from gantry.cli._app import OUT_FORMATS
    from gantry.errors import GantryError

    fmt = OUT_FORMATS.get(out.suffix.lower())
    if fmt is None:
        raise GantryError(
            f"`--out` must end in {', '.join(OUT_FORMATS)} (the suffix picks the format), "
            f"got {out.name!r}"
        )
    if fmt != "parquet":
        findings = findings.with_columns(pl.exclude("file_id", "resolved").cast(pl.String))
    write_frame(findings, out, fmt)
    status(f"wrote {findings.height} findings to {out}")


@cli.command()
@db_option
@_config_option
@click.option("--kept", is_flag=True, help="Also count the elements that are kept.")
@table_options
def preview(
    db: Path, config: Path | str | None, kept: bool, fmt: str, out: Path | None, wide: bool
) -> None:
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
