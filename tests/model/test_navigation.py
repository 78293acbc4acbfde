"""Navigation: Patient ▸ Study ▸ Series ▸ Instance over an ingested corpus and a synthetic index."""

from __future__ import annotations

import builtins
import datetime as dt
import shutil
from pathlib import Path

import numpy as np
import polars as pl
import pydicom
import pytest

from gantry import Session
from gantry.errors import ConfigError, QueryError
from gantry.model import Instance, Patient
from gantry.testing import Corpus, make_corpus, make_instance
from gantry.testing._synthetic_index import make_synthetic_index


@pytest.fixture(scope="module")
def corpus_db(tmp_path_factory: pytest.TempPathFactory) -> tuple[Corpus, Path]:
    root = tmp_path_factory.mktemp("nav")
    corpus = make_corpus(
        root / "dicom", patients=3, studies_per_patient=2, series_per_study=2,
        instances_per_series=2, compressed=False, multiframe=False,
    )  # fmt: skip
    with Session(root / "s.db") as s:
        s.ingest(root / "dicom", workers=1, progress=False)
    return corpus, root / "s.db"


@pytest.fixture(scope="module")
def synthetic_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("synth")
    with Session(root / "s.db") as s:
        make_synthetic_index(s.store, 3_000, patients=4, instances_per_series=50, batch_rows=1_000)
    return root / "s.db"


def test_tree_matches_the_ingested_corpus(corpus_db: tuple[Corpus, Path]) -> None:
    corpus, db = corpus_db
    with Session(db, read_only=True) as s:
        patients = s.patients
        assert len(patients) == 3
        assert sorted(patients.keys()) == sorted(p.patient_id for p in corpus.patients)
        seen = 0
        for spec in corpus.patients:
            patient = patients[spec.patient_id]
            assert isinstance(patient, Patient)
            assert patient.patient_id == spec.patient_id
            assert patient.patient_name == spec.name
            assert (
                patient.patient_birth_date == dt.datetime.strptime(spec.birth_date, "%Y%m%d").date()
            )
            assert len(patient.studies) == len(spec.studies)
            by_uid = {st.study_instance_uid: st for st in spec.studies}
            for study in patient.studies:
                st_spec = by_uid[study.study_instance_uid]
                assert study.study_date == dt.datetime.strptime(st_spec.date, "%Y%m%d").date()
                assert study.patient == patient
                series_uids = {se.series_instance_uid for se in st_spec.series}
                assert {se.series_instance_uid for se in study.series} == series_uids
                for series in study.series:
                    numbers = [i.instance_number for i in series.instances]
                    assert numbers == sorted(numbers)  # instances in InstanceNumber order
                    for inst in series.instances:
                        assert inst.series == series
                        assert inst.series.study.patient == patient
                        assert Path(inst.file_path).exists()
                        seen += 1
        assert seen == len(corpus.paths)


def test_instance_lookup_and_where(corpus_db: tuple[Corpus, Path]) -> None:
    corpus, db = corpus_db
    spec = corpus.patients[1].studies[0].series[0].instances[0]
    with Session(db, read_only=True) as s:
        inst = s.instance(spec.sop_instance_uid)
        assert isinstance(inst, Instance)
        assert inst.sop_instance_uid == spec.sop_instance_uid
        assert inst.patient.patient_id == corpus.patients[1].patient_id
        with pytest.raises(KeyError):
            s.instance("1.2.3.4.does.not.exist")
        ct_sql = s.instances(where="Modality = 'CT'")
        ct_expr = s.instances(where=pl.col("Modality") == "CT")
        n_ct = s.sql("SELECT count(*) AS n FROM instances WHERE Modality = 'CT'")["n"][0]
        assert len(ct_sql) == len(ct_expr) == n_ct > 0
        assert {i.modality for i in ct_sql} == {"CT"}
        assert sorted(ct_sql.file_ids.tolist()) == sorted(ct_expr.file_ids.tolist())
        assert spec.sop_instance_uid in s.instances()
        frame = ct_sql.to_polars()
        assert frame.height == n_ct and frame["Modality"].unique().to_list() == ["CT"]


