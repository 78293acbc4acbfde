"""gantry.pixels.encode / apply_encoded: round trips for every encoder, attributes, errors."""

from __future__ import annotations

import warnings
from collections.abc import Callable

import numpy as np
import pytest
from pydicom.dataset import Dataset
from pydicom.encaps import parse_basic_offsets
from pydicom.uid import (
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEGBaseline8Bit,
    JPEGLossless,
)

import gantry.pixels._encode as encode_module
from gantry.errors import CodecError, ConfigError
from gantry.pixels import Compression, EncodedPixels, apply_encoded, decode, encode

LOSSLESS = [c for c in Compression if not c.lossy]

# name → (shape, lo, hi, dtype, build options)
KINDS: dict[str, tuple[tuple[int, ...], int, int, type, dict[str, object]]] = {
    "mono8": ((13, 17), 0, 255, np.uint8, {}),
    "mono16-12bit": ((13, 17), 0, 4095, np.uint16, {"bits_stored": 12}),
    "mono16": ((9, 10), 0, 65535, np.uint16, {}),
    "signed16": ((13, 17), -32768, 32767, np.int16, {}),
    "signed16-12bit": ((13, 17), -2048, 2047, np.int16, {"bits_stored": 12}),
    "rgb8": ((11, 14, 3), 0, 255, np.uint8, {}),
    "mono16-frames": ((3, 12, 9), 0, 4095, np.uint16, {"bits_stored": 12}),
    "rgb8-frames": ((2, 8, 10, 3), 0, 255, np.uint8, {}),
}


def _pydicom_can_decode(ds: Dataset) -> np.ndarray | None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return ds.pixel_array
        except Exception:
            return None


@pytest.mark.parametrize("kind", list(KINDS))
@pytest.mark.parametrize("comp", LOSSLESS, ids=lambda c: c.value)
def test_lossless_round_trip(
    comp: Compression,
    kind: str,
    image: Callable[..., np.ndarray],
    make_ds: Callable[..., Dataset],
    via_file: Callable[[Dataset], Dataset],
) -> None:
    shape, lo, hi, dtype, opts = KINDS[kind]
    pixels = image(shape, lo, hi, dtype)
    pixels.flat[0], pixels.flat[-1] = lo, hi  # the extremes survive too
    ds = make_ds(pixels, **opts)
    encoded = encode(pixels, ds, comp)
    assert isinstance(encoded, EncodedPixels) and not encoded.lossy
    assert encoded.frames == (
        shape[0] if len(shape) == 4 or (len(shape) == 3 and shape[-1] != 3) else 1
    )
    apply_encoded(ds, encoded)
    assert ds.file_meta.TransferSyntaxUID == comp.transfer_syntax
    out = via_file(ds)
    np.testing.assert_array_equal(decode(out), pixels)
    rgb = pixels.shape[-1] == 3
    j2k = comp in (Compression.J2K, Compression.HTJ2K, Compression.HTJ2K_RPCL)
    assert out.PhotometricInterpretation == (
        ("YBR_RCT" if j2k else "RGB") if rgb else "MONOCHROME2"
    )
    if encoded.encapsulated:
        assert out["PixelData"].is_undefined_length
        assert len(parse_basic_offsets(out.PixelData)) == encoded.frames  # Basic Offset Table
    reference = _pydicom_can_decode(out)  # pydicom's own decoders, where installed
    if reference is not None:
        np.testing.assert_array_equal(reference, pixels)


def test_rle_is_read_by_pydicoms_own_decoder(
    image: Callable[..., np.ndarray], make_ds: Callable[..., Dataset]
) -> None:
    pixels = image((3, 20, 30, 3), 0, 65535, np.uint16)
    pixels[:, :5] = 7  # long runs
    ds = make_ds(pixels)
    apply_encoded(ds, encode(pixels, ds, "rle"))
    ds.pixel_array_options(decoding_plugin="pydicom")
    np.testing.assert_array_equal(ds.pixel_array, pixels)


