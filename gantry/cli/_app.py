"""The ``gantry`` command group and the conventions every verb shares.

Every verb gets, from :class:`GantryCommand`:

- ``-q/--quiet``, ``-v/--verbose`` and ``--log-level``: logs and warnings go to
  stderr (third-party warnings about input files are counted, shown with ``-v``);
  results go to stdout;
- ``--format`` and ``--json``: the summary (or the result table) as text or as
  machine-readable JSON;
- errors as one ``error: ...`` line in CLI words, exit status 2.

Verbs whose result is a table also take ``--out PATH`` (the suffix picks csv, json,
parquet or html) and ``--wide`` (every column, values uncut).
"""

from __future__ import annotations

import json
import logging
import re
import shutil
import sys
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, TypeVar

import click
import polars as pl

from gantry.errors import GantryError, QueryError, StoreLockedError, StoreNotFoundError

F = TypeVar("F", bound=Callable[..., Any])

DEFAULT_DB = "gantry.db"
TABLE_ROWS: Final = 200
"""Rows a table shows on the terminal; the row count says when it is cut."""
OUT_FORMATS: Final = {".csv": "csv", ".json": "json", ".parquet": "parquet", ".html": "html"}


# -- per-invocation output state ---------------------------------------------------------------


@dataclass
class Output:
    """How this invocation prints: the choices of the shared options."""

    fmt: str = "text"
    quiet: bool = False
    wide: bool = False
    out: Path | None = None
    summary: dict[str, Any] = field(default_factory=dict)
    printed_result: bool = False


_OUTPUT = Output()


def output() -> Output:
    """The output choices of the running verb."""
    return _OUTPUT


# -- logging: stderr, third-party warnings counted ---------------------------------------------

