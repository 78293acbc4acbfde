"""pydicom's and pydicom-data's own images, converted from the plan and checked against dcm2niix.

Each bundled image that forms a convertible series (classic CT and MR slices,
JPEG 2000, an enhanced CT with two frames) goes through ingest, the default
plan and ``export_nifti``; ``dcm2niix`` converts the original. Voxels must be
equal and affines within 1e-3 mm after ``as_closest_canonical``.
"""

from __future__ import annotations

import gzip
import shutil
import subprocess
import warnings
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from pydicom.data import get_testdata_file

from gantry import Session

CONVERTIBLE = [
    "CT_small.dcm",  # CT, explicit VR little endian
    "MR_small.dcm",  # MR
    "693_UNCR.dcm",  # CT 512x512
    "MR2_J2KR.dcm",  # MR 1024x1024, JPEG 2000 lossless
    "eCT_Supplemental.dcm",  # Enhanced CT, two frames in functional groups
    "examples_overlay.dcm",  # MR with an overlay plane (removed by the plan)
]
UNCONVERTIBLE = {"emri_small.dcm": "no Image Position/Orientation"}


def _sample(name: str) -> Path:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        found = get_testdata_file(name)
    if found is None:
        pytest.skip(f"{name} is not available: pip install pydicom-data")
    return Path(found)


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, dict[str, str]]]:
    root = tmp_path_factory.mktemp("bundled-nifti")
    for name in [*CONVERTIBLE, *UNCONVERTIBLE]:
        folder = root / "src" / name.removesuffix(".dcm")
        folder.mkdir(parents=True)
        shutil.copy(_sample(name), folder / name)
    with Session(root / "s.db") as s:
        s.ingest(root / "src", workers=1, progress=False)
        s.anonymize(None)
        s.export_nifti(root / "out", layout="flat", workers=1, progress=False)
        rows = s.sql(
            "SELECT i.file_path, c.status, c.reason, c.output_path FROM conversions c "
            "JOIN instances i ON list_contains(c.file_ids, i.file_id)"
        )
    by_name = {Path(r["file_path"]).name: r for r in rows.iter_rows(named=True)}
    return root, by_name


@pytest.mark.parametrize("name", CONVERTIBLE)
def test_bundled_image_equals_dcm2niix(exported, dcm2niix_exe: str, name: str) -> None:
    root, rows = exported
    row = rows[name]
    assert row["status"] == "converted", row["reason"]
    ref_dir = root / "dcm2niix" / name
    ref_dir.mkdir(parents=True)
    source = root / "src" / name.removesuffix(".dcm")
    subprocess.run([dcm2niix_exe, "-z", "y", "-f", "ref", "-o", str(ref_dir), str(source)],
                   check=True, capture_output=True, timeout=120)  # fmt: skip
    ref = nib.as_closest_canonical(nib.load(ref_dir / "ref.nii.gz"))
    mine = nib.as_closest_canonical(nib.load(root / "out" / row["output_path"]))
    assert mine.shape == ref.shape
    np.testing.assert_allclose(mine.affine, ref.affine, atol=1e-3)
    np.testing.assert_array_equal(mine.get_fdata(), ref.get_fdata())


def test_unconvertible_bundled_image_is_reported(exported) -> None:
    _, rows = exported
    for name, reason in UNCONVERTIBLE.items():
        assert rows[name]["status"] == "not converted"
        assert reason in rows[name]["reason"]


def test_no_original_uid_or_name_in_any_output(exported) -> None:
    import pydicom

    root, _ = exported
    originals = set()
    for path in (root / "src").rglob("*.dcm"):
        ds = pydicom.dcmread(path, stop_before_pixels=True)
        originals |= {str(ds.SOPInstanceUID).encode(), str(ds.StudyInstanceUID).encode()}
        if str(ds.get("PatientName", "")).strip():
            originals.add(str(ds.PatientName).encode())
    files = [p for p in (root / "out").rglob("*") if p.is_file()]
    assert len([p for p in files if p.name.endswith(".nii.gz")]) == len(CONVERTIBLE)
    for path in files:
        data = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
        assert not [v for v in originals if v in data], path
