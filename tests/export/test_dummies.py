"""D means a conformant dummy; a value the VR cannot hold is never written."""

from __future__ import annotations

from pathlib import Path

import pydicom
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from gantry import Session
from gantry.testing import make_instance


def _text_item(text: str) -> Dataset:
    item = Dataset()
    item.RelationshipType, item.ValueType, item.TextValue = "CONTAINS", "TEXT", text
    return item


def test_dummies_conform_to_their_vr(tmp_path: Path) -> None:
    make_instance(
        tmp_path / "dicom" / "ct.dcm",
        ContentSequence=Sequence([_text_item("first"), _text_item("second")]),
        seed=9,
    )
    # a pseudonym template for a Decimal String: the VR cannot hold ANON_000001
    cfg = {"phi_tags": {"0018,0050": {"action": "REPLACE", "value": "ANON_{id}"}}}
    with Session(tmp_path / "s.db") as s:
        s.ingest(tmp_path / "dicom", workers=1, progress=False)
        s.anonymize(cfg)
        plan = {
            k: (a, v)
            for k, a, v in s.sql("SELECT keyword, action, new_value FROM plan").rows()
            if k in ("ContentSequence", "EncapsulatedDocument", "SliceThickness")
        }
        r = s.export(tmp_path / "out", config=cfg, safe=False, workers=1, progress=False)
    assert plan["ContentSequence"] == ("D", None)
    assert plan["SliceThickness"] == ("D", "0")
    assert r.exported == 1, (r.failed.to_dicts(), r.excluded.to_dicts())
    [out] = list((tmp_path / "out").rglob("*.dcm"))
    ds = pydicom.dcmread(out)
    assert len(ds.ContentSequence) == 1  # one item, treated by its own rules
    assert ds.SliceThickness == 0
    assert b"second" not in out.read_bytes()
