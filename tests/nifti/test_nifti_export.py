"""End to end: ``Session.export_nifti`` against dcm2niix, the BIDS validator and canaries."""

from __future__ import annotations

import gzip
import json
import re
import subprocess
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
import polars as pl
import pytest

from gantry import Session
from gantry.testing._canaries import CANARY_BYTES_RE, CANARY_RE

Converted = Any  # the `converted` fixture of conftest.py


def _rows(c: Converted, dest: Path) -> dict[str, dict[str, Any]]:
    """This destination's conversions rows, keyed by the source folder name of the series."""
    with Session(c.db, read_only=True) as s:
        conv = s.sql("SELECT * FROM conversions WHERE dest = ?", [str(dest)])
        files = s.sql("SELECT file_id, file_path FROM instances")
    where = {fid: Path(p).parent.name for fid, p in files.iter_rows()}
    out = {}
    for row in conv.iter_rows(named=True):
        names = {where[f] for f in row["file_ids"]}
        assert len(names) == 1
        out[names.pop()] = row
    return out


def _dcm2niix(c: Converted, name: str, exe: str) -> tuple[Path, Any]:
    out = c.root / "dcm2niix" / name
    if not (out / "ref.nii.gz").exists():
        out.mkdir(parents=True, exist_ok=True)
        src = c.series[name].paths[0].parent
        subprocess.run([exe, "-z", "y", "-f", "ref", "-o", str(out), str(src)],
                       check=True, capture_output=True)  # fmt: skip
    return out, nib.load(out / "ref.nii.gz")


@pytest.mark.parametrize("layout", ["flat", "bids"])
@pytest.mark.parametrize(
    "name", ["ct", "mr_oblique", "mr_scaled", "enhanced", "fmri", "dwi", "tilt"]
)
def test_voxels_and_affine_equal_dcm2niix(
    converted: Converted, dcm2niix_exe: str, name: str, layout: str
) -> None:
    dest = converted.flat if layout == "flat" else converted.bids
    row = _rows(converted, dest)[name]
    if layout == "bids" and name in ("ct", "tilt", "pet"):
        # BIDS has no CT datatype, and its PET datatype needs times the profile removes
        assert row["status"] == "unmatched"  # listed, not written
        return
    assert row["status"] == "converted", row["reason"]
    mine = nib.load(dest / row["output_path"])
    if name == "tilt":  # dcm2niix resamples tilted stacks; check the shear and the report
        assert "gantry tilt of 15.00 degrees" in row["notes"]
        assert int(mine.header["qform_code"]) == 0 and int(mine.header["sform_code"]) == 1
        step = mine.affine[:3, 2]
        normal = np.cross(mine.affine[:3, 0], mine.affine[:3, 1])
        angle = np.degrees(
            np.arccos(abs(step @ normal) / np.linalg.norm(step) / np.linalg.norm(normal))
        )
        assert angle == pytest.approx(15.0, abs=1e-3)
        return
    _, ref = _dcm2niix(converted, name, dcm2niix_exe)
    a, b = nib.as_closest_canonical(ref), nib.as_closest_canonical(mine)
    assert a.shape == b.shape
    np.testing.assert_allclose(b.affine, a.affine, atol=1e-3)
    np.testing.assert_array_equal(b.get_fdata(), a.get_fdata())
    # and both equal the values the builder stored, rescaled
    truth = converted.series[name]
    assert b.get_fdata().size == truth.volume.size
    expected = np.sort(truth.volume.ravel() * truth.slope + truth.intercept)
    np.testing.assert_allclose(np.sort(b.get_fdata().ravel()), expected, rtol=1e-6)


def _world_bvecs(img: Any, bvec_file: Path) -> np.ndarray:
    """FSL-convention bvecs back to world (RAS) directions."""
    vecs = np.loadtxt(bvec_file)
    axes = img.affine[:3, :3] / np.linalg.norm(img.affine[:3, :3], axis=0)
    if np.linalg.det(img.affine[:3, :3]) > 0:
        vecs = vecs * np.array([[-1.0], [1.0], [1.0]])
    return axes @ vecs


