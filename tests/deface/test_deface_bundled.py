"""pydicom's bundled head images are single slices or multi-frame: refused with a reason."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from pydicom.data import get_testdata_file

from gantry import Session

pytest.importorskip("scipy", reason="pip install 'gantry[deface]'")

FILES = {
    "CT_small.dcm": "at least 16 slices",  # one axial CT slice
    "MR_small.dcm": "at least 16 slices",  # one MR slice
    "emri_small.dcm": "multi-frame images are not defaced",  # 10 frames in one file
}


def test_bundled_head_images_are_refused_not_crashed_on(tmp_path: Path) -> None:
    for name in FILES:
        source = get_testdata_file(name)
        assert source is not None
        (tmp_path / "dicom").mkdir(exist_ok=True)
        shutil.copy(source, tmp_path / "dicom" / name)
    with Session(tmp_path / "s.db") as s:
        s.ingest(tmp_path / "dicom", workers=1, progress=False)
        series = dict(
            s.sql(
                "SELECT regexp_extract(file_path, '[^/]+$'), SeriesInstanceUID FROM instances"
            ).rows()
        )
        table = s.deface(list(series.values()))
        cfg = {"deface": {"series": list(series.values())}}
        s.anonymize(cfg)
        result = s.export(tmp_path / "out", config=cfg, workers=1, progress=False)
    reasons = dict(table.select("SeriesInstanceUID", "reason").rows())
    assert set(table["status"]) == {"refused"}
    for name, expected in FILES.items():
        assert expected in reasons[series[name]], name
    assert result.exported == 0 and result.excluded.height == len(FILES)
    assert not list((tmp_path / "out").rglob("*.dcm"))
