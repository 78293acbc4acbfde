"""gantry.pixels.decode against every pixel sample bundled with pydicom.

Three checks, strongest first:

1. When pydicom can decode a sample in this environment, ``decode`` must equal
   ``ds.pixel_array`` exactly (values, shape, dtype kind and size; gantry's
   arrays are always native byte order).  Here (no pydicom plugins installed)
   that covers the native, deflated and RLE samples; with pylibjpeg, Pillow and
   pyjpegls installed it covers all of them.
2. ``PYDICOM_DIGESTS`` pins the digest of pydicom 3.0.2's ``pixel_array`` for
   every compressed sample, produced with Pillow 13 (JPEG, JPEG 2000),
   pylibjpeg 2.1 (+openjpeg 2.6, libjpeg 2.5) and pyjpegls 1.5 — run this file
   as a script in such an environment to regenerate the table.
3. Compressed samples are compared with their uncompressed twins in the same
   folder: exactly when lossless, within a bound when lossy.

Samples pydicom cannot decode at all are listed in ``UNDECODABLE`` with why;
``decode`` must raise :class:`CodecError` for them (except one, see below).
"""

from __future__ import annotations

import hashlib
import warnings
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.pixels import get_decoder
from pydicom.uid import JPEGBaseline8Bit, JPEGExtended12Bit

from gantry.errors import CodecError
from gantry.pixels import decode, iter_frames

SAMPLES = Path(pydicom.__file__).parent / "data" / "test_files"

# pydicom 3.0.2 pixel_array digests (see the module docstring); plugin in the comment
PYDICOM_DIGESTS = {
    "693_J2KI.dcm": "50efc558f56c99a8",  # pillow
    "GDCMJ2K_TextGBR.dcm": "e99a2b4038ae6b05",  # pylibjpeg (pillow refuses it)
    "J2K_pixelrep_mismatch.dcm": "c26d8d93ffe95cf6",  # pillow
    "JPEG2000.dcm": "8e64e20de9c1ee30",  # pillow
    "JPEGLSNearLossless_08.dcm": "b8b961b695b81079",  # pyjpegls
    "JPEGLSNearLossless_16.dcm": "77000b120f6a2fbb",  # pyjpegls
    "MR_small_jp2klossless.dcm": "f4bd1878cd936d27",  # pillow
    "MR_small_jpeg_ls_lossless.dcm": "f4bd1878cd936d27",  # pyjpegls
    "SC_jpeg_no_color_transform.dcm": "29651490ad29a0e6",  # pillow
    "SC_jpeg_no_color_transform_2.dcm": "7439adc24f1bc970",  # pillow
    "SC_rgb_dcmtk_+eb+cr.dcm": "dd9afbdd7cbdc39a",  # pillow
    "SC_rgb_dcmtk_+eb+cy+n1.dcm": "ff7df128c55f9996",  # pillow
    "SC_rgb_dcmtk_+eb+cy+n2.dcm": "9dac832f34fcfcb9",  # pillow
    "SC_rgb_dcmtk_+eb+cy+np.dcm": "ff7df128c55f9996",  # pillow
    "SC_rgb_dcmtk_+eb+cy+s2.dcm": "9dac832f34fcfcb9",  # pillow
    "SC_rgb_dcmtk_+eb+cy+s4.dcm": "9dac832f34fcfcb9",  # pillow
    "SC_rgb_gdcm_KY.dcm": "39e02393f50b88b8",  # pillow
    "SC_rgb_jls_lossy_line.dcm": "31b434d66653b38f",  # pyjpegls
    "SC_rgb_jls_lossy_sample.dcm": "31b434d66653b38f",  # pyjpegls
    "SC_rgb_jpeg.dcm": "29651490ad29a0e6",  # pillow
    "SC_rgb_jpeg_app14_dcmd.dcm": "7439adc24f1bc970",  # pillow
    "SC_rgb_jpeg_dcmtk.dcm": "9dac832f34fcfcb9",  # pillow
    "SC_rgb_jpeg_gdcm.dcm": "39e02393f50b88b8",  # pylibjpeg (Process 14 SV1)
    "SC_rgb_jpeg_lossy_gdcm.dcm": "a2c163084ddbd848",  # pillow
    "SC_rgb_small_odd_jpeg.dcm": "56bfaa90b826eb41",  # pillow
    "examples_jpeg2k.dcm": "a2cbcfb0f92233cd",  # pillow
    "examples_ybr_color.dcm": "e4b64af10e621e0c",  # pillow
}

