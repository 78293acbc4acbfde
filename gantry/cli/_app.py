"""The ``gantry`` command group and the options every verb shares."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click
import polars as pl

from gantry.errors import GantryError

F = TypeVar("F", bound=Callable[..., Any])

DEFAULT_DB = "gantry.db"


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="gantry")
def cli() -> None:
    """Gantry: index, audit and de-identify DICOM with dataframes."""


def db_option(f: F) -> F:
    """``--db PATH``: the session catalog (env ``GANTRY_DB``)."""
    return click.option(
        "--db",
        "db",
        type=click.Path(dir_okay=False, path_type=Path),
        default=DEFAULT_DB,
        envvar="GANTRY_DB",
        show_default=True,
        help="Session catalog file.",
    )(f)


class ConfigSource(click.ParamType):
    """A config file that exists, or the name of a built-in profile (``basic``)."""

    name = "config"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        from gantry.profiles._spec import available_profiles

        if isinstance(value, Path) or Path(value).is_file():
            return Path(value)
        if str(value).strip() in available_profiles():
            return str(value).strip()
        self.fail(
            f"{value!r} is neither an existing file nor a built-in profile "
            f"({', '.join(available_profiles())})",
            param,
            ctx,
        )


def config_option(help: str) -> Callable[[F], F]:
    """``--config``: a YAML config v2 or a built-in profile name (default: the defaults)."""
    return click.option("--config", "config", type=ConfigSource(), default=None, help=help)


def fail(message: str, code: int = 1) -> None:
    """Print an error line on stderr and exit with ``code``."""
    click.echo(f"error: {message}", err=True)
    sys.exit(code)


def run_guarded(fn: Callable[[], int | None]) -> None:
    """Run a verb body; turn Gantry errors into one clear line and exit code 2."""
    try:
        code = fn()
    except GantryError as exc:
        fail(str(exc), 2)
    else:
        if code:
            sys.exit(code)


def print_frame(df: pl.DataFrame, fmt: str = "table", out: Path | None = None) -> None:
    """Print (or write) a frame as a table, CSV, JSON or Parquet."""
    if fmt == "parquet":
        if out is None:
            fail("`--format parquet` needs `--out FILE`")
        df.write_parquet(out)  # type: ignore[arg-type]
        click.echo(f"wrote {df.height} rows to {out}")
        return
    if fmt == "csv":
        text = _flatten(df).write_csv()
    elif fmt == "json":
        text = df.write_json()
    else:
        with pl.Config(
            tbl_rows=min(max(df.height, 1), 200),
            tbl_cols=-1,
            fmt_str_lengths=60,
            tbl_width_chars=200,
            tbl_hide_dataframe_shape=True,
        ):
            text = str(df)
    if out is not None:
        out.write_text(text)
        click.echo(f"wrote {df.height} rows to {out}")
    else:
        click.echo(text)


def _flatten(df: pl.DataFrame) -> pl.DataFrame:
    """CSV cannot hold lists: join them with a backslash, as DICOM does."""
    exprs = []
    for name, dtype in df.schema.items():
        if isinstance(dtype, pl.List):
            exprs.append(pl.col(name).cast(pl.List(pl.String)).list.join("\\").alias(name))
        elif isinstance(dtype, pl.Struct | pl.Array):
            exprs.append(pl.col(name).cast(pl.String, strict=False).alias(name))
    return df.with_columns(exprs) if exprs else df
