"""Export carrying the originals in the Encrypted Attributes Sequence (config option)."""

from __future__ import annotations

from pathlib import Path

import pydicom
import pytest

from gantry import Session
from gantry.errors import VaultKeyError
from gantry.testing import make_corpus
from gantry.vault import decrypt_encrypted_attributes, read_key_file


def test_key_holder_restores_the_original_header(tmp_path: Path) -> None:
    corpus = make_corpus(
        tmp_path / "dicom",
        patients=1,
        studies_per_patient=1,
        series_per_study=1,
        instances_per_series=2,
        modalities=("CT",),
    )
    cfg = {"encrypted_attributes": True}
    with Session(tmp_path / "s.db") as s:
        s.ingest(tmp_path / "dicom", workers=1, progress=False)
        s.anonymize(cfg)
        with pytest.raises(VaultKeyError):  # no key loaded: refuse rather than export without
            s.export(tmp_path / "out", config=cfg, safe=False, workers=1, progress=False)
        key_path = s.enable_reversible_anonymization(tmp_path / "gantry.key")
        r = s.export(tmp_path / "out", config=cfg, safe=False, workers=1, progress=False)
    assert r.ok and r.exported == 2
    patient = corpus.patients[0]
    key = read_key_file(key_path)
    for f in (tmp_path / "out").rglob("*.dcm"):
        data = f.read_bytes()
        assert patient.patient_id.encode() not in data  # encrypted, not in plaintext
        ds = pydicom.dcmread(f)
        assert "EncryptedAttributesSequence" in ds
        restored = decrypt_encrypted_attributes(ds, key)
        assert restored.PatientID == patient.patient_id
        assert str(restored.PatientName) == patient.name