_THIRD_PARTY = ("pydicom", "pynetdicom")


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Log records to stderr; warnings about input files only when verbose, always counted."""

    def __init__(self, verbose: bool) -> None:
        super().__init__(sys.stderr)
        self.verbose = verbose
        self.counted = 0
        self.example = ""
        self.previous_level = logging.WARNING
        self.setFormatter(logging.Formatter("%(levelname)s: %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        self.stream = sys.stderr  # follow redirection (tests, CliRunner)
        if _is_input_warning(record):
            from gantry._messages import mask

            # third-party warnings may quote a value from a file: never print one
            first = record.getMessage().splitlines()[0] if record.getMessage() else ""
            record.msg, record.args = mask(re.sub(r"^\S+\.py:\d+: ", "", first)), None
            self.counted += 1
            if not self.example:
                self.example = _short(record.getMessage())
            if not self.verbose:
                return
        super().emit(record)


def _is_input_warning(record: logging.LogRecord) -> bool:
    if record.name == "py.warnings" or record.name.split(".")[0] in _THIRD_PARTY:
        return record.levelno >= logging.WARNING
    # gantry._messages.capture_warnings logs masked third-party warnings as "Category: text"
    return record.name == "gantry" and bool(re.match(r"\w*Warning: ", record.getMessage()))


def _short(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= 80 else text[:77] + "..."


def _setup_logging(quiet: bool, verbose: int, log_level: str | None) -> _StderrHandler:
    if log_level:
        level = getattr(logging, log_level.upper())
    elif verbose >= 2:
        level = logging.DEBUG
    elif verbose == 1:
        level = logging.INFO
    elif quiet:
        level = logging.ERROR
    else:
        level = logging.WARNING
    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, _StderrHandler)]:
        root.removeHandler(old)
    handler = _StderrHandler(verbose=level <= logging.INFO)
    root.addHandler(handler)
    handler.previous_level = root.level
    root.setLevel(min(level, logging.WARNING))  # input warnings reach the counter
    handler.setLevel(logging.DEBUG)
    handler.addFilter(lambda r: r.levelno >= level or _is_input_warning(r))
    logging.captureWarnings(True)
    warnings.simplefilter("default")  # inside the verb's catch_warnings block
    return handler


def _finish_logging(handler: _StderrHandler) -> None:
    logging.getLogger().removeHandler(handler)
    logging.getLogger().setLevel(handler.previous_level)
    logging.captureWarnings(False)
    if handler.counted and not handler.verbose and not _OUTPUT.quiet:
        click.echo(
            f"note: {handler.counted} warning(s) about the input files, e.g. "
            f"{handler.example!r}; -v shows them all",
            err=True,
        )


# -- the command classes -----------------------------------------------------------------------


def _shared_params(existing: set[str], short_flags: set[str]) -> list[click.Parameter]:
    params: list[click.Parameter] = []
    if "quiet" not in existing:
        decls = ["--quiet", "-q"] if "-q" not in short_flags else ["--quiet"]
        params.append(
            click.Option(
                decls,
                is_flag=True,
                help="Print only the summary line and the requested result; no detail tables.",
            )
        )
    params += [
        click.Option(
            ["--verbose", "-v"],
            count=True,
            help="More log output on stderr (-v: info and every input warning, -vv: debug).",
        ),
        click.Option(
            ["--log-level"],
            type=click.Choice(["debug", "info", "warning", "error"], case_sensitive=False),
            default=None,
            help="Log level on stderr (overrides -q and -v).",
        ),
        click.Option(
            ["--json", "as_json"],
            is_flag=True,
            help="Print the summary (or the result table) as JSON on stdout; same as --format json.",
        ),
    ]
    if "fmt" not in existing:
        params.append(
            click.Option(
                ["--format", "fmt"],
                type=click.Choice(["text", "json"]),
                default="text",
                show_default=True,
                help="How the summary is printed on stdout.",
            )
        )
    return params


class GantryCommand(click.Command):
    """A verb with the shared options (quiet, verbose, log level, format, json)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        existing = {p.name for p in self.params if p.name}
        shorts = {o for p in self.params if isinstance(p, click.Option) for o in p.opts}
        added = _shared_params(existing, shorts)
        self._added = {p.name for p in added if p.name}
        self.params += added

    def invoke(self, ctx: click.Context) -> Any:
        global _OUTPUT
        params = ctx.params
        shared = {name: params.pop(name) for name in list(params) if name in self._added}
        quiet = bool(shared.get("quiet", params.get("quiet", False)))
        fmt = str(shared.get("fmt", params.get("fmt")) or "text")
        if shared.get("as_json"):
            fmt = "json"
            if "fmt" in params:
                params["fmt"] = "json"
        out = params.get("out") if isinstance(params.get("out"), Path) else None
        _OUTPUT = Output(
            fmt="json" if fmt == "json" else "text",
            quiet=quiet,
            wide=bool(params.get("wide")),
            out=out,
        )
        with warnings.catch_warnings():
            handler = _setup_logging(
                quiet, int(shared.get("verbose") or 0), shared.get("log_level")
            )
            try:
                return super().invoke(ctx)
            finally:
                _flush_summary()
                _finish_logging(handler)


class GantryGroup(click.Group):
    """A command group whose verbs (and sub-groups) share Gantry's conventions."""

    command_class = GantryCommand
    group_class = type  # sub-groups are GantryGroups too


@click.group(cls=GantryGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="gantry")
def cli() -> None:
    """Gantry: index, audit and de-identify DICOM with dataframes.

    Every verb takes -q/-v/--log-level (logs on stderr, results on stdout) and
    --json for a machine-readable summary; table results take --out FILE (.csv,
    .json, .parquet or .html) and --wide.
    """


# -- shared options ----------------------------------------------------------------------------


def scheduler_option(f: F) -> F:
    """``--scheduler ADDRESS``: run the tasks on a Dask cluster (env ``GANTRY_EXECUTOR``)."""
    return click.option(
        "--scheduler",
        metavar="ADDRESS",
        default=None,
        help="Run on a Dask cluster (tcp://host:8786); default: $GANTRY_EXECUTOR or local.",
    )(f)


def db_option(f: F) -> F:
    """``--db PATH``: the session catalog (env ``GANTRY_DB``)."""
    return click.option(
        "--db",
        "db",
        type=click.Path(dir_okay=False, path_type=Path),
        default=DEFAULT_DB,
        envvar="GANTRY_DB",
        show_default=True,
        help="Session catalog file (env GANTRY_DB).",
    )(f)


