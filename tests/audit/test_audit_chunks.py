"""The audit cut in chunks of element rows finds exactly what whole-table queries find."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import polars as pl
import pytest

from gantry.audit import _report, audit, save_findings, unresolved
from gantry.audit._chunks import element_chunks
from gantry.audit._plugins import findings_schema, plugin_rules
from gantry.audit._report import _context, _unresolved_of, findings_queries
from gantry.store import Store
from gantry.testing._synthetic_index import make_synthetic_index

CHUNK_ROWS = 1_000


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Store]:
    path = tmp_path_factory.mktemp("chunks") / "s.db"
    with Store(path) as s:
        make_synthetic_index(
            s, 600, instances_per_series=50, elements_per_instance=40, batch_rows=250
        )
        yield s


def _sorted(df: pl.DataFrame) -> pl.DataFrame:
    return df.with_columns(pl.all().cast(pl.String)).sort(df.columns)


def test_chunks_tile_every_batch(store: Store) -> None:
    chunks = element_chunks(store, CHUNK_ROWS)
    assert chunks is not None
    files = {c.elements for c in chunks}
    assert len(files) == 3  # one elements file per batch
    assert len(chunks) == 24
    assert all(0 < c.length <= CHUNK_ROWS for c in chunks)
    total = store.sql("SELECT count(*) FROM elements").item()
    assert sum(c.length for c in chunks) == total
    for f in files:
        mine = sorted((c.offset, c.length) for c in chunks if c.elements == f)
        assert mine[0][0] == 0
        assert all(a + n == b for (a, n), (b, _) in zip(mine, mine[1:], strict=False))
        assert {c.instances for c in chunks if c.elements == f} == {store.sibling(f, "instances")}


def test_chunked_audit_equals_the_whole_table_queries(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_report, "AUDIT_CHUNK_ROWS", CHUNK_ROWS)
    # keeping the physicians' and operators' names leaves high findings unresolved
    ctx = _context({"keep": ["0008,0090", "0008,1070"]})
    schema = findings_schema(plugin_rules())
    whole = pl.concat([q.cast(schema).collect() for q in findings_queries(store, ctx)])
    report = audit(store, ctx)
    assert len(report._parts) > 10  # many chunks, each spilled apart (if it found anything)
    assert len(report) == whole.height > 0
    assert _sorted(report.to_polars()).equals(_sorted(whole))
    # the export's gate, chunked too, agrees with the whole-table answer and the report
    blocked = unresolved(store, ctx)
    assert blocked.height > 0
    assert blocked.equals(_unresolved_of(findings_queries(store, ctx, kept_only=True)))
    assert blocked.equals(report.unresolved())


def test_save_findings_writes_a_chunked_report_part_by_part(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_report, "AUDIT_CHUNK_ROWS", CHUNK_ROWS)
    report = audit(store, {"keep": ["0008,0090"]})
    written = save_findings(store, report)
    assert written == len(report)
    assert len(store.files_of("findings")) == len(report._parts)
    saved = store.scan("findings").collect()
    assert saved.schema == report.to_polars().schema
    assert _sorted(saved).equals(_sorted(report.to_polars()))
    counts = store.sql(
        "SELECT counts FROM runs WHERE kind = 'audit' ORDER BY finished_at DESC LIMIT 1"
    ).item()
    saved_ids = saved["file_id"].n_unique()
    assert json.loads(counts)["findings"] == written
    assert json.loads(counts)["instances"] == saved_ids
    blocked = report.unresolved()["file_id"].n_unique()
    assert json.loads(counts)["unresolved_instances"] == blocked


def test_an_empty_store_is_audited_whole(tmp_path: Path) -> None:
    with Store(tmp_path / "s.db") as s:
        assert element_chunks(s) is None
        report = audit(s)
        assert len(report) == 0
        assert save_findings(s, report) == 0