def test_dwi_bvals_and_bvecs_match_dcm2niix_and_the_truth(
    converted: Converted, dcm2niix_exe: str
) -> None:
    row = _rows(converted, converted.bids)["dwi"]
    stem = converted.bids / row["output_path"].removesuffix(".nii.gz")
    mine = nib.load(converted.bids / row["output_path"])
    ref_dir, ref = _dcm2niix(converted, "dwi", dcm2niix_exe)
    assert np.loadtxt(f"{stem}.bval").tolist() == np.loadtxt(ref_dir / "ref.bval").tolist()
    assert np.loadtxt(f"{stem}.bval").tolist() == converted.series["dwi"].bvals
    got = _world_bvecs(mine, Path(f"{stem}.bvec"))
    np.testing.assert_allclose(got, _world_bvecs(ref, ref_dir / "ref.bvec"), atol=1e-4)
    truth = np.array(converted.series["dwi"].bvecs).T * np.array([[-1.0], [-1.0], [1.0]])  # LPS→RAS
    weighted = np.array(converted.series["dwi"].bvals) > 0
    np.testing.assert_allclose(got[:, weighted], truth[:, weighted], atol=1e-4)


def test_gaps_and_excluded_series_are_reported_not_written(converted: Converted) -> None:
    for dest in (converted.bids, converted.flat):
        rows = _rows(converted, dest)
        assert rows["gap"]["status"] == "not converted"
        assert "slice spacing is not uniform" in rows["gap"]["reason"]
        assert rows["burned"]["status"] == "not converted"
        assert "instances were not exported clean" in rows["burned"]["reason"]
        assert rows["gap"]["output_path"] is None and rows["burned"]["output_path"] is None
    flat = {p.relative_to(converted.flat).as_posix() for p in converted.flat.rglob("*.nii.gz")}
    assert len(flat) == len(converted.series) - 2


def test_bids_layout_sidecars_and_participants(converted: Converted) -> None:
    rows = _rows(converted, converted.bids)
    pattern = re.compile(
        r"sub-[A-Za-z0-9]+/ses-1/(anat|func|dwi)/sub-[A-Za-z0-9]+_ses-1_.+\.nii\.gz"
    )
    for name in ("mr_oblique", "mr_scaled", "enhanced", "fmri", "dwi"):
        assert pattern.fullmatch(rows[name]["output_path"]), rows[name]["output_path"]
    assert rows["fmri"]["output_path"].endswith("_task-rest_bold.nii.gz")
    assert (rows["mr_oblique"]["datatype"], rows["mr_oblique"]["suffix"]) == ("anat", "T1w")
    assert (rows["enhanced"]["datatype"], rows["enhanced"]["suffix"]) == ("anat", "T2w")
    bold = json.loads(
        (converted.bids / rows["fmri"]["output_path"].replace(".nii.gz", ".json")).read_text()
    )
    assert bold["RepetitionTime"] == 2.0 and bold["EchoTime"] == 0.03 and bold["TaskName"] == "rest"
    # interleaved acquisition: even slices first, 2 s / 6 slices apart
    assert bold["SliceTiming"] == pytest.approx(
        [0.0, 1.0, 0.3333, 1.3333, 0.6667, 1.6667], abs=1e-3
    )
    enhanced = json.loads(
        (converted.bids / rows["enhanced"]["output_path"].replace(".nii.gz", ".json")).read_text()
    )
    assert enhanced["RepetitionTime"] == 4.0 and enhanced["EchoTime"] == 0.098
    img = nib.load(converted.bids / rows["fmri"]["output_path"])
    assert img.header.get_zooms()[3] == pytest.approx(2.0)
    participants = (converted.bids / "participants.tsv").read_text().splitlines()
    subjects = {p.name for p in converted.bids.glob("sub-*")}
    assert participants[0] == "participant_id\tsex\tage"
    assert {line.split("\t")[0] for line in participants[1:]} == subjects
    description = json.loads((converted.bids / "dataset_description.json").read_text())
    assert description["BIDSVersion"] and description["DatasetType"] == "raw"


def test_bids_validator_passes(converted: Converted, validator_exe: str) -> None:
    run = subprocess.run(
        [validator_exe, str(converted.bids), "--json"], capture_output=True, text=True, timeout=300
    )
    report = json.loads(run.stdout)
    errors = [i for i in report["issues"]["issues"] if i["severity"] == "error"]
    assert errors == [] and run.returncode == 0, errors


def _original_values(c: Converted) -> set[bytes]:
    """Canaries, plus every original UID of the inputs."""
    with Session(c.db, read_only=True) as s:
        uids = s.sql("SELECT DISTINCT value FROM elements WHERE vr = 'UI' AND value LIKE '2.25.%'")[
            "value"
        ].to_list()
    return {u.encode() for u in uids if len(u) > 20}


