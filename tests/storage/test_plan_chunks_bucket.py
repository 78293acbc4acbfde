"""The plan built in chunks when the session's tables live in a bucket (moto S3)."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from gantry import Session
from gantry.plan import PLAN_SCHEMA, build_plan
from gantry.plan._chunks import plan_chunks
from gantry.testing import Corpus
from gantry.testing._s3 import S3Bucket


def _ordered(plan: pl.DataFrame) -> pl.DataFrame:
    return plan.sort(list(PLAN_SCHEMA), nulls_last=True)


def test_chunked_plan_in_a_bucket_equals_the_whole_plan(
    s3: S3Bucket, corpus: Corpus, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with Session(tmp_path / "remote.db", data=f"s3://{s3.bucket}/tables") as s:
        s.ingest(corpus.root, workers=1, progress=False)
        inst = s.sql("SELECT file_id, PatientID FROM instances")
        assert len(plan_chunks(s.store, inst, 3)) > 2
        whole = build_plan(s.store, _defaults(), persist=False, chunk_rows=10**9)
        monkeypatch.setattr("gantry.plan._chunks.PLAN_CHUNK_ROWS", 3)
        s.anonymize(None)
        parts = s.sql("SELECT rel FROM parquet_parts WHERE table_name = 'plan'")["rel"]
        assert parts.len() > 2
        # rel is relative to the data root, s3://bucket/tables
        assert all(k.startswith("tables/plan/") for k in parts)
        assert set(s3.keys("tables/tables/plan/")) == {f"tables/{r}" for r in parts}
        stored = s.sql("SELECT * FROM plan").cast(PLAN_SCHEMA)
        assert_frame_equal(_ordered(stored), _ordered(whole))
        # a second plan replaces every part of the first (none left listed or in the bucket)
        s.anonymize(None)
        again = s.sql("SELECT rel FROM parquet_parts WHERE table_name = 'plan'")["rel"]
        assert set(again).isdisjoint(parts)
        assert set(s3.keys("tables/tables/plan/")) == {f"tables/{r}" for r in again}


def _defaults() -> object:
    from gantry.config import load_config

    return load_config(None)