@pytest.mark.parametrize(
    "where",
    ["Modality = ", "NoSuchColumn = 1", "1 = 1; DROP TABLE meta", pl.col("NoSuchColumn") == 1],
)
def test_bad_where_raises_query_error_first(synthetic_db: Path, where: object) -> None:
    with Session(synthetic_db, read_only=True) as s:
        with pytest.raises(QueryError):
            s.instances(where=where)  # type: ignore[arg-type]
        with pytest.raises(QueryError):
            s.edit(where=where, set={"InstitutionName": "X"})  # type: ignore[arg-type]
        assert s.pending_edits == 0


def test_building_the_tree_reads_no_file(
    synthetic_db: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with Session(synthetic_db, read_only=True) as s:

        def refuse(*args: object, **kwargs: object) -> None:
            raise AssertionError(f"a file was opened: {args[:1]}")

        monkeypatch.setattr(builtins, "open", refuse)
        monkeypatch.setattr(pydicom, "dcmread", refuse)
        monkeypatch.setattr(pydicom.filereader, "dcmread", refuse)
        n = 0
        for patient in s.patients:
            for study in patient.studies:
                assert study.study_date is not None
                for series in study.series:
                    assert series.modality is not None
                    for inst in series.instances:
                        assert inst.rows and inst.sop_instance_uid
                        n += 1
        assert n == 3_000
        monkeypatch.undo()


def test_synthetic_index_navigation_and_elements(synthetic_db: Path) -> None:
    with Session(synthetic_db, read_only=True) as s:
        patients = s.patients
        assert len(patients) == 4
        summary = patients.to_polars()
        assert summary["n_instances"].sum() == 3_000
        assert summary.columns[:2] == ["PatientID", "PatientName"]
        first = patients[0]
        assert patients[first.patient_id] == first
        assert first.patient_id in patients and "no-such-id" not in patients
        assert patients.get("no-such-id") is None
        series = first.studies[0].series[0]
        assert len(series.instances) == 50
        inst = series.instances[3]
        # typed attributes from the instances columns
        assert isinstance(inst.study_date, dt.date)
        assert isinstance(inst.rows, int)
        assert inst["SeriesDescription"] == inst.series_description == series.series_description
        assert inst.get("PatientName") == first.patient_name
        assert inst.get("0010,0010") == inst.get(0x00100010) == inst.get((0x0010, 0x0010))
        # anything else comes from elements: private, nested, sequences
        assert first.patient_name in inst.get("00091001")
        ref = inst.get("ReferencedImageSequence")
        assert isinstance(ref, list) and set(ref[0]) == {
            "ReferencedSOPClassUID",
            "ReferencedSOPInstanceUID",
        }
        nested = inst.get("00080096[0].00401101[0].00080104")
        assert (
            nested
            == inst.get("ReferringPhysicianIdentificationSequence")[0][
                "PersonIdentificationCodeSequence"
            ][0]["CodeMeaning"]
        )
        assert inst.get("00291234") is None and inst.get("00291234", "d") == "d"
        with pytest.raises(KeyError):
            inst["00291234"]
        with pytest.raises(ConfigError, match="did you mean 'PatientName'"):
            inst.get("PatientNam")
        # slices and positions
        assert len(patients[1:3]) == 2
        assert [p.key for p in patients[1:3]] == patients.keys()[1:3]


def test_tree_follows_new_ingest(tmp_path: Path, corpus_db: tuple[Corpus, Path]) -> None:
    _, db = corpus_db
    shutil.copy(db, tmp_path / "s.db")
    shutil.copytree(db.with_suffix(".gantry"), tmp_path / "s.gantry")
    make_instance(tmp_path / "new" / "x.dcm", modality="MR", PatientID="NEWPATIENT")
    with Session(tmp_path / "s.db") as s:
        before = s.patients
        assert "NEWPATIENT" not in before
        s.ingest(tmp_path / "new", workers=1, progress=False)
        assert "NEWPATIENT" in s.patients
        assert len(s.patients) == len(before) + 1
        assert len(before) == 3  # an existing collection keeps its snapshot


def test_iteration_keeps_no_instance(synthetic_db: Path) -> None:
    import gc
    import weakref

    with Session(synthetic_db, read_only=True) as s:
        refs = []
        for inst in s.patients[0].instances:
            refs.append(weakref.ref(inst))
        del inst
        gc.collect()
        assert sum(r() is not None for r in refs) == 0
        assert np.asarray(s.instances().file_ids).shape == (3_000,)