def query_option(what: str, *, old: str | None = None) -> Callable[[F], F]:
    """``--query WHERE``: the one selection flag; ``old`` names a hidden deprecated alias."""

    def deco(f: F) -> F:
        f = click.option(
            "--query", "query", default=None, metavar="WHERE", help=f"SQL WHERE over {what}."
        )(f)
        if old is not None:
            f = click.option(
                f"--{old}",
                "query_alias",
                default=None,
                hidden=True,
                expose_value=True,
                help="Deprecated: use --query (same meaning).",
            )(f)
        return f

    return deco


def pick_query(query: str | None, alias: str | None, old: str) -> str | None:
    """The selection from ``--query`` or its deprecated alias (which logs a note)."""
    if alias is not None:
        logging.getLogger("gantry.cli").warning("`--%s` is deprecated: use `--query`", old)
        if query is not None and query != alias:
            raise GantryError(f"give the selection once: `--query` or `--{old}`, not both")
        return alias
    return query


def out_option(help: str = "Write the result to this file; its suffix picks the format "
               "(.csv, .json, .parquet, .html).") -> Callable[[F], F]:  # fmt: skip
    """``--out PATH`` for a table result."""
    return click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None,
                         help=help)  # fmt: skip


def table_options(f: F) -> F:
    """``--format table|csv|json|parquet``, ``--out PATH`` and ``--wide`` for a table result."""
    f = click.option(
        "--wide",
        is_flag=True,
        help="Show every column and whole values (default: cut to the terminal width).",
    )(f)
    f = out_option()(f)
    return click.option(
        "--format",
        "fmt",
        type=click.Choice(["table", "csv", "json", "parquet", "text"]),
        default="table",
        show_default=True,
        help="Result format on stdout (parquet needs --out); with --out, the suffix decides.",
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


class PathOrURL(click.ParamType):
    """A local path (checked as ``click.Path(**checks)`` would), or an object storage URL.

    A URL (``s3://bucket/prefix``, ``gs://``, ``az://``) passes through as text:
    a ``Path`` would fold its ``//``.
    """

    name = "path"

    def __init__(self, **checks: Any) -> None:
        self.checks = checks

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        from gantry.storage import is_url

        if is_url(value):
            return str(value)
        return click.Path(path_type=Path, **self.checks).convert(value, param, ctx)


def config_option(help: str) -> Callable[[F], F]:
    """``--config``: a YAML config v2 or a built-in profile name (default: the defaults)."""
    return click.option("--config", "config", type=ConfigSource(), default=None, help=help)


def workers_option(f: F) -> F:
    """``-j/--workers N``."""
    return click.option(
        "--workers", "-j", type=int, default=None, help="Worker processes (default: all cores)."
    )(f)


# -- errors in CLI words -----------------------------------------------------------------------

_MADE_BY: Final = {
    "plan": "gantry anonymize",
    "findings": "gantry audit",
    "exports": "gantry export",
    "text_regions": "gantry scan",
    "conversions": "gantry export-nifti",
    "vault": "gantry lock",
}

_PYTHON_WORDS: Final = [
    (re.compile(r"`?\block_identities\b(\(\))?`?"), "`gantry lock`"),
    (re.compile(r"`?\benable_reversible_anonymization\b(\(\))?`?"), "`gantry keys init`"),
    (re.compile(r"`?\bkey_path\b`?"), "`--key`"),
    (re.compile(r"`?\bread_only=True\b`?"), "a verb that only reads"),
    (re.compile(r"`?\bquery\b`?(?= could not be run)"), "the query"),
    (re.compile(r"`?\bsession\.(\w+)\(\)`?"), r"`\1`"),
]


def cli_words(exc: BaseException) -> str:
    """``exc``'s message in the words of the command line (no Python names, no engine dump).

    Examples
    --------
    >>> from gantry.errors import VaultError
    >>> cli_words(VaultError("no identity vault in this session: run `lock_identities` first"))
    'no identity vault in this session: run `gantry lock` first'
    """
    text = str(exc)
    missing = re.search(r"Table with name (\w+) does not exist", text)
    if isinstance(exc, QueryError) and missing:
        table = missing.group(1)
        made = _MADE_BY.get(table)
        hint = f"; run `{made}` first" if made else '; `gantry sql "SHOW TABLES"` lists them'
        return f"the session has no table `{table}` yet{hint}"
    if isinstance(exc, QueryError):
        text = re.sub(r"(Catalog|Parser|Binder|Conversion) Error: ", "", text)
    if isinstance(exc, StoreNotFoundError | StoreLockedError):
        return text
    for pattern, words in _PYTHON_WORDS:
        text = pattern.sub(words, text)
    return text


def fail(message: str, code: int = 1) -> None:
    """Print an error line on stderr and exit with ``code``."""
    click.echo(f"error: {message}", err=True)
    sys.exit(code)


def run_guarded(fn: Callable[[], int | None]) -> None:
    """Run a verb body; turn errors into one clear line (exit 2), exit with its code."""
    try:
        code = fn()
    except GantryError as exc:
        _flush_summary()
        fail(cli_words(exc), 2)
    except (KeyboardInterrupt, SystemExit, click.exceptions.Exit, click.ClickException):
        raise
    except Exception as exc:  # an unexpected failure: one line; -vv for the traceback
        logging.getLogger("gantry.cli").debug("unexpected failure", exc_info=True)
        fail(
            f"an unexpected {type(exc).__name__} stopped the command "
            "(run it again with -vv for the traceback, and report it)",
            2,
        )
    else:
        if code:
            _flush_summary()
            sys.exit(code)


# -- printing ----------------------------------------------------------------------------------


def say(text: str) -> None:
    """A line of narrative on stdout (not in JSON mode, not under -q)."""
    if _OUTPUT.fmt == "text" and not _OUTPUT.quiet:
        click.echo(text)


def status(text: str) -> None:
    """A status line (files written, ...) on stderr, unless -q."""
    if not _OUTPUT.quiet:
        click.echo(text, err=True)


def notice(text: str) -> None:
    """Something the user should know about how the verb ran: stderr, also under -q."""
    if _OUTPUT.fmt == "text":
        click.echo(text, err=True)


def summary(text: str, **data: Any) -> None:
    """The verb's summary: ``text`` on stdout, or ``data`` in the one JSON object it prints."""
    if _OUTPUT.fmt == "json":
        _OUTPUT.summary.update(data)
    else:
        click.echo(text)


def detail(title: str, df: pl.DataFrame, key: str | None = None) -> None:
    """A detail table: printed under ``title`` (not under -q), or in the JSON summary."""
    if _OUTPUT.fmt == "json":
        _OUTPUT.summary[key or _key(title)] = df.to_dicts()
        return
    if _OUTPUT.quiet:
        return
    click.echo(title)
    click.echo(format_table(df, wide=_OUTPUT.wide))


def problem(title: str, df: pl.DataFrame, key: str | None = None) -> None:
    """What failed: title and table on stderr (also under -q), or in the JSON summary."""
    if _OUTPUT.fmt == "json":
        _OUTPUT.summary[key or _key(title)] = df.to_dicts()
        return
    click.echo(title, err=True)
    click.echo(format_table(df, wide=_OUTPUT.wide), err=True)


def _key(title: str) -> str:
    return re.sub(r"\W+", "_", title.strip().rstrip(":").lower()).strip("_")


def _flush_summary() -> None:
    if _OUTPUT.fmt == "json" and _OUTPUT.summary and not _OUTPUT.printed_result:
        click.echo(json.dumps(_OUTPUT.summary, default=str))
        _OUTPUT.summary = {}


def print_frame(df: pl.DataFrame, fmt: str | None = None, out: Path | None = None) -> None:
    """Print (or write) a result table: text, CSV, JSON, Parquet or HTML.

    With ``out``, its suffix picks the format (an explicit non-table ``fmt`` wins).
    """
    fmt = fmt or ("json" if _OUTPUT.fmt == "json" else "table")
    if fmt == "text":
        fmt = "table"
    if out is not None:
        chosen = fmt if fmt != "table" else OUT_FORMATS.get(out.suffix.lower())
        if chosen is None:
            raise GantryError(
                f"`--out` must end in {', '.join(OUT_FORMATS)} (the suffix picks the format), "
                f"got {out.name!r}"
            )
        write_frame(df, out, chosen)
        status(f"wrote {df.height} rows to {out}")
        return
    _OUTPUT.printed_result = _OUTPUT.printed_result or fmt == "json"
    if fmt == "parquet":
        raise GantryError("`--format parquet` needs `--out FILE`")
    if fmt == "csv":
        click.echo(flatten(df).write_csv(), nl=False)
    elif fmt == "json":
        click.echo(json.dumps(df.to_dicts(), default=str))
    else:
        click.echo(format_table(df, wide=_OUTPUT.wide))


def write_frame(df: pl.DataFrame, out: Path, fmt: str) -> None:
    """Write ``df`` to ``out`` as csv, json, parquet or html."""
    out.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "parquet":
        df.write_parquet(out)
    elif fmt == "csv":
        flatten(df).write_csv(out)
    elif fmt == "json":
        out.write_text(json.dumps(df.to_dicts(), default=str, indent=1))
    elif fmt == "html":
        from gantry.report._render import render

        out.write_text(render("table.html.j2", title=out.stem, columns=df.columns,
                              rows=df.rows(), total=df.height))  # fmt: skip
    else:
        raise GantryError(f"`--format` must be csv, json, parquet or html, got {fmt!r}")


def format_table(df: pl.DataFrame, *, wide: bool = False, rows: int = TABLE_ROWS) -> str:
    """``df`` as a table for a terminal, with a line saying what was cut.

    Examples
    --------
    >>> print(format_table(pl.DataFrame({"n": range(60)}), rows=3))
    ┌────┐
    │ n  │
    ╞════╡
    │ 0  │
    │ 1  │
    │ …  │
    │ 59 │
    └────┘
    3 of 60 rows shown (--out FILE or --format csv for all)
    """
    width = shutil.get_terminal_size((160, 24)).columns if not wide else 60_000
    shown_rows = df.height if wide or df.height <= rows else rows
    cols = _fitting_columns(df, width) if not wide else df.width
    n_text = sum(1 for t in df.dtypes[:cols] if t == pl.String) or 1
    with pl.Config(
        tbl_rows=max(shown_rows, 1),
        tbl_cols=cols,
        fmt_str_lengths=30_000 if wide else max(60, (width - 12 * cols) // n_text),
        fmt_table_cell_list_len=-1 if wide else 6,
        tbl_width_chars=width,
        tbl_hide_dataframe_shape=True,
        tbl_hide_column_data_types=True,
    ):
        text = str(df)
    notes = []
    if shown_rows < df.height:
        notes.append(f"{shown_rows} of {df.height} rows shown")
    if cols < df.width:
        notes.append(f"{cols} of {df.width} columns shown")
    if notes:
        text += f"\n{'; '.join(notes)} (--out FILE or --format csv for all"
        text += ", --wide for every column)" if cols < df.width else ")"
    return text


def _fitting_columns(df: pl.DataFrame, width: int) -> int:
    """How many columns fit ``width`` without squeezing headers (polars keeps first and last)."""
    used, n = 1, 0
    for name, dtype in df.schema.items():
        sample = df.get_column(name).head(TABLE_ROWS)
        longest = 4
        if sample.len():
            lengths = sample.cast(pl.String, strict=False).str.len_chars()
            top = lengths.max()
            longest = top if isinstance(top, int) and dtype != pl.Null else 4
        used += min(max(len(name), longest, 4), 60) + 3
        if used > width and n:
            return max(n, 2)
        n += 1
    return df.width


def flatten(df: pl.DataFrame) -> pl.DataFrame:
    """CSV cannot hold lists: join them with a backslash, as DICOM does."""
    exprs = []
    for name, dtype in df.schema.items():
        if isinstance(dtype, pl.List):
            exprs.append(pl.col(name).cast(pl.List(pl.String)).list.join("\\").alias(name))
        elif isinstance(dtype, pl.Struct | pl.Array):
            exprs.append(pl.col(name).cast(pl.String, strict=False).alias(name))
    return df.with_columns(exprs) if exprs else df
