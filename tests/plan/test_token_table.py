"""The verification tokens anonymize stores beside the plan are the ones gathering gives."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from gantry import Session
from gantry.config import load_config
from gantry.export._verification import token_frame
from gantry.plan._token_table import TABLE, tokens_for
from gantry.testing import make_corpus

_KEY = ["file_id", "text", "identity", "tag"]


@pytest.fixture
def session(tmp_path: Path) -> Session:
    make_corpus(
        tmp_path / "dicom",
        patients=2,
        studies_per_patient=1,
        series_per_study=2,
        instances_per_series=2,
        canaries=True,
    )
    s = Session(tmp_path / "s.db")
    s.ingest(tmp_path / "dicom", workers=1, progress=False)
    s.anonymize(None)
    return s


def _same(a: pl.DataFrame, b: pl.DataFrame) -> bool:
    return a.sort(_KEY).equals(b.sort(_KEY))


def test_stored_tokens_are_the_gathered_ones(session: Session) -> None:
    store, cfg = session.store, session.stored_config()
    plan = store.scan("plan").collect()
    stored = store.scan(TABLE).collect()
    assert stored.height > 0
    assert _same(stored, token_frame(store, plan, cfg))
    assert _same(tokens_for(store, plan, cfg), token_frame(store, plan, cfg))
    one = plan.filter(pl.col("file_id") == plan["file_id"][0])
    assert _same(tokens_for(store, one, cfg), token_frame(store, one, cfg))
    session.close()


def test_a_plan_edited_after_anonymize_has_its_tokens_gathered_again(session: Session) -> None:
    """A row added to one instance's plan (a kept value now removed) makes that value a
    token: the stored tokens of that instance are stale and not used."""
    store, cfg = session.store, session.stored_config()
    plan = store.scan("plan").collect()
    fid = plan["file_id"][0]
    kept = (
        store.scan("elements")
        .filter((pl.col("file_id") == fid) & pl.col("vr").is_in(["LO", "SH", "CS"]))
        .filter(pl.col("value").str.len_bytes() >= 6)
        .collect()
        .join(plan, on=["file_id", "path"], how="anti")
    )
    assert kept.height > 0
    row = kept.row(0, named=True)
    added = pl.DataFrame(
        [(fid, row["path"], row["tag"], row["keyword"], row["vr"], "X", None, "edited")],
        schema=plan.schema,
        orient="row",
    )
    store.write_table_parts("plan", [pl.concat([plan, added])])
    edited = store.scan("plan").collect()
    got = tokens_for(store, edited, cfg)
    assert _same(got, token_frame(store, edited, cfg))
    mine = got.filter(pl.col("file_id") == fid)["text"].to_list()
    assert row["value"].strip().upper() in mine
    assert row["value"].strip().upper() not in (
        store.scan(TABLE).filter(pl.col("file_id") == fid).collect()["text"].to_list()
    )
    session.close()


def test_another_acknowledgement_gathers_every_token_again(session: Session) -> None:
    store = session.store
    plan = store.scan("plan").collect()
    tok = store.scan(TABLE).filter(~pl.col("identity")).collect().row(0, named=True)
    cfg = load_config(
        {"acknowledged": [{"attribute": tok["keyword"], "value_hash": tok["digest"]}]}
    )
    got = tokens_for(store, plan, cfg)
    assert _same(got, token_frame(store, plan, cfg))
    assert got.filter(pl.col("digest") == tok["digest"]).height == 0
    session.close()