# 12-bit JPEG Extended: Pillow cannot decode it; pydicom+pylibjpeg (Thomas Richter's
# libjpeg) differs from libjpeg-turbo by ±1 on 3612 of 262144 pixels (lossy IDCT
# rounding).  Pinned to gantry's own output, checked against its twin below.
GANTRY_DIGESTS = {"JPGExtended.dcm": "d69f2080691867d6", "JPEG-lossy.dcm": "d69f2080691867d6"}

# (compressed sample, uncompressed twin, max |difference| or None for "lossless")
TWINS = [
    ("MR_small_RLE.dcm", "MR_small.dcm", 0),
    ("MR_small_jp2klossless.dcm", "MR_small.dcm", 0),
    ("MR_small_jpeg_ls_lossless.dcm", "MR_small.dcm", 0),
    ("SC_rgb_jpeg_gdcm.dcm", "SC_rgb_rle.dcm", 0),
    ("SC_rgb_gdcm_KY.dcm", "SC_rgb_rle.dcm", 0),
    ("SC_rgb_jpeg.dcm", "SC_rgb_jpeg_dcmd.dcm", 0),  # dcmtk's own decompression
    ("SC_jpeg_no_color_transform.dcm", "SC_rgb_jpeg_dcmd.dcm", 0),
    ("SC_rgb_jls_lossy_line.dcm", "SC_rgb_rle.dcm", 2),  # near-lossless, NEAR 2
    ("SC_rgb_jls_lossy_sample.dcm", "SC_rgb_rle.dcm", 2),
    ("JPEG-lossy.dcm", "JPGExtended.dcm", 0),
]
LOSSY_TWINS = [  # JPEG baseline of the colour bars: mean |difference| bound
    ("SC_rgb_dcmtk_+eb+cr.dcm", "SC_rgb_rle.dcm"),
    ("SC_rgb_dcmtk_+eb+cy+n1.dcm", "SC_rgb_rle.dcm"),
    ("SC_rgb_dcmtk_+eb+cy+n2.dcm", "SC_rgb_rle.dcm"),
    ("SC_rgb_dcmtk_+eb+cy+np.dcm", "SC_rgb_rle.dcm"),
    ("SC_rgb_dcmtk_+eb+cy+s2.dcm", "SC_rgb_rle.dcm"),
    ("SC_rgb_dcmtk_+eb+cy+s4.dcm", "SC_rgb_rle.dcm"),
    ("SC_rgb_jpeg_dcmtk.dcm", "SC_rgb_rle.dcm"),
    ("SC_rgb_jpeg_lossy_gdcm.dcm", "SC_rgb_rle.dcm"),
    ("SC_rgb_small_odd_jpeg.dcm", "SC_rgb_small_odd.dcm"),
]

# Samples with pixel data that neither pydicom (with every plugin) nor gantry decode.
UNDECODABLE = {
    "JPEG2000-embedded-sequence-delimiter.dcm": "the codestream's SIZ marker is overwritten "
    "by an item tag (a parser test); OpenJPEG rejects it",
    "MR_truncated.dcm": "Pixel Data is 62 bytes short of one frame",
    "badVR.dcm": "NumberOfFrames is '1A' (a bad IS value)",
    "meta_missing_tsyntax.dcm": "no Image Pixel attributes (and no transfer syntax)",
    "nested_priv_SQ.dcm": "PixelData without Rows, Columns or BitsAllocated",
}
# JPEG-lossy.dcm: one byte of its scan header is wrong (Se != 63 for a sequential
# scan).  pylibjpeg refuses it, libjpeg-turbo decodes it — to exactly the pixels of
# JPGExtended.dcm, its corrected twin — so gantry decodes it (checked in TWINS).


def _digest(arr: np.ndarray) -> str:
    a = np.ascontiguousarray(arr, dtype=arr.dtype.newbyteorder("<"))
    h = hashlib.sha256(f"{a.shape}|{a.dtype.str}".encode())
    h.update(a.tobytes())
    return h.hexdigest()[:16]


