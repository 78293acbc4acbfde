"""gantry.pixels.decode on synthetic data: layouts pydicom's samples do not cover, and errors."""

from __future__ import annotations

import io
import warnings
from collections.abc import Callable

import imagecodecs
import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset
from pydicom.pixels.encoders import RLELosslessEncoder
from pydicom.uid import (
    HTJ2K,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    HTJ2KLossless,
    HTJ2KLosslessRPCL,
    ImplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGLosslessSV1,
    RLELossless,
)

from gantry.errors import CodecError
from gantry.pixels import decode, iter_frames

NATIVE = [
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
]


def _pydicom(ds: Dataset) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return ds.pixel_array


def _case(name: str, rng: np.random.Generator) -> tuple[np.ndarray, dict[str, object]]:
    """(stored array as written, build_dataset options)."""
    if name == "u8":
        return rng.integers(0, 256, (7, 9), dtype=np.uint8), {}
    if name == "u16-12bit-dirty":  # garbage in the 4 unused high bits
        return rng.integers(0, 65536, (6, 5), dtype=np.uint16), {"bits_stored": 12}
    if name == "i16-12bit-dirty":
        return rng.integers(-32768, 32767, (6, 5), dtype=np.int16), {"bits_stored": 12}
    if name == "i8-signed":
        return rng.integers(-128, 128, (4, 6), dtype=np.int8), {}
    if name == "u32-frames":
        return rng.integers(0, 2**32, (3, 4, 5), dtype=np.uint32), {}
    if name == "rgb-planar0":
        return rng.integers(0, 256, (5, 6, 3), dtype=np.uint8), {"planar": 0}
    if name == "rgb-planar1-frames":
        return rng.integers(0, 256, (2, 5, 6, 3), dtype=np.uint8), {"planar": 1}
    if name == "rgb16-planar1":
        return rng.integers(0, 65536, (3, 4, 3), dtype=np.uint16), {"planar": 1}
    if name == "ybr-full":
        return rng.integers(0, 256, (4, 6, 3), dtype=np.uint8), {"photometric": "YBR_FULL"}
    if name == "palette":
        return rng.integers(0, 256, (5, 5), dtype=np.uint8), {"photometric": "PALETTE COLOR"}
    if name == "monochrome1":
        return rng.integers(0, 4096, (5, 5), dtype=np.uint16), {
            "photometric": "MONOCHROME1",
            "bits_stored": 12,
        }
    raise AssertionError(name)


CASES = [
    "u8",
    "u16-12bit-dirty",
    "i16-12bit-dirty",
    "i8-signed",
    "u32-frames",
    "rgb-planar0",
    "rgb-planar1-frames",
    "rgb16-planar1",
    "ybr-full",
    "palette",
    "monochrome1",
]


@pytest.mark.parametrize("ts", NATIVE, ids=lambda u: u.name)
@pytest.mark.parametrize("case", CASES)
def test_native_equals_pydicom(
    ts: str,
    case: str,
    rng: np.random.Generator,
    make_ds: Callable[..., Dataset],
    via_file: Callable[[Dataset], Dataset],
) -> None:
    stored, opts = _case(case, rng)
    ds = via_file(make_ds(stored, transfer_syntax=ts, **opts))
    expected = _pydicom(ds)
    ours = decode(ds)
    assert ours.shape == expected.shape and ours.dtype == expected.dtype.newbyteorder("=")
    np.testing.assert_array_equal(ours, expected)
    frames = list(iter_frames(ds))  # every frame on its own too
    whole = ours if len(frames) > 1 else ours[np.newaxis]
    for index, frame in enumerate(frames):
        np.testing.assert_array_equal(frame, whole[index])
        np.testing.assert_array_equal(decode(ds, frame=index), whole[index])


def test_native_ybr_full_422_is_expanded_and_converted(
    make_ds: Callable[..., Dataset], via_file: Callable[[Dataset], Dataset]
) -> None:
    raw = np.arange(2 * 4 * 4 * 2, dtype=np.uint8).tobytes()  # Y1 Y2 Cb Cr, 4x4, 2 frames
    ds = make_ds(
        None, rows=4, columns=4, samples=3, bits_allocated=8, number_of_frames=2,
        photometric="YBR_FULL_422", pixel_bytes=raw,
    )  # fmt: skip
    ds = via_file(ds)
    np.testing.assert_array_equal(decode(ds), _pydicom(ds))
    np.testing.assert_array_equal(decode(ds, frame=1), _pydicom(ds)[1])


@pytest.mark.parametrize("ts", [ExplicitVRLittleEndian, ExplicitVRBigEndian])
def test_one_bit_frames_not_byte_aligned(
    ts: str,
    rng: np.random.Generator,
    make_ds: Callable[..., Dataset],
    via_file: Callable[[Dataset], Dataset],
) -> None:
    bits = rng.integers(0, 2, (3, 5, 7), dtype=np.uint8)  # 35 bits per frame
    packed = np.packbits(bits.ravel(), bitorder="little").tobytes()
    ds = make_ds(
        None, rows=5, columns=7, bits_allocated=1, number_of_frames=3, pixel_bytes=packed,
        transfer_syntax=ts,
    )  # fmt: skip
    ds = via_file(ds)
    np.testing.assert_array_equal(decode(ds), bits)
    np.testing.assert_array_equal(decode(ds), _pydicom(ds))
    np.testing.assert_array_equal(decode(ds, frame=2), bits[2])