@pytest.mark.parametrize("layout", ["bids", "flat"])
def test_no_canary_or_original_uid_in_any_output_byte_or_name(
    converted: Converted, layout: str
) -> None:
    dest = converted.bids if layout == "bids" else converted.flat
    planted = set().union(*(s.canaries for s in converted.series.values()))
    assert planted and all(CANARY_RE.fullmatch(t) for t in planted)
    uids = _original_values(converted)
    assert uids
    files = [p for p in dest.rglob("*")]
    assert files and not [p for p in files if p.name.startswith(".gantry-staging")]
    for path in files:
        name = path.relative_to(dest).as_posix().encode()
        assert not CANARY_BYTES_RE.search(name), name
        if not path.is_file():
            continue
        data = path.read_bytes()
        if path.name.endswith(".gz"):
            data = gzip.decompress(data)
            header = nib.load(path).header
            assert header["descrip"].item() == b"gantry"
            assert header["aux_file"].item() == b"" and not header.extensions
        assert not CANARY_BYTES_RE.search(data), path
        assert not [u for u in uids if u in data], path


def test_conversions_table_lists_every_series_once_per_run(converted: Converted) -> None:
    with Session(converted.db, read_only=True) as s:
        counts = s.sql("SELECT layout, status, count(*) AS n FROM conversions GROUP BY 1, 2")
    got = {(a, b): n for a, b, n in counts.iter_rows()}
    assert got == {
        ("bids", "converted"): 5, ("bids", "unmatched"): 3, ("bids", "not converted"): 2,
        ("flat", "converted"): 8, ("flat", "not converted"): 2,
    }  # fmt: skip
    assert pl.Series(list(got.values())).sum() == 2 * len(converted.series)


def test_pet_equals_dcm2niix_with_per_slice_scaling_and_clean_suv_keys(
    converted: Converted, dcm2niix_exe: str
) -> None:
    row = _rows(converted, converted.flat)["pet"]
    assert row["status"] == "converted", row["reason"]
    assert "values stored as float32" in row["notes"]  # a Rescale Slope per slice
    mine = nib.load(converted.flat / row["output_path"])
    _, ref = _dcm2niix(converted, "pet", dcm2niix_exe)
    a, b = nib.as_closest_canonical(ref), nib.as_closest_canonical(mine)
    assert a.shape == b.shape
    np.testing.assert_allclose(b.affine, a.affine, atol=1e-3)
    np.testing.assert_allclose(b.get_fdata(), a.get_fdata(), rtol=1e-5)
    truth = converted.series["pet"]
    slopes = np.array(truth.slice_slopes)[None, :, None, None]
    np.testing.assert_allclose(
        np.sort(b.get_fdata().ravel()), np.sort((truth.volume * slopes).ravel()), rtol=1e-5
    )
    side = json.loads((converted.flat / row["output_path"].replace(".nii.gz", ".json")).read_text())
    assert side["Modality"] == "PT" and side["Units"] == "Bq/mL"
    assert side["DecayCorrection"] == "START" and side["ImageDecayCorrected"] is True
    assert side["TracerName"] == "Fluorodeoxyglucose"
    assert side["TracerRadionuclide"] == "^18^Fluorine"
    assert side["InjectedRadioactivity"] == 370.0 and side["RadionuclideHalfLife"] == 6586.2
    assert side["FrameDuration"] == [180.0]
    # the default options keep times of day (dates are shifted by whole days): the
    # injection, relative to the acquisition; the Basic Profile removes the weight
    assert side["InjectionStart"] == -3600.0 and "BodyWeight" not in side


def test_pet_weight_reaches_the_sidecar_only_when_the_plan_keeps_it(tmp_path: Path) -> None:
    from gantry.testing import make_series

    make_series(tmp_path / "src", kind="pet", slices=3, rows=4, columns=5, seed=9)
    with Session(tmp_path / "s.db") as s:
        s.ingest(tmp_path / "src", workers=1, progress=False)
        s.anonymize({"options": ["retain-patient-characteristics"]})
        result = s.export_nifti(tmp_path / "out", layout="flat", workers=1, progress=False)
    assert result.ok
    (sidecar,) = (tmp_path / "out").rglob("*.json")
    side = json.loads(sidecar.read_text())
    assert side["BodyWeight"] == 72.5 and side["BodyWeightUnits"] == "kg"
    assert "InjectionStart" not in side  # without a dates option, times are removed