def test_iterable_of_frames_and_uid_targets(
    image: Callable[..., np.ndarray], make_ds: Callable[..., Dataset]
) -> None:
    pixels = image((4, 6, 7), 0, 255, np.uint8)
    ds = make_ds(pixels)
    enc = encode((f for f in pixels), ds, JPEGLossless)  # a generator, consumed once
    assert enc.transfer_syntax == JPEGLossless and enc.frames == 4
    for uid in (ImplicitVRLittleEndian, ExplicitVRLittleEndian):
        native = encode(list(pixels), ds, uid)
        assert native.transfer_syntax == uid and native.pixel_data == pixels.tobytes()
    apply_encoded(ds, enc)
    np.testing.assert_array_equal(decode(ds), pixels)


def test_big_endian_and_ybr_sources_become_little_endian_rgb(
    sample: Callable[[str], Dataset],
) -> None:
    ds = sample("ExplVR_BigEnd.dcm")
    assert ds.file_meta.TransferSyntaxUID == ExplicitVRBigEndian
    pixels = decode(ds)
    apply_encoded(ds, encode(pixels, ds, "none"))
    assert ds.file_meta.TransferSyntaxUID == ExplicitVRLittleEndian
    np.testing.assert_array_equal(decode(ds), pixels)
    np.testing.assert_array_equal(ds.pixel_array, pixels)

    ds = sample("SC_rgb_dcmtk_+eb+cy+np.dcm")  # JPEG baseline, YBR_FULL_422
    assert ds.file_meta.TransferSyntaxUID == JPEGBaseline8Bit
    pixels = decode(ds)
    enc = encode(pixels, ds, "jpegls")
    assert enc.attributes["PhotometricInterpretation"] == "RGB"
    apply_encoded(ds, enc)
    np.testing.assert_array_equal(decode(ds), pixels)


def test_one_bit_and_float_native(
    rng: np.random.Generator, make_ds: Callable[..., Dataset], via_file: Callable[..., Dataset]
) -> None:
    bits = rng.integers(0, 2, (3, 5, 7), dtype=np.uint8)
    packed = np.packbits(bits.ravel(), bitorder="little").tobytes()
    ds = make_ds(None, rows=5, columns=7, bits_allocated=1, number_of_frames=3, pixel_bytes=packed)
    enc = encode(bits, ds, "none")
    assert enc.pixel_data[: len(packed)] == packed
    apply_encoded(ds, enc)
    np.testing.assert_array_equal(decode(via_file(ds)), bits)
    with pytest.raises(CodecError, match="1-bit pixel data"):
        encode(bits, ds, "rle")  # pydicom could not read it back (sample sweep)

    values = rng.normal(size=(4, 6)).astype(np.float32)
    ds = make_ds(None, rows=4, columns=6, bits_allocated=32, pixel_bytes=b"")
    del ds.PixelData
    ds.FloatPixelData = values.tobytes()
    enc = encode(values, ds, "none")
    assert (enc.pixel_keyword, enc.pixel_vr) == ("FloatPixelData", "OF")
    apply_encoded(ds, enc)
    np.testing.assert_array_equal(decode(via_file(ds)), values)
    with pytest.raises(CodecError, match="native only"):
        encode(values, ds, "rle")


# -------------------------------------------------------------------- lossy
@pytest.mark.parametrize("kind", ["mono16-12bit", "signed16-12bit", "rgb8", "mono16-frames"])
def test_jpegls_near_lossless_bound_and_attributes(
    kind: str, image: Callable[..., np.ndarray], make_ds: Callable[..., Dataset]
) -> None:
    shape, lo, hi, dtype, opts = KINDS[kind]
    pixels = image(shape, lo, hi, dtype)
    ds = make_ds(pixels, **opts)
    enc = encode(pixels, ds, "jpegls-near", level=3)
    assert enc.lossy and enc.transfer_syntax == Compression.JPEGLS_NEAR.transfer_syntax
    assert enc.attributes["LossyImageCompression"] == "01"
    assert enc.attributes["LossyImageCompressionMethod"] == ["ISO_14495_1"]
    assert float(enc.attributes["LossyImageCompressionRatio"][0]) == pytest.approx(enc.ratio, 0.01)
    apply_encoded(ds, enc)
    error = np.abs(decode(ds).astype(np.int64) - pixels.astype(np.int64))
    assert error.max() <= 3


