"""The conventions every verb shares: help text, --query, --out suffixes, --json, -q/-v,
errors in CLI words, tables that say what they cut."""

from __future__ import annotations

import json
import logging
import warnings
from pathlib import Path

import click
import polars as pl
import pytest
import yaml
from click.testing import CliRunner

from gantry.cli import cli
from gantry.cli._app import format_table
from gantry.config import load_config
from gantry.testing import make_corpus, make_instance


def _run(*args: str) -> click.testing.Result:
    return CliRunner().invoke(cli, list(args))


def _commands(cmd: click.Command, path: tuple[str, ...] = ()) -> list[tuple[str, click.Command]]:
    if isinstance(cmd, click.Group):
        return [x for n, c in cmd.commands.items() for x in _commands(c, (*path, n))]
    return [(" ".join(path), cmd)]


VERBS = _commands(cli)


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("conv")
    make_corpus(root / "dicom", patients=1, seed=3)
    db = root / "p.db"
    for args in (("ingest", str(root / "dicom"), "-j", "1", "-q"), ("anonymize",)):
        r = _run(*args, "--db", str(db))
        assert r.exit_code == 0, r.output
    return db


@pytest.mark.parametrize("name,cmd", VERBS, ids=[n for n, _ in VERBS])
def test_every_verb_has_the_shared_options_with_help(name: str, cmd: click.Command) -> None:
    opts = {o for p in cmd.params if isinstance(p, click.Option) for o in p.opts}
    assert {"--quiet", "--verbose", "-v", "--log-level", "--json", "--format"} <= opts, name
    for p in cmd.params:
        if isinstance(p, click.Option) and not p.hidden:
            assert p.help, f"gantry {name} {p.opts[0]} has no help text"
    assert cmd.help, name


def test_plan_takes_query_and_keeps_where_as_a_hidden_alias(db: Path) -> None:
    new = _run("plan", "--db", str(db), "--query", "action = 'X'", "--format", "csv")
    old = _run("plan", "--db", str(db), "--where", "action = 'X'", "--format", "csv")
    assert new.exit_code == old.exit_code == 0, new.output + old.output
    assert new.stdout == old.stdout and "source_path" in new.stdout.splitlines()[0]
    assert "--where" not in _run("plan", "--help").output
    assert "deprecated" in old.stderr and "deprecated" not in new.stderr


@pytest.mark.parametrize("suffix", [".csv", ".json", ".parquet", ".html"])
def test_out_suffix_picks_the_format(db: Path, tmp_path: Path, suffix: str) -> None:
    q = "SELECT Modality, count(*) AS n FROM instances GROUP BY 1 ORDER BY 1"
    for args in (("sql", q, "--out"), ("export-table",), ("audit", "--out")):
        out = tmp_path / f"{args[0]}{suffix}"
        r = _run(*args, str(out), "--db", str(db))
        assert r.exit_code == 0, r.output
        if suffix == ".csv":
            assert out.read_text().splitlines()[0].count(",") >= 1
        elif suffix == ".json":
            assert isinstance(json.loads(out.read_text()), list)
        elif suffix == ".parquet":
            assert pl.read_parquet(out).height > 0
        else:
            assert out.read_text().startswith("<!DOCTYPE html>") and "<table>" in out.read_text()


def test_unknown_out_suffix_is_a_clear_error(db: Path, tmp_path: Path) -> None:
    r = _run("sql", "SELECT 1 AS x", "--db", str(db), "--out", str(tmp_path / "x.xlsx"))
    assert r.exit_code == 2 and "`--out` must end in .csv" in r.stderr


def test_json_summaries_parse(db: Path) -> None:
    for args in (("info",), ("audit", "--no-save"), ("anonymize",)):
        r = _run(*args, "--db", str(db), "--json")
        assert r.exit_code == 0, r.output
        doc = json.loads(r.stdout)
        assert isinstance(doc, dict) and doc, args
    assert json.loads(_run("info", "--db", str(db), "--json").stdout)["totals"]["instances"] > 0


def test_quiet_prints_only_the_summary_line(db: Path) -> None:
    loud = _run("audit", "--db", str(db), "--no-save")
    quiet = _run("audit", "--db", str(db), "--no-save", "-q")
    assert loud.exit_code == quiet.exit_code == 0
    assert len(quiet.stdout.strip().splitlines()) == 1 < len(loud.stdout.splitlines())


def test_csv_has_no_trailing_blank_line(db: Path) -> None:
    r = _run("sql", "SELECT 1 AS x", "--db", str(db), "--format", "csv")
    assert r.stdout == "x\n1\n"


def test_errors_are_in_cli_words(tmp_path: Path, db: Path) -> None:
    fresh = tmp_path / "fresh.db"
    make_corpus(tmp_path / "d", patients=1, seed=1)
    assert _run("ingest", str(tmp_path / "d"), "--db", str(fresh), "-j", "1", "-q").exit_code == 0
    r = _run("plan", "--db", str(fresh))
    assert r.exit_code == 2
    assert "Catalog Error" not in r.output and "Table with name" not in r.output
    assert "run `gantry anonymize` first" in r.stderr
    r = _run("sql", "SELECT * FROM nope", "--db", str(db))
    assert r.exit_code == 2 and "Catalog Error" not in r.output and "`nope`" in r.stderr


