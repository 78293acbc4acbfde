"""The plan built a few instances at a time is the plan built in one piece, row for row."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from gantry import Session
from gantry.config import load_config
from gantry.plan import PLAN_SCHEMA, build_plan
from gantry.plan._chunks import plan_chunks
from gantry.testing import make_instance
from gantry.testing._synthetic_index import make_synthetic_index

STUDY = "1.2.826.0.1.3680043.10.543.777.1"
DUPLICATE_SOP = "1.2.826.0.1.3680043.10.543.777.2.1"
KEPT_REFERENCE = "00081155"  # Referenced SOP Instance UID: kept by the config ...


def _reference_to(uid: str) -> Sequence:
    item = Dataset()
    item.ReferencedSOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
    item.ReferencedSOPInstanceUID = uid  # ... but it names a UID remapped in another batch
    return Sequence([item])


def _corpus(tmp_path: Path) -> Session:
    """Synthetic batches (patients and studies spread over batches) plus DICOM files
    ingested in three runs: one patient and one study in every run, a SOP Instance
    UID held by three files, and a kept reference to a UID remapped elsewhere."""
    session = Session(tmp_path / "s.db")
    make_synthetic_index(
        session.store,
        240,
        patients=9,
        instances_per_series=7,
        elements_per_instance=40,
        batch_rows=60,
    )
    for run in range(3):
        folder = tmp_path / f"run{run}"
        folder.mkdir()
        for i in range(4):
            sop = DUPLICATE_SOP if i == 0 else f"1.2.826.0.1.3680043.10.543.777.3.{run}.{i}"
            make_instance(
                folder / f"{i}.dcm",
                PatientID="GANTRY-CHUNK-1",
                PatientName="CHUNKER^ALICE",
                StudyInstanceUID=STUDY,
                SeriesInstanceUID=f"{STUDY}.{run}",
                SOPInstanceUID=sop,
                StudyDate="20200102",
                InstitutionName="Chunk General",
                ReferencedImageSequence=_reference_to(
                    f"1.2.826.0.1.3680043.10.543.777.3.{(run + 1) % 3}.1"
                ),
                seed=run * 10 + i,
            )
        session.ingest(folder, workers=1, progress=False)
    return session


def _config() -> object:
    return load_config(
        {
            "keep": [KEPT_REFERENCE],
            "options": ["clean-descriptors", "retain-longitudinal-modified-dates"],
        }
    )


def _ordered(plan: pl.DataFrame) -> pl.DataFrame:
    return plan.sort(list(PLAN_SCHEMA), nulls_last=True)


@pytest.mark.parametrize("chunk_rows", [7, 50])
def test_chunked_plan_equals_the_whole_plan(tmp_path: Path, chunk_rows: int) -> None:
    with _corpus(tmp_path) as s:
        cfg = _config()
        inst = s.sql("SELECT file_id, PatientID FROM instances")
        chunks = plan_chunks(s.store, inst, chunk_rows)
        assert len(chunks) > 3
        # a batch larger than a chunk is cut into file_id ranges
        assert any(c.lo is not None or c.hi is not None for c in chunks) == (chunk_rows < 60)
        # the patient of the files is in several chunks: each of its three 4-file batches is a
        # chunk of its own when a chunk holds fewer than 8 instances; with larger chunks the
        # small batches share one when their (random) batch names sort them side by side
        seen = [c for c in chunks if inst.filter(pl.col("file_id").is_in(c.file_ids.implode()))
                .filter(pl.col("PatientID") == "GANTRY-CHUNK-1").height]  # fmt: skip
        assert len(seen) >= (3 if chunk_rows < 8 else 1)

        whole = build_plan(s.store, cfg, persist=False, chunk_rows=10**9)
        chunked = build_plan(s.store, cfg, persist=False, chunk_rows=chunk_rows)
        assert whole.height > 5000
        # the corpus exercises what needs the whole index
        assert whole.filter(pl.col("rule") == "uid-reference").height >= 12
        assert whole.filter(pl.col("action") == "P")["new_value"].n_unique() == 10
        assert_frame_equal(_ordered(chunked), _ordered(whole))


def test_anonymize_writes_the_plan_in_parts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with _corpus(tmp_path) as s:
        cfg = _config()
        whole = build_plan(s.store, cfg, persist=False, chunk_rows=10**9)
        monkeypatch.setattr("gantry.plan._chunks.PLAN_CHUNK_ROWS", 25)
        summary = s.anonymize(cfg)
        assert len(s.store.files_of("plan")) > 3
        stored = s.sql("SELECT * FROM plan").cast(PLAN_SCHEMA)
        assert_frame_equal(_ordered(stored), _ordered(whole))
        expected = whole.group_by("action", "rule").len("rows")
        assert_frame_equal(summary, expected, check_row_order=False)
        counts = json.loads(s.sql("SELECT counts FROM runs WHERE kind = 'anonymize'")["counts"][0])
        assert counts["rows"] == whole.height
        assert counts["instances"] == whole["file_id"].n_unique()
        # the same SOP Instance UID in three batches: one file exported, two excluded
        dup = s.sql("SELECT count(*) AS n FROM plan_coverage WHERE status = 'excluded'")["n"][0]
        assert dup == 2


def test_empty_index_writes_an_empty_plan(tmp_path: Path) -> None:
    (tmp_path / "none").mkdir()
    with Session(tmp_path / "s.db") as s:
        s.ingest(tmp_path / "none", workers=1, progress=False)
        summary = s.anonymize(None)
        assert summary.height == 0
        assert s.sql("SELECT * FROM plan").height == 0


def test_a_series_defaced_across_chunks_is_fitted_whole(tmp_path: Path) -> None:
    pytest.importorskip("scipy", reason="pip install 'gantry[deface]'")
    from gantry.testing import make_head_phantom, write_head_series

    head = make_head_phantom(size=48, spacing=5.0, noise=10)
    write_head_series(tmp_path / "dicom", head, seed=1)
    with Session(tmp_path / "s.db") as s:
        s.ingest(tmp_path / "dicom", workers=1, progress=False)
        uid = s.sql("SELECT DISTINCT SeriesInstanceUID FROM instances")["SeriesInstanceUID"][0]
        cfg = load_config({"deface": {"series": [uid]}})
        inst = s.sql("SELECT file_id, PatientID FROM instances")
        assert len(plan_chunks(s.store, inst, 10)) > 2  # the series is in several chunks
        chunked = build_plan(s.store, cfg, persist=False, chunk_rows=10)
        whole = build_plan(s.store, cfg, persist=False, chunk_rows=10**9)
        defaced = chunked.filter(pl.col("action") == "DEFACE")
        assert defaced.height == inst.height
        assert defaced["new_value"].n_unique() == 1  # one plane for the whole series
        assert_frame_equal(_ordered(chunked), _ordered(whole))
