"""Verbs that de-identify: ``anonymize``, ``plan``, ``export``, ``maps``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
import polars as pl

from gantry.cli._app import (
    PathOrURL,
    cli,
    config_option,
    db_option,
    detail,
    notice,
    pick_query,
    print_frame,
    problem,
    query_option,
    run_guarded,
    scheduler_option,
    status,
    summary,
    table_options,
    workers_option,
)
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
            summary(f"plan: {n[0]} actions over {n[1]} instances", actions=n[0], instances=n[1])
            detail("actions by rule:", counts, "by_rule")

    run_guarded(body)


@cli.command()
@db_option
@query_option("the plan, e.g. \"action = 'X'\"", old="where")
@click.option(
    "--limit",
    default=50,
    show_default=True,
    help="Rows to show on the terminal (every row goes to --out).",
)
@table_options
def plan(
    db: Path,
    query: str | None,
    query_alias: str | None,
    limit: int,
    fmt: str,
    out: Path | None,
    wide: bool,
) -> None:
    """Show the persisted plan (one row per action), with each instance's source path."""
    from gantry.session import Session

    def body() -> None:
        where = pick_query(query, query_alias, "where")
        with Session(db) as s:
            cond = f"WHERE {where}" if where else ""
            lim = "" if out is not None else f"LIMIT {int(limit)}"
            total = s.sql(f"SELECT count(*) AS n FROM plan {cond}").item()
            frame = s.sql(
                "SELECT p.*, i.file_path AS source_path FROM plan p "
                f"LEFT JOIN instances i USING (file_id) {cond} ORDER BY file_id, path {lim}"
            )
            print_frame(frame, fmt, out)
            if out is None and total > frame.height:
                status(f"{frame.height} of {total} plan rows shown (--limit N, or --out FILE)")

    run_guarded(body)


@cli.command()
@click.argument("dest")  # a folder, dicom://AE@host:port, or a DICOMweb URL (docs/network.md)
@db_option
@config_option(
    "YAML config v2, or a built-in profile name (default: the config of the last "
    "`anonymize`, kept in the session)."
)
@query_option("instances, selecting what to export")
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
@workers_option
@click.option("--no-verify", is_flag=True, help="Skip reading the written files back.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar; print only the summary line.")
@click.option("--wide", is_flag=True, help="List every excluded or failed instance, whole reasons.")
@scheduler_option
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
    wide: bool,
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
                notice(
                    f"planned again first: {r.planned_again} selected instances the stored "
                    "plan did not cover (indexed or edited after it, or another config)"
                )
            summary(
                f"exported {r.exported} files ({r.bytes_written / 1e6:.1f} MB) to {r.dest} in "
                f"{r.seconds:.2f} s ({r.files_per_second:.0f} files/s); already done "
                f"{r.already_done}; excluded {r.excluded.height}; failed {r.failed.height}",
                **r.as_dict(),
            )
            if r.excluded.height:
                detail(
                    "excluded (the session's `exports` table has every row):",
                    instances_by_reason(s, r.excluded, each=wide),
                    "excluded_instances",
                )
            if r.failed.height:
                problem(
                    "FAILED (the session's `exports` table has every row):",
                    instances_by_reason(s, r.failed, each=wide),
                    "failed_instances",
                )
            return 1 if r.failed.height else 0

    run_guarded(body)


@cli.command()
@click.argument("dest", type=PathOrURL(file_okay=False))
@db_option
def maps(dest: Path | str, db: Path) -> None:
    """Write uid_map.csv and patient_map.csv into DEST (keep them apart from the export).

    DEST may be a URL (s3://bucket/maps, gs://, az://): docs/storage.md.
    """
    from gantry.session import Session

    def body() -> None:
        with Session(db) as s:
            for name, p in s.export_maps(dest).items():
                click.echo(f"{name}: {p}")

    run_guarded(body)


def instances_by_reason(s: Any, frame: pl.DataFrame, *, each: bool = False) -> pl.DataFrame:
    """``file_id, reason`` rows grouped by reason and device, or (``each``) one per instance
    with its source path.

    A reason's per-file particulars (sizes, counts: a last clause with digits, as in
    ``"... is truncated: 2730 bytes hold fewer than ..."``) go to a ``detail`` column, so
    that one kind of failure is one row.
    """
    ids = frame.select(pl.col("file_id").cast(pl.Int64), "reason").with_columns(
        split_reason(pl.col("reason"))
    )
    info = (
        s.table("instances")
        .filter(pl.col("file_id").is_in(ids["file_id"].implode()))
        .select(
            "file_id",
            pl.col("file_path").alias("source_path"),
            *[pl.col(c).cast(pl.String) for c in ("Manufacturer", "ManufacturerModelName")],
        )
        .collect()
    )
    joined = ids.join(info, on="file_id", how="left")
    if each:
        return joined.select("reason", "detail", "source_path", "file_id").sort(
            "reason", "source_path"
        )
    keys = ["reason", "Manufacturer", "ManufacturerModelName"]
    return (
        joined.group_by(keys)
        .agg(pl.len().alias("instances"), pl.col("source_path").min().alias("for example"))
        .sort("instances", *keys, descending=[True, False, False, False], nulls_last=True)
    )


def split_reason(reason: pl.Expr) -> list[pl.Expr]:
    """``reason`` without its per-file particulars, and those particulars as ``detail``.

    Examples
    --------
    >>> df = pl.DataFrame({"r": ["CodecError: pixel data (1.2.840.10008.1.2.1) is "
    ...                          "truncated: 2730 bytes hold fewer than 1 frame(s)",
    ...                          "duplicate SOP Instance UID: the first file is exported"]})
    >>> df.select(split_reason(pl.col("r"))).rows()
    [('CodecError: pixel data (1.2.840.10008.1.2.1) is truncated', '2730 bytes hold fewer than 1 frame(s)'), ('duplicate SOP Instance UID: the first file is exported', None)]
    """  # noqa: E501
    tail = reason.str.extract(r":\s+([^:]*\d[^:]*)$", 1)
    general = (
        pl.when(tail.is_not_null())
        .then(reason.str.replace(r":\s+[^:]*\d[^:]*$", ""))
        .otherwise(reason)
    )
    return [general.alias("reason"), tail.alias("detail")]
