"""A second file of an exported instance (duplicate SOP Instance UID) does not stop a series."""

from __future__ import annotations

from pathlib import Path

import pydicom
import pytest

from gantry import Session
from gantry.testing import make_series

pytest.importorskip("nibabel", reason="NIfTI export needs nibabel: pip install 'gantry[nifti]'")


def test_a_duplicate_copy_leaves_the_series_convertible(tmp_path: Path) -> None:
    files = make_series(tmp_path / "in" / "a", kind="mr", slices=4, rows=8, columns=8)
    ds = pydicom.dcmread(files.paths[0])
    ds.ImageComments = "a second copy, as archives hold"
    (tmp_path / "in" / "z").mkdir()
    ds.save_as(tmp_path / "in" / "z" / "copy.dcm")  # sorts after: the first file is exported
    with Session(tmp_path / "s.db") as s:
        s.ingest(tmp_path / "in", workers=1, progress=False)
        s.anonymize()
        result = s.export_nifti(tmp_path / "nii", layout="flat", workers=1, progress=False)
    rows = result.conversions.select("status", "reason").rows()
    assert rows == [("converted", None)], rows