def test_big_endian_8bit_written_as_ow(
    rng: np.random.Generator, make_ds: Callable[..., Dataset], via_file: Callable[..., Dataset]
) -> None:
    stored = rng.integers(0, 256, (3, 3, 3), dtype=np.uint8)  # 27 bytes: odd, padded
    ds = make_ds(stored, transfer_syntax=ExplicitVRBigEndian)
    swapped = bytearray(stored.tobytes() + b"\0")
    swapped[0::2], swapped[1::2] = swapped[1::2], swapped[0::2]
    ds.PixelData = bytes(swapped)
    ds["PixelData"].VR = "OW"
    ds = via_file(ds)
    np.testing.assert_array_equal(decode(ds), stored)
    np.testing.assert_array_equal(decode(ds), _pydicom(ds))


def test_float_pixel_data(rng: np.random.Generator, make_ds: Callable[..., Dataset]) -> None:
    values = rng.normal(size=(2, 3, 4)).astype(np.float32)
    ds = make_ds(None, rows=3, columns=4, bits_allocated=32, number_of_frames=2, pixel_bytes=b"")
    del ds.PixelData, ds.PixelRepresentation, ds.BitsStored, ds.HighBit
    ds.FloatPixelData = values.tobytes()
    np.testing.assert_array_equal(decode(ds), values)
    np.testing.assert_array_equal(decode(ds), _pydicom(ds))


# ------------------------------------------------------------- encapsulated
def test_rle_from_pydicoms_encoder(
    rng: np.random.Generator, make_ds: Callable[..., Dataset]
) -> None:
    frames = rng.integers(0, 4096, (3, 6, 7, 3), dtype=np.uint16)
    opts = dict(
        rows=6, columns=7, samples_per_pixel=3, bits_allocated=16, bits_stored=16,
        pixel_representation=0, photometric_interpretation="RGB", number_of_frames=1,
        planar_configuration=0,
    )  # fmt: skip
    encoded = [RLELosslessEncoder.encode(f, encoding_plugin="pydicom", **opts) for f in frames]
    ds = make_ds(frames, transfer_syntax=RLELossless, encoded=encoded)
    np.testing.assert_array_equal(decode(ds), frames)
    np.testing.assert_array_equal(decode(ds), _pydicom(ds))


@pytest.mark.parametrize("ts", [HTJ2KLossless, HTJ2KLosslessRPCL])
@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.int16])
def test_htj2k_lossless(
    ts: str, dtype: type, rng: np.random.Generator, make_ds: Callable[..., Dataset]
) -> None:
    info = np.iinfo(dtype)
    frames = rng.integers(max(info.min, -2000), min(info.max, 4000), (2, 9, 11)).astype(dtype)
    encoded = [imagecodecs.htj2k_encode(f, reversible=True) for f in frames]
    ds = make_ds(frames, transfer_syntax=ts, encoded=encoded)
    np.testing.assert_array_equal(decode(ds), frames)


def test_htj2k_lossy_and_colour(rng: np.random.Generator, make_ds: Callable[..., Dataset]) -> None:
    rgb = np.repeat(np.linspace(0, 255, 16, dtype=np.uint8)[None, :, None], 12, axis=0)
    rgb = np.repeat(rgb, 3, axis=2)
    lossless = imagecodecs.htj2k_encode(rgb, reversible=True, rgb=True)
    ds = make_ds(rgb, transfer_syntax=HTJ2KLossless, encoded=[lossless], photometric="YBR_RCT")
    np.testing.assert_array_equal(decode(ds), rgb)
    lossy = imagecodecs.htj2k_encode(rgb, level=0.1, reversible=False)
    ds = make_ds(rgb, transfer_syntax=HTJ2K, encoded=[lossy])
    out = decode(ds)
    assert out.shape == rgb.shape and np.abs(out.astype(int) - rgb).mean() < 4


def test_j2k_sign_mismatch_is_corrected(make_ds: Callable[..., Dataset]) -> None:
    values = np.array([[-2000, -1, 0, 1, 4095, -4096]], dtype=np.int16)  # 13-bit signed
    stream = imagecodecs.jpeg2k_encode(
        values.view(np.uint16) & 0x1FFF, level=0, codecformat="J2K", reversible=True,
        bitspersample=13,
    )  # fmt: skip  # an unsigned 13-bit codestream, as some encoders write it
    ds = make_ds(values, transfer_syntax=JPEG2000Lossless, encoded=[stream], bits_stored=13)
    np.testing.assert_array_equal(decode(ds), values)


def test_jpeg_lossless_signed_12bit(make_ds: Callable[..., Dataset]) -> None:
    values = np.array([[-2048, -1, 0, 1, 2047, 5]], dtype=np.int16)
    stream = imagecodecs.jpeg8_encode(
        values.view(np.uint16) & 0x0FFF, lossless=True, predictor=1, bitspersample=12
    )
    ds = make_ds(values, transfer_syntax=JPEGLosslessSV1, encoded=[stream], bits_stored=12)
    np.testing.assert_array_equal(decode(ds), values)


