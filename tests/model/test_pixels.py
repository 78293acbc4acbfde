"""Lazy pixels, pixel edits in the sidecar, compaction, and decoding errors."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.uid import ExplicitVRLittleEndian, JPEG2000Lossless, RLELossless

from gantry import Session
from gantry.errors import CodecError, ConfigError, StoreError
from gantry.model import _nodes as nodes_module
from gantry.model import pixel_edit_locations, read_pixel_edit
from gantry.testing import decode_pixels, make_instance

FILES = {
    "ct": dict(modality="CT", transfer_syntax=ExplicitVRLittleEndian, seed=1),
    "mr": dict(modality="MR", transfer_syntax=JPEG2000Lossless, seed=2),
    "us": dict(modality="US", transfer_syntax=RLELossless, frames=3, seed=3),
}


@pytest.fixture(scope="module")
def indexed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("pix")
    for name, kw in FILES.items():
        make_instance(root / "dicom" / f"{name}.dcm", **kw)  # type: ignore[arg-type]
    with Session(root / "s.db") as s:
        assert s.ingest(root / "dicom", workers=1, progress=False).indexed == len(FILES)
    return root


@pytest.fixture()
def db(indexed: Path, tmp_path: Path) -> Path:
    shutil.copy(indexed / "s.db", tmp_path / "s.db")
    shutil.copytree(indexed / "s.gantry", tmp_path / "s.gantry")
    return tmp_path / "s.db"


def _by_modality(s: Session, modality: str):  # type: ignore[no-untyped-def]
    [inst] = list(s.instances(where=f"Modality = '{modality}'"))
    return inst


def test_pixels_are_decoded_lazily_and_cached(db: Path) -> None:
    with Session(db) as s:
        for modality in ("CT", "MR", "US"):
            inst = _by_modality(s, modality)
            assert inst._pixels is None  # nothing decoded by navigation
            arr = inst.pixel_array
            expected = decode_pixels(pydicom.dcmread(inst.file_path))
            np.testing.assert_array_equal(arr, expected)
            assert inst.pixel_array is arr  # cached
            assert not arr.flags.writeable
            inst.unload_pixel_data()
            again = inst.pixel_array
            assert again is not arr and np.array_equal(again, arr)


def test_pixel_edit_is_checked_saved_and_restored_bit_exactly(db: Path) -> None:
    with Session(db) as s:
        inst = _by_modality(s, "US")
        sop = inst.sop_instance_uid
        original = inst.pixel_array
        with pytest.raises(ConfigError, match="shape"):
            inst.pixel_array = original[0]
        with pytest.raises(ConfigError, match="dtype"):
            inst.pixel_array = original.astype(np.float32)
        edited = original.copy()
        edited[:, :8, :8, :] = 255
        inst.pixel_array = edited
        assert np.array_equal(inst.pixel_array, edited)
        # a second Instance object of the same file sees the pending edit too
        assert np.array_equal(s.instance(sop).pixel_array, edited)
        result = s.save()
        assert result.pixel_edits == 1 and result.pixel_bytes == edited.nbytes
        fid = inst.file_id
    assert pydicom.dcmread(inst.file_path).SOPInstanceUID == sop  # original untouched
    np.testing.assert_array_equal(decode_pixels(pydicom.dcmread(inst.file_path)), original)
    with Session(db, read_only=True) as s:
        again = s.instance(sop)
        assert np.array_equal(again.pixel_array, edited)
        assert again.pixel_array.dtype == edited.dtype
        np.testing.assert_array_equal(read_pixel_edit(s.store, fid), edited)
        path, offset, nbytes, dtype, shape = pixel_edit_locations(s.store)[fid]
        with open(path, "rb") as fh:
            fh.seek(offset)
            raw = np.frombuffer(fh.read(nbytes), dtype=dtype).reshape(shape)
        np.testing.assert_array_equal(raw, edited)
        ds = again.dataset(pixels=True)
        np.testing.assert_array_equal(ds.pixel_array, edited)


def test_revert_pixels(db: Path) -> None:
    with Session(db) as s:
        inst = _by_modality(s, "CT")
        original = inst.pixel_array
        inst.pixel_array = original + 1
        s.save()
        inst.revert_pixels()
        np.testing.assert_array_equal(inst.pixel_array, original)
        s.save()
        assert read_pixel_edit(s.store, inst.file_id) is None
    with Session(db, read_only=True) as s:
        np.testing.assert_array_equal(_by_modality(s, "CT").pixel_array, original)


def test_compact_reclaims_superseded_blobs_and_keeps_live_ones(db: Path) -> None:
    with Session(db) as s:
        ct, mr = _by_modality(s, "CT"), _by_modality(s, "MR")
        base_ct, base_mr = ct.pixel_array, mr.pixel_array
        for k in range(3):
            ct.pixel_array = base_ct + k
            s.save()
        mr.pixel_array = base_mr // 2
        s.save()
        old = Path(pixel_edit_locations(s.store)[ct.file_id][0])
        size_before = old.stat().st_size
        reclaimed = s.compact()
        assert reclaimed == 2 * (base_ct.nbytes + 112)  # two superseded CT blobs (+ header/trailer)
        assert not old.exists()
        new = Path(pixel_edit_locations(s.store)[ct.file_id][0])
        assert new.stat().st_size == size_before - reclaimed
        counts = s.sql("SELECT counts FROM runs WHERE kind = 'compact'")["counts"][0]
        assert f'"bytes_reclaimed": {reclaimed}' in counts
        assert s.compact() == 0  # nothing left to reclaim
        ct2, mr2 = _by_modality(s, "CT"), _by_modality(s, "MR")
        np.testing.assert_array_equal(ct2.pixel_array, base_ct + 2)
        np.testing.assert_array_equal(mr2.pixel_array, base_mr // 2)
        # saving after a compaction appends to the new sidecar
        ct2.pixel_array = base_ct + 9
        s.save()
    with Session(db, read_only=True) as s:
        np.testing.assert_array_equal(_by_modality(s, "CT").pixel_array, base_ct + 9)
        np.testing.assert_array_equal(_by_modality(s, "MR").pixel_array, base_mr // 2)
        history = s.sql("SELECT count(*) FROM pixel_edits WHERE superseded").item()
        assert history == 3  # kept as history, their bytes gone after compaction


def test_damaged_sidecar_is_detected(db: Path) -> None:
    with Session(db) as s:
        inst = _by_modality(s, "CT")
        inst.pixel_array = inst.pixel_array + 1
        s.save()
        path, offset, *_ = pixel_edit_locations(s.store)[inst.file_id]
    with open(path, "r+b") as fh:
        fh.seek(offset + 10)
        byte = fh.read(1)
        fh.seek(offset + 10)
        fh.write(bytes([byte[0] ^ 0xFF]))
    with Session(db, read_only=True) as s:
        with pytest.raises(StoreError, match="checksum"):
            _ = _by_modality(s, "CT").pixel_array


def _corrupt_j2k(path: str) -> None:
    data = bytearray(Path(path).read_bytes())
    soc = data.find(b"\xff\x4f\xff\x51")
    assert soc > 0
    data[soc : soc + 64] = b"\0" * 64
    Path(path).write_bytes(bytes(data))


def test_undecodable_pixels_raise_codec_error(db: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with Session(db) as s:
        inst = _by_modality(s, "MR")
        copy = Path(db).parent / "broken.dcm"
        shutil.copy(inst.file_path, copy)
        _corrupt_j2k(str(copy))
        s.ingest(copy, workers=1, progress=False)
        [broken] = list(s.instances(where=f"file_path = '{copy}'"))
        with pytest.raises(CodecError) as info:
            _ = broken.pixel_array
        assert info.value.path == str(copy)
        assert info.value.transfer_syntax == JPEG2000Lossless
        assert str(copy) not in str(info.value) and JPEG2000Lossless in str(info.value)
        # the pydicom fallback (no gantry.pixels) fails the same way
        monkeypatch.setattr(nodes_module, "_decoder", lambda: None)
        broken.unload_pixel_data()
        with pytest.raises(CodecError, match=JPEG2000Lossless):
            _ = broken.pixel_array
        # an undecodable instance can still be given replacement pixels
        shape, dtype = broken._layout_from_index()
        broken.pixel_array = np.zeros(shape, dtype)
        assert broken.pixel_array.shape == shape


def test_pydicom_fallback_decodes(db: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(nodes_module, "_decoder", lambda: None)
    with Session(db, read_only=True) as s:
        inst = _by_modality(s, "CT")
        np.testing.assert_array_equal(inst.pixel_array, pydicom.dcmread(inst.file_path).pixel_array)
