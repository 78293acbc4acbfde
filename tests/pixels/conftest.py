"""Fixtures for gantry.pixels: pydicom's bundled samples and small in-memory datasets."""

from __future__ import annotations

import io
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.uid import ExplicitVRBigEndian, ExplicitVRLittleEndian, generate_uid

SAMPLES = Path(pydicom.__file__).parent / "data" / "test_files"


def read_sample(name: str) -> Dataset:
    return pydicom.dcmread(SAMPLES / name)


def build_dataset(
    frames: np.ndarray | None = None,
    *,
    transfer_syntax: str = ExplicitVRLittleEndian,
    photometric: str | None = None,
    bits_stored: int | None = None,
    bits_allocated: int | None = None,
    signed: bool | None = None,
    samples: int | None = None,
    planar: int = 0,
    number_of_frames: int | None = None,
    encoded: Sequence[bytes] | None = None,
    pixel_bytes: bytes | None = None,
    rows: int | None = None,
    columns: int | None = None,
) -> Dataset:
    """A minimal Secondary Capture dataset around ``frames`` (pydicom's array layout).

    Native syntaxes store ``frames`` (or ``pixel_bytes`` as given); encapsulated
    ones wrap ``encoded`` (one encoded frame each).
    """
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = transfer_syntax
    ds.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.7"
    ds.file_meta.MediaStorageSOPInstanceUID = uid = generate_uid()
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.7"
    ds.SOPInstanceUID = uid
    if frames is not None:
        arr = np.asarray(frames)
        samples = samples or (3 if arr.ndim >= 3 and arr.shape[-1] == 3 else 1)
        multi = arr.ndim == (4 if samples > 1 else 3)
        nframes = arr.shape[0] if multi else 1
        rows, columns = arr.shape[1:3] if multi else arr.shape[:2]
        bits_allocated = bits_allocated or arr.dtype.itemsize * 8
        signed = arr.dtype.kind == "i" if signed is None else signed
    else:
        arr = None
        nframes = number_of_frames or 1
        samples = samples or 1
        signed = bool(signed)
    assert rows and columns and bits_allocated
    ds.Rows, ds.Columns = rows, columns
    ds.SamplesPerPixel = samples
    ds.PhotometricInterpretation = photometric or ("RGB" if samples == 3 else "MONOCHROME2")
    if samples > 1:
        ds.PlanarConfiguration = planar
    ds.BitsAllocated = bits_allocated
    ds.BitsStored = bits_stored or bits_allocated
    ds.HighBit = ds.BitsStored - 1
    ds.PixelRepresentation = int(signed)
    if number_of_frames is not None or nframes > 1:
        ds.NumberOfFrames = number_of_frames or nframes
    if encoded is not None:
        ds.PixelData = encapsulate(list(encoded))
        ds["PixelData"].VR = "OB"
        ds["PixelData"].is_undefined_length = True
        return ds
    if pixel_bytes is None:
        assert arr is not None
        data = arr
        if samples > 1 and planar == 1:
            data = np.moveaxis(data, -1, -3)  # (..., samples, rows, cols)
        order = ">" if transfer_syntax == ExplicitVRBigEndian else "<"
        pixel_bytes = np.ascontiguousarray(data, dtype=data.dtype.newbyteorder(order)).tobytes()
    if len(pixel_bytes) % 2:
        pixel_bytes += b"\0"
    ds.PixelData = pixel_bytes
    ds["PixelData"].VR = "OW" if bits_allocated > 8 else "OB"
    return ds


def through_file(ds: Dataset) -> Dataset:
    """Write ``ds`` with its transfer syntax and read it back."""
    buf = io.BytesIO()
    pydicom.dcmwrite(buf, ds, enforce_file_format=True)
    buf.seek(0)
    return pydicom.dcmread(buf)


@pytest.fixture
def make_ds() -> Callable[..., Dataset]:
    return build_dataset


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(20240601)


def smooth(rng: np.random.Generator, shape: tuple[int, ...], lo: int, hi: int, dtype: Any
           ) -> np.ndarray:  # fmt: skip
    """A smooth-ish random image (compresses like a real one) within ``lo..hi``."""
    base = rng.integers(lo, hi + 1, size=shape, dtype=np.int64)
    rows = np.linspace(0, 1, shape[-3 if len(shape) >= 3 and shape[-1] == 3 else -2])
    ramp = (rows * (hi - lo) // 2).astype(np.int64)
    ramp = ramp.reshape((-1, 1, 1) if shape[-1] == 3 and len(shape) >= 3 else (-1, 1))
    out = np.clip((base + ramp) // 2 + lo // 2, lo, hi)
    return out.astype(dtype)


@pytest.fixture
def sample() -> Callable[[str], Dataset]:
    return read_sample


@pytest.fixture
def via_file() -> Callable[[Dataset], Dataset]:
    return through_file


@pytest.fixture
def image(rng: np.random.Generator) -> Callable[..., np.ndarray]:
    """``image(shape, lo, hi, dtype)``: a smooth-ish random image."""

    def make(shape: tuple[int, ...], lo: int, hi: int, dtype: Any) -> np.ndarray:
        return smooth(rng, shape, lo, hi, dtype)

    return make
