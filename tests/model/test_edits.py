"""Metadata edits and soft deletes: in memory, saved atomically, restored on reopen."""

from __future__ import annotations

import datetime as dt
import json
import threading
from pathlib import Path

import pytest

from gantry import Session
from gantry.errors import ConfigError, StoreError
from gantry.model import excluded_file_ids, load_edits
from gantry.testing._synthetic_index import make_synthetic_index


@pytest.fixture()
def db(tmp_path: Path) -> Path:
    with Session(tmp_path / "s.db") as s:
        make_synthetic_index(s.store, 1_200, patients=3, instances_per_series=50, batch_rows=600)
    return tmp_path / "s.db"


def test_set_delete_revert_roundtrip(db: Path) -> None:
    with Session(db) as s:
        inst = s.instances()[10]
        sop, original_desc = inst.sop_instance_uid, inst.series_description
        inst.set("PatientName", "DOE^JANE")
        inst.set("StudyDate", "2020-01-02")
        inst.set("PixelSpacing", [0.5, "0.25"])
        inst.set("00091001", "private text", vr="LO")
        inst.delete("InstitutionName")
        inst.set("SeriesDescription", "TEMP")
        inst.revert("SeriesDescription")
        # visible at once, typed like the index columns
        assert inst.patient_name == "DOE^JANE" and inst["PatientName"] == "DOE^JANE"
        assert inst.study_date == dt.date(2020, 1, 2)
        assert inst.pixel_spacing == [0.5, 0.25]
        assert inst.get("InstitutionName") is None and "InstitutionName" not in inst
        assert inst.series_description == original_desc
        assert inst.edits["PatientName"] == "DOE^JANE"
        assert s.pending_edits == 6
        result = s.save()
        assert result.edits == 6 and s.pending_edits == 0  # the latest edit per element
    with Session(db, read_only=True) as s:
        inst = s.instance(sop)
        assert inst.patient_name == "DOE^JANE"
        assert inst.study_date == dt.date(2020, 1, 2)
        assert inst.pixel_spacing == [0.5, 0.25]
        assert inst.get("00091001") == "private text"
        assert inst.get("InstitutionName", "gone") == "gone"
        assert inst.series_description == original_desc
        # other instances are untouched; the index itself is never rewritten
        assert s.instances()[11].patient_name != "DOE^JANE"
        assert (
            s.sql("SELECT PatientName FROM instances WHERE SOPInstanceUID = ?", [sop]).item()
            != "DOE^JANE"
        )
        # the export stage's view: latest version per (file_id, tag), DICOM-ready JSON
        edits = load_edits(s.store)
        mine = {r["keyword"] or r["tag"]: r for r in edits.iter_rows(named=True)}
        assert set(mine) == {
            "PatientName",
            "StudyDate",
            "PixelSpacing",
            "00091001",
            "InstitutionName",
        }
        assert json.loads(mine["StudyDate"]["value"]) == "20200102"
        assert json.loads(mine["PixelSpacing"]["value"]) == [0.5, 0.25]
        assert mine["InstitutionName"]["op"] == "delete"
        runs = s.sql("SELECT kind, counts FROM runs WHERE kind = 'save'")
        assert json.loads(runs["counts"][0])["edits"] == 6


@pytest.mark.parametrize(
    ("key", "value", "match"),
    [
        ("StudyDate", "yesterday", "a date"),
        ("Rows", "many", "an integer"),
        ("SliceThickness", [1.0, 2.0], "single value"),
        ("PixelData", b"\0", "pixel_array"),
        ("ReferencedImageSequence", [], "cannot be edited"),
        ("TransferSyntaxUID", "1.2.840.10008.1.2", "file meta"),
        ("0040A730[0].0040A123", "x", "nested"),
        ("00091001", "x", "vr="),
        ("PatientNmae", "x", "did you mean"),
    ],
)
def test_bad_edits_are_refused_before_anything_is_recorded(
    db: Path, key: str, value: object, match: str
) -> None:
    with Session(db) as s:
        s.instances()[0].get("Rows")  # warm up: nothing below may change the log
        with pytest.raises(ConfigError, match=match):
            s.edit(where=None, set={"InstitutionName": "OK", key: value})
        assert s.pending_edits == 0