def test_j2k_lossy_appends_to_earlier_lossy_history(
    image: Callable[..., np.ndarray], make_ds: Callable[..., Dataset]
) -> None:
    pixels = image((16, 20, 3), 0, 255, np.uint8)
    ds = make_ds(pixels)
    ds.LossyImageCompression = "01"
    ds.LossyImageCompressionRatio = "8.5"
    ds.LossyImageCompressionMethod = "ISO_10918_1"
    enc = encode(pixels, ds, "j2k-lossy", level=45)
    apply_encoded(ds, enc)
    assert ds.PhotometricInterpretation == "YBR_ICT"
    assert list(ds.LossyImageCompressionMethod) == ["ISO_10918_1", "ISO_15444_1"]
    assert len(ds.LossyImageCompressionRatio) == 2
    out = decode(ds).astype(float)
    mse = ((out - pixels) ** 2).mean()
    assert 10 * np.log10(255**2 / max(mse, 1e-9)) > 35


def test_lossless_leaves_lossy_attributes_alone(
    image: Callable[..., np.ndarray], make_ds: Callable[..., Dataset]
) -> None:
    pixels = image((6, 6), 0, 255, np.uint8)
    ds = make_ds(pixels)
    enc = encode(pixels, ds, "j2k")
    assert not {"LossyImageCompression", "LossyImageCompressionRatio"} & set(enc.attributes)


# ------------------------------------------------------------------- errors
def test_bad_targets_and_levels(make_ds: Callable[..., Dataset]) -> None:
    pixels = np.zeros((4, 4), np.uint8)
    ds = make_ds(pixels)
    with pytest.raises(ConfigError, match="`transfer_syntax` must be one of"):
        encode(pixels, ds, "jpeg2000")
    with pytest.raises(ConfigError):
        encode(pixels, ds, JPEGBaseline8Bit)  # no lossy JPEG encoder: never silently
    with pytest.raises(CodecError, match="takes no `level`"):
        encode(pixels, ds, "j2k", level=40)


def test_frames_that_do_not_fit_the_dataset(make_ds: Callable[..., Dataset]) -> None:
    ds = make_ds(np.zeros((4, 4), np.uint16), bits_stored=12)
    with pytest.raises(CodecError, match="shaped"):
        encode(np.zeros((4, 5), np.uint16), ds, "rle")
    with pytest.raises(CodecError, match="outside BitsStored 12"):
        encode(np.full((4, 4), 5000, np.uint16), ds, "j2k")
    with pytest.raises(CodecError, match="values outside uint16"):
        encode(np.full((4, 4), -1, np.int32), ds, "none")
    with pytest.raises(CodecError, match="dtype float32"):
        encode(np.zeros((4, 4), np.float32), ds, "none")
    np.testing.assert_array_equal(  # a safe cast is fine
        np.frombuffer(encode(np.ones((4, 4), np.uint8), ds, "none").pixel_data, "<u2"), 1
    )


def test_a_lossless_result_that_does_not_decode_back_is_refused(
    monkeypatch: pytest.MonkeyPatch, make_ds: Callable[..., Dataset]
) -> None:
    pixels = np.arange(64, dtype=np.uint8).reshape(8, 8)
    ds = make_ds(pixels)
    real = encode_module.encode_frame

    def tampered(frame: np.ndarray, *args: object, **kwargs: object) -> bytes:
        frame = frame.copy()
        frame[0, 0] += 1
        return real(frame, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(encode_module, "encode_frame", tampered)
    with pytest.raises(CodecError, match="did not decode to its input"):
        encode(pixels, ds, "jpegls")
