"""Every UID that is not a well-known one is remapped, wherever it sits, consistently."""

from __future__ import annotations

from pathlib import Path

import pydicom
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from gantry import Session
from gantry.plan import remap_uid
from gantry.testing import make_instance

CREATOR_UID = "1.3.6.1.4.1.99999.7.1"  # an implementation's UID, outside Table E.1-1
PRIVATE_UID = "1.3.6.1.4.1.99999.7.2"
CODING_SCHEME = "1.2.840.10008.2.16.4"  # DCM: well known, never remapped


def _write(root: Path, n: int, study_uid: str) -> None:
    item = Dataset()
    item.CodingSchemeUID = CODING_SCHEME
    item.CodeValue, item.CodingSchemeDesignator, item.CodeMeaning = "1", "DCM", "x"
    nested = Dataset()
    nested.ReferencedSOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
    nested.ReferencedSOPInstanceUID = study_uid  # a study UID repeated deep down
    ds = make_instance(
        StudyInstanceUID=study_uid,
        CreatorVersionUID=CREATOR_UID,
        ProcedureCodeSequence=Sequence([item]),
        ReferencedInstanceSequence=Sequence([nested]),
        seed=n,
    )
    block = ds.private_block(0x0011, "GANTRY UID TEST", create=True)
    block.add_new(0x01, "UI", PRIVATE_UID)
    ds.save_as(root / f"{n}.dcm", enforce_file_format=True)


def test_every_local_uid_is_remapped_consistently(tmp_path: Path) -> None:
    (tmp_path / "dicom").mkdir()
    study = "1.3.6.1.4.1.99999.1.1"
    for n in range(2):
        _write(tmp_path / "dicom", n, study)
    cfg = {"remove_private_tags": False}
    with Session(tmp_path / "s.db") as s:
        s.ingest(tmp_path / "dicom", workers=1, progress=False)
        s.anonymize(cfg)
        r = s.export(tmp_path / "out", config=cfg, safe=False, workers=1, progress=False)
        secret = s.store.secret
        rules = set(
            s.sql("SELECT DISTINCT rule FROM plan WHERE keyword = 'CreatorVersionUID'")["rule"]
        )
    assert r.exported == 2, r.failed.to_dicts()
    assert rules == {"uid"}
    outs = [pydicom.dcmread(p) for p in sorted((tmp_path / "out").rglob("*.dcm"))]
    for ds in outs:
        assert ds.CreatorVersionUID == remap_uid(secret, CREATOR_UID)
        assert ds.StudyInstanceUID == remap_uid(secret, study)
        ref = ds.ReferencedInstanceSequence[0]
        assert ref.ReferencedSOPInstanceUID == ds.StudyInstanceUID  # the same mapping
        assert ref.ReferencedSOPClassUID == "1.2.840.10008.5.1.4.1.1.2"
        assert ds.ProcedureCodeSequence[0].CodingSchemeUID == CODING_SCHEME
        private = ds.private_block(0x0011, "GANTRY UID TEST")[0x01].value
        assert private == remap_uid(secret, PRIVATE_UID)
        assert ds.file_meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID
    for p in (tmp_path / "out").rglob("*.dcm"):
        raw = p.read_bytes()
        assert CREATOR_UID.encode() not in raw and PRIVATE_UID.encode() not in raw
        assert study.encode() not in raw
    # retain-uids keeps them all
    keep = {"options": ["retain-uids"]}
    with Session(tmp_path / "s.db") as s:
        s.anonymize(keep)
        r = s.export(tmp_path / "kept", config=keep, safe=False, workers=1, progress=False)
    assert r.exported == 2, r.failed.to_dicts()
    for p in (tmp_path / "kept").rglob("*.dcm"):
        ds = pydicom.dcmread(p)
        assert ds.CreatorVersionUID == CREATOR_UID and ds.StudyInstanceUID == study
