"""The session store: layout, lock, schema version, atomic tables, runs."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import polars as pl
import pytest

from gantry.errors import QueryError, SchemaVersionError, StoreError, StoreLockedError
from gantry.store import SCHEMA_VERSION, Store


def test_new_store_has_layout_and_empty_tables(tmp_path: Path) -> None:
    with Store(tmp_path / "p.db") as s:
        assert (tmp_path / "p.db").exists()
        assert (tmp_path / "p.gantry" / "batches").is_dir()
        for name in ("instances", "elements", "skipped", "patients", "studies", "series", "runs"):
            assert s.sql(f"SELECT count(*) AS n FROM {name}")["n"][0] == 0
        assert s.get_meta("schema_version") == str(SCHEMA_VERSION)
        assert len(s.secret) == 32


def test_secret_is_stable_across_reopen(tmp_path: Path) -> None:
    with Store(tmp_path / "p.db") as s:
        secret = s.secret
    with Store(tmp_path / "p.db") as s:
        assert s.secret == secret


def test_second_writer_in_same_process_is_refused(tmp_path: Path) -> None:
    with Store(tmp_path / "p.db"):
        with pytest.raises(StoreLockedError) as info:
            Store(tmp_path / "p.db")
        assert "p.db" in str(info.value)


def test_second_writer_in_other_process_is_refused(tmp_path: Path) -> None:
    code = textwrap.dedent(
        f"""
        from gantry.store import Store
        from gantry.errors import StoreLockedError
        try:
            Store({str(tmp_path / "p.db")!r})
        except StoreLockedError:
            raise SystemExit(3)
        raise SystemExit(0)
        """
    )
    with Store(tmp_path / "p.db"):
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=60)
    assert proc.returncode == 3, proc.stderr.decode()


def test_lock_released_on_close(tmp_path: Path) -> None:
    Store(tmp_path / "p.db").close()
    Store(tmp_path / "p.db").close()


def test_incompatible_schema_version_is_a_clear_error(tmp_path: Path) -> None:
    with Store(tmp_path / "p.db") as s:
        s.set_meta("schema_version", str(SCHEMA_VERSION + 41))
    with pytest.raises(SchemaVersionError) as info:
        Store(tmp_path / "p.db")
    assert info.value.found == SCHEMA_VERSION + 41


def test_write_table_replace_and_append(tmp_path: Path) -> None:
    with Store(tmp_path / "p.db") as s:
        s.write_table("findings", pl.DataFrame({"a": [1, 2]}))
        s.write_table("findings", pl.DataFrame({"a": [3]}))
        assert s.sql("SELECT a FROM findings")["a"].to_list() == [3]
        s.write_table("findings", pl.DataFrame({"a": [4]}), mode="append")
        assert sorted(s.sql("SELECT a FROM findings")["a"].to_list()) == [3, 4]
        assert sorted(s.scan("findings").collect()["a"].to_list()) == [3, 4]
    with Store(tmp_path / "p.db") as s:  # views come back on reopen
        assert sorted(s.sql("SELECT a FROM findings")["a"].to_list()) == [3, 4]
        s.drop_table("findings")
        assert "findings" not in s.table_names()


def test_ingest_tables_cannot_be_overwritten(tmp_path: Path) -> None:
    with Store(tmp_path / "p.db") as s, pytest.raises(StoreError):
        s.write_table("instances", pl.DataFrame({"a": [1]}))


def test_bad_sql_is_a_query_error(tmp_path: Path) -> None:
    with Store(tmp_path / "p.db") as s, pytest.raises(QueryError) as info:
        s.sql("SELEC nothing")
    assert "SELEC" in str(info.value)


def test_runs_record_success_and_failure(tmp_path: Path) -> None:
    with Store(tmp_path / "p.db") as s:
        with s.run("demo", {"k": 1}) as counts:
            counts["n"] = 5
        with pytest.raises(RuntimeError), s.run("broken"):
            raise RuntimeError("boom")
        runs = s.sql("SELECT kind, counts, details FROM runs ORDER BY started_at")
    assert runs["kind"].to_list() == ["demo", "broken"]
    assert '"n": 5' in runs["counts"][0]
    assert "RuntimeError" in runs["details"][1]


def test_leftover_staging_is_removed_on_open(tmp_path: Path) -> None:
    with Store(tmp_path / "p.db") as s:
        stage = s.stage_dir("batch")
        (stage / "instances.parquet").write_bytes(b"half")
    with Store(tmp_path / "p.db") as s:
        assert not stage.exists()
        assert s.sql("SELECT count(*) AS n FROM instances")["n"][0] == 0


def test_read_only_store_refuses_writes(tmp_path: Path) -> None:
    Store(tmp_path / "p.db").close()
    with Store(tmp_path / "p.db", read_only=True) as s:
        assert s.sql("SELECT count(*) AS n FROM instances")["n"][0] == 0
        with pytest.raises(StoreError):
            s.write_table("x", pl.DataFrame({"a": [1]}))


def test_read_only_missing_store_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(StoreError):
        Store(tmp_path / "missing.db", read_only=True)