def test_bulk_edit_by_query_and_by_node(db: Path) -> None:
    with Session(db) as s:
        n_ct = s.sql("SELECT count(*) FROM instances WHERE Modality = 'CT'").item()
        assert s.edit(where="Modality = 'CT'", set={"InstitutionName": "ANON"}) == n_ct
        series = s.patients[0].studies[0].series[0]
        assert series.set("SeriesDescription", "RENAMED") == len(series.instances)
        assert s.patients[1].delete("PatientAddress") == len(s.patients[1].instances)
        s.save()
        run = s.sql("SELECT counts, details FROM runs WHERE kind = 'edit'").row(0)
        assert json.loads(run[0]) == {"instances": n_ct, "edits": n_ct}
        assert json.loads(run[1]) == {"set": ["InstitutionName"], "delete": []}
    with Session(db, read_only=True) as s:
        names = {i.institution_name for i in s.instances(where="Modality = 'CT'")}
        assert names == {"ANON"}
        assert {i.series_description for i in s.patients[0].studies[0].series[0].instances} == {
            "RENAMED"
        }
        assert all(i.get("PatientAddress") is None for i in s.patients[1].instances)


def test_soft_delete_roundtrip(db: Path) -> None:
    with Session(db) as s:
        study = s.patients[2].studies[0]
        fids = set(study.file_ids.tolist())
        study.exclude("consent withdrawn")
        one = s.patients[0].instances[0]
        one.exclude("duplicate")
        assert one.excluded and one.exclusion_reason == "duplicate"
        assert s.save().exclusions == len(fids) + 1
        assert excluded_file_ids(s.store) == fids | {one.file_id}
    with Session(db) as s:
        one = s.patients[0].instances[0]
        assert one.excluded and one.exclusion_reason == "duplicate"
        assert all(i.excluded for i in s.patients[2].studies[0].instances)
        one.restore()
        assert not one.excluded
        s.save()
        assert one.file_id not in excluded_file_ids(s.store)
    with Session(db, read_only=True) as s:
        assert not s.patients[0].instances[0].excluded
        assert len(excluded_file_ids(s.store)) == len(fids)


def test_threads_editing_different_instances_lose_nothing(db: Path) -> None:
    with Session(db) as s:
        instances = list(s.instances()[:400])
        n_threads = 8
        chunks = [instances[i::n_threads] for i in range(n_threads)]
        start = threading.Barrier(n_threads + 1)

        def work(k: int) -> None:
            start.wait()
            for rep in range(3):
                for inst in chunks[k]:
                    inst.set("PatientName", f"T{k}^R{rep}^{inst.file_id}")
                    inst.set("AccessionNumber", f"A{k}{rep}")

        threads = [threading.Thread(target=work, args=(k,)) for k in range(n_threads)]
        for t in threads:
            t.start()
        start.wait()
        while any(t.is_alive() for t in threads):  # saves race with the editing threads
            s.save()
        for t in threads:
            t.join()
        s.save()
        assert s.pending_edits == 0
        expected = {
            inst.file_id: (f"T{k}^R2^{inst.file_id}", f"A{k}2")
            for k in range(n_threads)
            for inst in chunks[k]
        }
    with Session(db, read_only=True) as s:
        got = {i.file_id: (i.patient_name, i.accession_number) for i in s.instances()[:400]}
        assert got == expected
        versions = s.sql("SELECT file_id, max(version) AS v, count(*) AS n FROM edits GROUP BY 1")
        assert versions["v"].to_list() == [6] * 400  # 3 reps × 2 tags, one counter per instance
        assert versions["n"].max() <= 6


def test_versions_continue_after_reopen(db: Path) -> None:
    with Session(db) as s:
        inst = s.instances()[0]
        inst.set("PatientName", "FIRST")
        s.save()
    with Session(db) as s:
        inst = s.instances()[0]
        inst.set("PatientName", "SECOND")
        s.save()
        rows = s.sql("SELECT version, value FROM edits ORDER BY version")
        assert rows.rows() == [(1, '"FIRST"'), (2, '"SECOND"')]
        assert load_edits(s.store)["value"].to_list() == ['"SECOND"']


def test_save_on_read_only_session_fails_cleanly(db: Path) -> None:
    with Session(db, read_only=True) as s:
        s.instances()[0].set("PatientName", "X")
        with pytest.raises(StoreError):
            s.save()
        assert s.pending_edits == 1


def test_saving_nothing_is_a_noop(db: Path) -> None:
    with Session(db) as s:
        result = s.save()
        assert result.edits == 0 and result.pixel_edits == 0
        assert s.compact() == 0
        assert "edits" not in s.tables() or load_edits(s.store).height == 0