def test_iter_frames_decodes_lazily(make_ds: Callable[..., Dataset]) -> None:
    frames = np.arange(3 * 4 * 4, dtype=np.uint8).reshape(3, 4, 4)
    good = [imagecodecs.jpeg2k_encode(f, level=0, codecformat="J2K") for f in frames[:2]]
    ds = make_ds(frames, transfer_syntax=JPEG2000Lossless, encoded=[*good, b"\xff\x4f\xff\x51junk"])
    it = iter_frames(ds)
    np.testing.assert_array_equal(next(it), frames[0])
    np.testing.assert_array_equal(next(it), frames[1])
    with pytest.raises(CodecError, match="could not be decoded"):
        next(it)
    np.testing.assert_array_equal(decode(ds, frame=1), frames[1])


# ------------------------------------------------------------------- errors
def test_unknown_transfer_syntax(make_ds: Callable[..., Dataset]) -> None:
    ds = make_ds(np.zeros((2, 2), np.uint8), transfer_syntax="1.2.840.10008.1.2.4.100")
    with pytest.raises(CodecError, match="cannot decode") as info:
        decode(ds, path="/data/x.dcm")
    assert info.value.path == "/data/x.dcm"
    assert info.value.transfer_syntax == "1.2.840.10008.1.2.4.100"
    assert "MPEG2" in str(info.value)


def test_corrupt_stream_names_syntax_and_keeps_the_file_out_of_the_message(
    make_ds: Callable[..., Dataset],
) -> None:
    ds = make_ds(np.zeros((4, 4), np.uint8), transfer_syntax=JPEG2000Lossless, encoded=[b"\0" * 64])
    with pytest.raises(CodecError) as info:
        decode(ds, path="scan.dcm")
    assert info.value.path == "scan.dcm" and info.value.transfer_syntax == JPEG2000Lossless
    # the path is a field, never message text: folder names often carry patient names
    assert str(info.value).startswith("pixel data (1.2.840.10008.1.2.4.90)")
    assert "scan.dcm" not in str(info.value)


def test_missing_codec(monkeypatch: pytest.MonkeyPatch, make_ds: Callable[..., Dataset]) -> None:
    frame = np.zeros((4, 4), np.uint8)
    stream = imagecodecs.jpeg2k_encode(frame, level=0, codecformat="J2K")
    ds = make_ds(frame, transfer_syntax=JPEG2000Lossless, encoded=[stream])
    monkeypatch.setattr(imagecodecs.JPEG2K, "available", False)
    with pytest.raises(CodecError, match="`jpeg2k` codec, which is not available"):
        decode(ds)


def test_frame_count_and_shape_mismatches(make_ds: Callable[..., Dataset]) -> None:
    frames = np.zeros((2, 4, 4), np.uint8)
    streams = [imagecodecs.jpeg2k_encode(f, level=0, codecformat="J2K") for f in frames]
    ds = make_ds(frames, transfer_syntax=JPEG2000Lossless, encoded=streams)
    ds.NumberOfFrames = 3
    with pytest.raises(CodecError, match="frame"):
        decode(ds)
    ds.NumberOfFrames = 2
    ds.Rows = 5
    with pytest.raises(CodecError, match=r"decoded to shape \(4, 4\)"):
        decode(ds)


def test_no_pixel_data_and_bad_frame_index(make_ds: Callable[..., Dataset]) -> None:
    ds = make_ds(np.zeros((2, 3), np.uint8))
    with pytest.raises(IndexError, match="`frame` must be in 0..0, got 1"):
        decode(ds, frame=1)
    del ds.PixelData
    with pytest.raises(CodecError, match="no \\(7FE0,0010\\) Pixel Data"):
        decode(ds)


@pytest.mark.parametrize(("implicit", "little"), [(True, True), (False, True), (False, False)])
def test_no_file_meta_uses_the_parsed_encoding(
    implicit: bool, little: bool, rng: np.random.Generator, make_ds: Callable[..., Dataset]
) -> None:
    stored = rng.integers(-3000, 3000, (2, 5, 6), dtype=np.int16)
    ts = ExplicitVRBigEndian if not little else ExplicitVRLittleEndian
    ds = make_ds(stored, transfer_syntax=ts)
    del ds.file_meta
    buf = io.BytesIO()
    pydicom.dcmwrite(buf, ds, implicit_vr=implicit, little_endian=little)
    buf.seek(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        back = pydicom.dcmread(buf, force=True)
    assert "TransferSyntaxUID" not in getattr(back, "file_meta", {})
    np.testing.assert_array_equal(decode(back), stored)


def test_no_transfer_syntax_and_no_evidence_is_refused(make_ds: Callable[..., Dataset]) -> None:
    ds = make_ds(np.zeros((2, 2), np.uint16))
    del ds.file_meta
    with pytest.raises(CodecError, match="has no transfer syntax"):
        decode(ds)
