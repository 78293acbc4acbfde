"""make_synthetic_index writes shards shaped exactly like ingest's (docs/internals.md)."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from gantry.ingest._ids import file_id
from gantry.store import Store
from gantry.testing._synthetic_index import (
    ELEMENTS_SCHEMA,
    REQUIRED_KEYWORDS,
    SKIPPED_SCHEMA,
    _arrow_type,
    make_synthetic_index,
)

FIXED = {
    "file_id": pa.int64(),
    "file_path": pa.string(),
    "file_size": pa.int64(),
    "file_mtime": pa.float64(),
    "transfer_syntax": pa.string(),
    "pixel_offset": pa.int64(),
    "pixel_length": pa.int64(),
    "parser": pa.string(),
}


@pytest.fixture(scope="module")
def store_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("si")
    with Store(root / "s.db") as store:
        make_synthetic_index(store, 1_000, instances_per_series=40, batch_rows=400, seed=3)
    return root


def test_schemas_follow_the_contract(store_dir: Path) -> None:
    batches = sorted((store_dir / "s.gantry" / "batches").iterdir())
    assert len(batches) == 3  # 400 + 400 + 200
    for batch in batches:
        inst = pq.read_schema(batch / "instances.parquet")
        for name, typ in FIXED.items():
            assert inst.field(name).type == typ
        for name in inst.names[len(FIXED) :]:
            assert inst.field(name).type == _arrow_type(name), name
        assert set(REQUIRED_KEYWORDS) <= set(inst.names)
        assert pq.read_schema(batch / "elements.parquet").remove_metadata() == ELEMENTS_SCHEMA
        assert pq.read_schema(batch / "skipped.parquet").remove_metadata() == SKIPPED_SCHEMA


def test_counts_hierarchy_and_consistency(store_dir: Path) -> None:
    with Store(store_dir / "s.db", read_only=True) as store:
        row = store.sql(
            "SELECT count(*) AS n, count(DISTINCT SeriesInstanceUID) AS series,"
            " count(DISTINCT StudyInstanceUID) AS studies, count(DISTINCT PatientID) AS patients,"
            " count(DISTINCT SOPInstanceUID) AS sops, count(DISTINCT file_id) AS fids,"
            " (SELECT count(*) FROM elements) AS elements FROM instances"
        ).row(0, named=True)
        assert row == {
            "n": 1000, "series": 25, "studies": 9, "patients": 5, "sops": 1000, "fids": 1000,
            "elements": 60_000,
        }  # fmt: skip
        paths = store.sql("SELECT file_id, file_path FROM instances LIMIT 20")
        assert all(file_id(p) == f for f, p in paths.iter_rows())
        # every public top-level element with a text or numeric VR is also a column
        inst = store.scan("instances").collect()
        top = store.sql(
            "SELECT DISTINCT keyword FROM elements WHERE depth = 0 AND private_creator IS NULL"
            " AND vr NOT IN ('SQ', 'OB', 'OW', 'UN')"
        )["keyword"].to_list()
        assert set(top) <= set(inst.columns)
        one = inst.row(0, named=True)
        elems = store.sql("SELECT path, value FROM elements WHERE file_id = ?", [one["file_id"]])
        values = dict(elems.iter_rows())
        assert values["00100010"] == one["PatientName"]
        assert values["00080020"] == one["StudyDate"].strftime("%Y%m%d")
        spacing = one["PixelSpacing"]
        assert values["00280030"] == ("\\".join(map(str, spacing)) if spacing else None)
        # PHI in private elements and in nested sequences
        assert one["PatientName"] in values["00091001"]
        assert values["00080096[0].00401101[0].00080104"] == one["ReferringPhysicianName"]
        assert values["00101002[0].00100020"].startswith("MRN")


@pytest.mark.parametrize(("k", "expected"), [(45, 45), (10, len(REQUIRED_KEYWORDS)), (300, 300)])
def test_elements_per_instance(tmp_path: Path, k: int, expected: int) -> None:
    with Store(tmp_path / "s.db") as store:
        make_synthetic_index(store, 20, elements_per_instance=k)
        per = store.sql("SELECT count(*) AS n FROM elements GROUP BY file_id")["n"].unique()
        assert per.to_list() == [expected]
        dup = store.sql("SELECT file_id, path FROM elements GROUP BY ALL HAVING count(*) > 1")
        assert dup.height == 0


def test_same_seed_same_index(tmp_path: Path, store_dir: Path) -> None:
    with Store(tmp_path / "s.db") as store:
        make_synthetic_index(store, 1_000, instances_per_series=40, batch_rows=400, seed=3)
        again = store.scan("instances").collect().sort("file_id")
    with Store(store_dir / "s.db", read_only=True) as store:
        first = store.scan("instances").collect().sort("file_id")
    assert again.equals(first)
    assert isinstance(first, pl.DataFrame)
