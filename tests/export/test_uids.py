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


def test_vendor_definition_uids_are_kept_and_instance_uids_beside_them_remapped(
    tmp_path: Path,
) -> None:
    """A private coding scheme or SOP class names a definition, not an instance."""
    vendor_scheme = "1.2.276.0.7230010.3.0.0.1"  # DCMTK's private coding scheme
    vendor_class = "1.2.840.113619.4.27"  # a vendor's private SOP class
    instance = "1.3.6.1.4.1.99999.3.3"
    item = Dataset()
    item.CodeValue, item.CodingSchemeDesignator, item.CodeMeaning = "cm", "99_OFFIS_DCMTK", "u"
    item.CodingSchemeUID = vendor_scheme
    ref = Dataset()
    ref.ReferencedSOPClassUID = vendor_class
    ref.ReferencedSOPInstanceUID = instance
    ds = make_instance(
        ProcedureCodeSequence=Sequence([item]), ReferencedInstanceSequence=Sequence([ref]), seed=7
    )
    (tmp_path / "dicom").mkdir()
    ds.save_as(tmp_path / "dicom" / "a.dcm", enforce_file_format=True)
    with Session(tmp_path / "s.db") as s:
        s.ingest(tmp_path / "dicom", workers=1, progress=False)
        s.anonymize({})
        r = s.export(tmp_path / "out", safe=False, workers=1, progress=False)
        secret = s.store.secret
    assert r.exported == 1, r.failed.to_dicts()
    (out,) = [pydicom.dcmread(p) for p in (tmp_path / "out").rglob("*.dcm")]
    assert out.ProcedureCodeSequence[0].CodingSchemeUID == vendor_scheme
    assert out.ReferencedInstanceSequence[0].ReferencedSOPClassUID == vendor_class
    assert out.ReferencedInstanceSequence[0].ReferencedSOPInstanceUID == remap_uid(secret, instance)
