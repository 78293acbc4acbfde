"""``Instance.pixel_array`` equals pydicom's ``Dataset.pixel_array`` on every bundled sample.

The samples are pydicom's test files plus the ``pydicom-data`` package (both found
by :func:`pydicom.data.get_testdata_files`); every one pydicom decodes here is
compared value for value, shape and dtype (native byte order).
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_files
from pydicom.pixels import pixel_array

from gantry import Session
from gantry.errors import CodecError
from gantry.model import _nodes as nodes_module


def _pydicom(path: str, **options: object) -> np.ndarray | None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            ds = pydicom.dcmread(path)
            if options:
                return np.asarray(pixel_array(ds, **options))
            return np.asarray(ds.pixel_array)
        except Exception:
            return None


@pytest.fixture(scope="module")
def bundled(tmp_path_factory: pytest.TempPathFactory) -> Path:
    db = tmp_path_factory.mktemp("bundled") / "s.db"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        files = sorted(set(get_testdata_files()))
    with Session(db) as s:
        assert s.ingest(files, workers=1, progress=False).indexed > 150
    return db


def _same(got: np.ndarray, ref: np.ndarray) -> None:
    assert got.shape == ref.shape
    assert got.dtype.isnative
    assert got.dtype == ref.dtype.newbyteorder("=")
    np.testing.assert_array_equal(got, ref)


def test_pixel_array_equals_pydicom_on_every_bundled_sample(bundled: Path) -> None:
    compared = []
    with Session(bundled) as s:
        for inst in s.instances():
            ref = _pydicom(inst.file_path)
            if ref is None:
                continue
            _same(inst.pixel_array, ref)
            compared.append(Path(inst.file_path).name)
    # colour JPEG (YCbCr → RGB), palette, signed and planar samples are among them
    assert len(compared) >= 100
    for name in ("SC_rgb_rle.dcm", "MR_small.dcm", "OBXXXX1A.dcm", "rtdose.dcm"):
        assert name in compared


def test_stored_pixels_skip_the_colour_conversion(bundled: Path) -> None:
    with Session(bundled) as s:
        [inst] = list(s.instances(where="file_path LIKE '%SC_ybr_full_422_uncompressed.dcm'"))
        rgb, stored = inst.pixel_array, inst.stored_pixels()
        ref = _pydicom(inst.file_path, as_rgb=False)
        assert ref is not None
        _same(stored, ref)
        assert not np.array_equal(rgb, stored)  # pixel_array converted YBR to RGB


def test_gantry_decoding_stands_in_where_pydicom_cannot(
    bundled: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(nodes_module, "_pydicom_pixels", lambda ds, as_rgb: None)
    with Session(bundled) as s:
        for name in ("SC_rgb_rle.dcm", "MR_small_RLE.dcm", "SC_ybr_full_422_uncompressed.dcm"):
            [inst] = list(s.instances(where=f"file_path LIKE '%/{name}'"))
            ref = _pydicom(inst.file_path)
            assert ref is not None
            _same(inst.pixel_array, ref)
        [ybr] = list(s.instances(where="file_path LIKE '%/SC_ybr_full_422_uncompressed.dcm'"))
        with pytest.raises(CodecError, match="stored values"):
            ybr.stored_pixels()
