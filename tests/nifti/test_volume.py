"""The volume reader on builder files directly: scaling, checks and their reasons."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
import pytest

from gantry.nifti._volume import Unconvertible, read_volume
from gantry.testing import make_series


def _edit(path: Path, **values: object) -> None:
    ds = pydicom.dcmread(path)
    for key, value in values.items():
        setattr(ds, key, value)
    ds.save_as(path)


def test_rescale_varying_between_images_is_applied_as_float(tmp_path: Path) -> None:
    s = make_series(tmp_path, kind="mr", slices=3, rows=4, columns=5, canaries=False)
    by_slice = sorted(s.paths, key=lambda p: float(pydicom.dcmread(p).SliceLocation))
    _edit(by_slice[1], RescaleSlope="0.5", RescaleIntercept="-7")
    v = read_volume(s.paths)
    assert v.data.dtype == np.float32 and (v.slope, v.intercept) == (1.0, 0.0)
    assert any("vary" in n for n in v.notes)
    np.testing.assert_allclose(v.data[:, :, 1], s.volume[0, 1].T * 0.5 - 7)
    np.testing.assert_array_equal(v.data[:, :, 0], s.volume[0, 0].T)


def test_uniform_rescale_keeps_the_stored_integers(tmp_path: Path) -> None:
    s = make_series(tmp_path, kind="ct", slices=2, rows=4, columns=5, intercept=-1024)
    v = read_volume(s.paths)
    assert v.data.dtype == np.int16 and (v.slope, v.intercept) == (1.0, -1024.0)
    np.testing.assert_array_equal(v.data[:, :, 0], s.volume[0, 0].T)


def test_one_slice_uses_the_slice_thickness(tmp_path: Path) -> None:
    s = make_series(tmp_path, kind="mr", slices=1, rows=4, columns=5, slice_step=3.0)
    v = read_volume(s.paths)
    assert v.data.shape == (5, 4, 1)
    assert np.linalg.norm(v.affine[:3, 2]) == pytest.approx(3.0)


@pytest.mark.parametrize(
    ("edit", "reason"),
    [
        ({"ImageOrientationPatient": [0, 1, 0, 0, 0, -1]}, "orientation changes"),
        ({"PixelSpacing": [2, 2]}, "pixel spacing changes"),
        ({"ImagePositionPatient": None}, "no Image Position"),
    ],
)
def test_inconsistent_series_are_refused_with_the_reason(
    tmp_path: Path, edit: dict[str, object], reason: str
) -> None:
    s = make_series(tmp_path, kind="mr", slices=3, rows=4, columns=5)
    ds = pydicom.dcmread(s.paths[0])
    for key, value in edit.items():
        if value is None:
            delattr(ds, key)
        else:
            setattr(ds, key, value)
    ds.save_as(s.paths[0])
    with pytest.raises(Unconvertible, match=reason):
        read_volume(s.paths)


def test_a_missing_image_in_a_4d_series_is_refused(tmp_path: Path) -> None:
    s = make_series(tmp_path, kind="fmri", volumes=3, slices=3, rows=4, columns=5)
    with pytest.raises(Unconvertible, match="different numbers of images"):
        read_volume(s.paths[1:])


def test_colour_images_are_refused(tmp_path: Path) -> None:
    from gantry.testing import make_instance

    path = tmp_path / "us.dcm"
    make_instance(path, modality="US")
    with pytest.raises(Unconvertible, match="colour"):
        read_volume([path])


@pytest.mark.parametrize(
    "syntax", [pydicom.uid.ExplicitVRLittleEndian, pydicom.uid.ImplicitVRLittleEndian]
)
def test_quick_header_reader_agrees_with_pydicom_or_declines(syntax: str, tmp_path: Path) -> None:
    from pydicom.datadict import tag_for_keyword

    from gantry.nifti._header import read_needed
    from gantry.nifti._volume import _NEEDED
    from gantry.pixels import decode
    from gantry.testing import make_instance

    path = tmp_path / "ct.dcm"
    make_instance(path, rows=6, columns=7, transfer_syntax=syntax)  # nested sequences too
    quick = read_needed(path, [int(tag_for_keyword(k) or 0) for k in _NEEDED])
    if syntax != pydicom.uid.ExplicitVRLittleEndian:
        assert quick is None  # pydicom reads it
        return
    assert quick is not None
    full = pydicom.dcmread(path)
    present = [k for k in _NEEDED if k in full]
    assert [k for k in _NEEDED if k in quick] == present
    for keyword in present:
        assert quick[keyword].value == full[keyword].value, keyword
    np.testing.assert_array_equal(decode(quick), decode(full))
    path.write_bytes(path.read_bytes()[:-10])  # truncated pixel data: declined
    assert read_needed(path, [0x7FE00010]) is None