def _read(name: str | Path) -> pydicom.Dataset:
    """Read a sample; some carry deliberate oddities pydicom warns about."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return pydicom.dcmread(SAMPLES / name)


def _pixel_samples() -> list[str]:
    names = []
    for path in sorted(SAMPLES.rglob("*")):
        if not path.is_file():
            continue
        try:
            ds = _read(path)
        except Exception:
            continue
        if any(k in ds for k in ("PixelData", "FloatPixelData", "DoubleFloatPixelData")):
            names.append(str(path.relative_to(SAMPLES)))
    return names


PIXEL_SAMPLES = _pixel_samples()


def _pydicom_array(ds: pydicom.Dataset) -> np.ndarray | None:
    """pydicom's pixel_array, or None when pydicom cannot decode it here.

    Lossy JPEG prefers Pillow (libjpeg-turbo, like imagecodecs) when installed.
    """
    ts = ds.file_meta.get("TransferSyntaxUID")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            if ts in (JPEGBaseline8Bit, JPEGExtended12Bit):
                plugins = get_decoder(ts).available_plugins
                if "pillow" not in plugins:
                    return None  # only pylibjpeg: a different IDCT (see GANTRY_DIGESTS)
                ds.pixel_array_options(decoding_plugin="pillow")
            return ds.pixel_array
        except Exception:
            return None


def test_the_sample_list_is_what_we_expect() -> None:
    assert len(PIXEL_SAMPLES) >= 80
    named = set(PYDICOM_DIGESTS) | set(GANTRY_DIGESTS) | set(UNDECODABLE)
    assert named <= set(PIXEL_SAMPLES)


@pytest.mark.parametrize("name", PIXEL_SAMPLES)
def test_decode_matches_pydicom(name: str) -> None:
    ds = _read(name)
    if name in UNDECODABLE:
        with pytest.raises(CodecError) as info, warnings.catch_warnings():
            warnings.simplefilter("ignore")  # badVR.dcm: pydicom warns about '1A'
            decode(ds)
        assert info.value.path == str(SAMPLES / name)
        assert _pydicom_array(_read(name)) is None
        return
    ours = decode(ds)
    assert ours.flags.writeable and ours.dtype.isnative
    expected = _pydicom_array(_read(name))
    if expected is not None:
        assert ours.shape == expected.shape
        assert (ours.dtype.kind, ours.dtype.itemsize) == (
            expected.dtype.kind,
            expected.dtype.itemsize,
        )
        np.testing.assert_array_equal(ours, expected)
    digest = PYDICOM_DIGESTS.get(name) or GANTRY_DIGESTS.get(name)
    if digest is not None:
        assert _digest(ours) == digest
    else:
        assert expected is not None, f"{name}: no reference at all"


@pytest.mark.parametrize(("name", "twin", "bound"), TWINS)
def test_decode_matches_uncompressed_twin(name: str, twin: str, bound: int) -> None:
    ours = decode(_read(name)).astype(np.int64)
    ref = decode(_read(twin)).astype(np.int64)
    assert ours.shape == ref.shape
    assert int(np.abs(ours - ref).max()) <= bound


@pytest.mark.parametrize(("name", "twin"), LOSSY_TWINS)
def test_lossy_jpeg_is_close_to_its_source(name: str, twin: str) -> None:
    ours = decode(_read(name)).astype(np.int64)
    ref = decode(_read(twin)).astype(np.int64)
    assert ours.shape == ref.shape
    assert np.abs(ours - ref).mean() < 5


@pytest.mark.parametrize(
    "name",
    [
        "examples_ybr_color.dcm",
        "SC_rgb_rle_16bit_2frame.dcm",
        "rtdose.dcm",
        "SC_rgb_rle_32bit_2frame.dcm",
    ],
)
def test_frames_one_by_one_equal_the_whole(name: str) -> None:
    if not (SAMPLES / name).exists():
        pytest.skip(f"{name} is not bundled with this pydicom")
    ds = _read(name)
    whole = decode(ds)
    frames = list(iter_frames(ds))
    assert len(frames) == whole.shape[0]
    for index, frame in enumerate(frames):
        np.testing.assert_array_equal(frame, whole[index])
        np.testing.assert_array_equal(decode(ds, frame=index), whole[index])


if __name__ == "__main__":  # regenerate PYDICOM_DIGESTS where pydicom has its plugins
    for sample in PIXEL_SAMPLES:
        dataset = _read(sample)
        if not dataset.file_meta.TransferSyntaxUID.is_encapsulated:
            continue
        array = _pydicom_array(dataset)
        if array is not None:
            print(f'    "{sample}": "{_digest(array)}",')