def test_logs_and_input_warnings_go_to_stderr_counted(db: Path) -> None:
    @cli.command("_warn_test", hidden=True)
    def _warn_test() -> None:
        warnings.warn("Invalid value for VR UI: '<masked>'", UserWarning, stacklevel=1)
        warnings.warn("Invalid value for VR UI: '<masked>'", UserWarning, stacklevel=1)
        logging.getLogger("gantry.test").info("an info line")
        click.echo("the result")

    try:
        r = _run("_warn_test")
        assert r.stdout == "the result\n"
        assert "2 warning(s) about the input files" in r.stderr
        assert "an info line" not in r.stderr
        r = _run("_warn_test", "-v")
        assert r.stdout == "the result\n"
        assert r.stderr.count("Invalid value for VR UI") == 2 and "an info line" in r.stderr
        r = _run("_warn_test", "-q")
        assert r.stderr == ""
    finally:
        del cli.commands["_warn_test"]


def test_config_check(tmp_path: Path) -> None:
    good = tmp_path / "good.yaml"
    assert _run("config", "init", str(good)).exit_code == 0
    r = _run("config", "check", str(good), "--json")
    assert r.exit_code == 0 and json.loads(r.stdout)["ok"] is True
    bad = tmp_path / "bad.yaml"
    bad.write_text("privacy_profile: basci\n")
    r = _run("config", "check", str(bad))
    assert r.exit_code == 2 and "`privacy_profile`" in r.stderr and "did you mean" in r.stderr


def test_machines_suggest_writes_a_loadable_stub(db: Path, tmp_path: Path) -> None:
    out = tmp_path / "machines.yaml"
    r = _run("machines", "suggest", "--db", str(db), "--out", str(out))
    assert r.exit_code == 0, r.output
    entries = yaml.safe_load(out.read_text())["machines"]
    assert entries, out.read_text()
    for entry in entries:
        assert set(entry["match"]) >= {"manufacturer", "rows", "columns"}
        assert entry["redaction_zones"] == []
    cfg = load_config({"machines": entries})
    assert len(cfg.machines) == len(entries)


def test_tables_say_what_they_cut() -> None:
    df = pl.DataFrame({"n": range(300), "reason": ["x" * 200] * 300})
    text = format_table(df)
    assert "200 of 300 rows shown" in text and "x" * 200 not in text
    wide = format_table(df, wide=True)
    assert "rows shown" not in wide and "x" * 200 in wide
    many = pl.DataFrame({f"column_{i}": ["value"] for i in range(60)})
    text = format_table(many)
    assert "of 60 columns shown" in text
    assert all(len(line) <= 170 for line in text.splitlines())


def test_failures_are_grouped_by_reason_with_source_paths_beside(tmp_path: Path) -> None:
    # two files whose pixel data is cut short by different amounts, in folders named
    # like patients: one reason row, no path or size in it; --wide lists each file
    for i, (folder, keep) in enumerate((("DOE^JOHN", 3), ("SMITH^ANNA", 5))):
        ds = make_instance(modality="CT", SOPInstanceUID=f"1.2.826.0.1.99.{i}")
        ds.PixelData = ds.PixelData[: len(ds.PixelData) // keep]
        (tmp_path / "in" / folder).mkdir(parents=True)
        ds.save_as(tmp_path / "in" / folder / "a.dcm")
    db = str(tmp_path / "p.db")
    assert _run("ingest", str(tmp_path / "in"), "--db", db, "-j", "1", "-q").exit_code == 0
    r = _run("export", str(tmp_path / "out"), "--db", db, "-j", "1", "-q",
             "--compression", "j2k", "--json")  # fmt: skip
    assert r.exit_code == 1
    doc = json.loads(r.stdout)
    assert doc["failed"] == 2 and doc["exported"] == 0
    failed = doc["failed_instances"]
    assert len(failed) == 1 and failed[0]["instances"] == 2, failed
    reason = failed[0]["reason"]
    assert "truncated" in reason and "bytes" not in reason
    assert "DOE" not in reason and "SMITH" not in reason and "/" not in reason
    assert "DOE^JOHN" in failed[0]["for example"]
    r = _run("export", str(tmp_path / "out2"), "--db", db, "-j", "1", "--compression", "j2k",
             "--wide", "--json")  # fmt: skip
    each = json.loads(r.stdout)["failed_instances"]
    assert len(each) == 2 and all("bytes" in row["detail"] for row in each)
    assert {Path(row["source_path"]).parent.name for row in each} == {"DOE^JOHN", "SMITH^ANNA"}
    r = _run("export", str(tmp_path / "out3"), "--db", db, "-j", "1", "--compression", "j2k")
    assert "FAILED" in r.stderr and "FAILED" not in r.stdout  # the header and its table
