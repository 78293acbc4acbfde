"""gantry.pixels.redact_dataset: every input family, output syntax rules, fail-closed behaviour."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import imagecodecs
import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset
from pydicom.encaps import encapsulate, generate_frames
from pydicom.uid import (
    DeflatedExplicitVRLittleEndian,
    ExplicitVRLittleEndian,
    HTJ2KLossless,
    ImplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGLossless,
    JPEGLSLossless,
    RLELossless,
)

import gantry.pixels._redact_dataset as redact_dataset_module
from gantry.errors import CodecError, ConfigError, RedactionError
from gantry.pixels import (
    Compression,
    Zone,
    apply_encoded,
    decode,
    encode,
    redact,
    redact_dataset,
)
from gantry.testing import make_instance

ZONES = [Zone(0, 3, 0, 40), Zone(5, 7, 2, 6), Zone(6, 9, 4, 8)]


def _expected(ds: Dataset, zones: list[Zone], fill: float) -> np.ndarray:
    """An independent expectation: decode everything, redact the whole array."""
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    return redact(
        decode(ds), zones, fill=fill, samples_per_pixel=int(ds.SamplesPerPixel), frames=frames
    ).array


@pytest.mark.parametrize(
    "ts", [ExplicitVRLittleEndian, ImplicitVRLittleEndian, DeflatedExplicitVRLittleEndian]
)
@pytest.mark.parametrize(
    ("shape", "dtype", "opts"),
    [
        ((3, 12, 10), np.uint16, {"bits_stored": 12}),  # dirty unused bits
        ((12, 10), np.int16, {"bits_stored": 12}),
        ((2, 12, 10, 3), np.uint8, {"planar": 1}),
        ((12, 10, 3), np.uint8, {"planar": 0}),
    ],
)
def test_native_little_endian_is_rewritten_in_place(
    ts: str,
    shape: tuple[int, ...],
    dtype: type,
    opts: dict[str, object],
    rng: np.random.Generator,
    make_ds: Callable[..., Dataset],
    via_file: Callable[[Dataset], Dataset],
) -> None:
    info = np.iinfo(dtype)
    stored = rng.integers(info.min, info.max, shape, endpoint=True, dtype=dtype)
    ds = via_file(make_ds(stored, transfer_syntax=ts, **opts))
    original = bytes(ds.PixelData)
    expected = _expected(ds, ZONES, fill=1)
    report = redact_dataset(ds, ZONES, fill=1)
    assert report.method == "in-place" and report.changed and report.verified
    assert report.transfer_syntax_out == ts == ds.file_meta.TransferSyntaxUID
    assert report.warnings == (
        "zone (0, 3, 0, 40) extends outside the 12x10 image; clipped to (0, 3, 0, 10)",
    )
    out = via_file(ds)
    np.testing.assert_array_equal(decode(out), expected)
    # the last row lies below every zone: its bytes (unused high bits too) are the original's
    assert out.PixelData[-10:] == original[-10:]
    assert out.PixelData[:10] != original[:10]


@pytest.mark.parametrize("ts", [RLELossless, JPEG2000Lossless, JPEGLSLossless, HTJ2KLossless])
def test_encapsulated_lossless_keeps_its_syntax(ts: str, tmp_path: Path) -> None:
    ds = make_instance(tmp_path / "us.dcm", modality="US", frames=3, rows=32, columns=48,
                       transfer_syntax=ts)  # fmt: skip
    ds = pydicom.dcmread(tmp_path / "us.dcm")
    annotation = [Zone(0, 5, 0, 18)]  # the builder burns "text" into rows 1..3, cols 1..16
    before = decode(ds)
    assert before[:, 1:4, 1:17].max() > before[:, 1:4, 1:17].min()
    expected = _expected(ds, annotation, fill=0)
    report = redact_dataset(ds, annotation)
    assert report.method == "transcode" and report.frames == 3 and report.pixels == 90
    assert ds.file_meta.TransferSyntaxUID == ts
    ds.save_as(tmp_path / "out.dcm", enforce_file_format=True)
    out = decode(pydicom.dcmread(tmp_path / "out.dcm"))
    np.testing.assert_array_equal(out, expected)
    assert out[:, :5, :18].max() == 0


@pytest.mark.parametrize("comp", [Compression.JPEG_LOSSLESS, Compression.HTJ2K_RPCL])
def test_other_lossless_encoders_keep_their_syntax(
    comp: Compression, image: Callable[..., np.ndarray], make_ds: Callable[..., Dataset]
) -> None:
    pixels = image((2, 10, 12), -500, 1500, np.int16)
    ds = make_ds(pixels, bits_stored=12)
    apply_encoded(ds, encode(pixels, ds, comp))
    expected = _expected(ds, ZONES, fill=-5)
    redact_dataset(ds, ZONES, fill=-5)
    assert ds.file_meta.TransferSyntaxUID == comp.transfer_syntax
    np.testing.assert_array_equal(decode(ds), expected)


def test_jpeg_process14_stays_process14(
    image: Callable[..., np.ndarray], make_ds: Callable[..., Dataset]
) -> None:
    pixels = image((10, 12), 0, 255, np.uint8)
    ds = make_ds(pixels)
    apply_encoded(ds, encode(pixels, ds, JPEGLossless))
    redact_dataset(ds, ZONES)
    assert ds.file_meta.TransferSyntaxUID == JPEGLossless


@pytest.mark.parametrize(
    "name",
    [
        "SC_rgb_dcmtk_+eb+cy+np.dcm",  # JPEG baseline YBR_FULL_422
        "JPGExtended.dcm",  # 12-bit JPEG extended
        "JPEG2000.dcm",  # JPEG 2000 (lossy syntax)
        "SC_rgb_jls_lossy_line.dcm",  # JPEG-LS near-lossless
        "MR_small_bigendian.dcm",  # big endian: no encoder, so explicit LE
        "SC_ybr_full_422_uncompressed.dcm",  # subsampled native YBR: converted to RGB
        "liver_1frame.dcm",  # 1 bit
    ],
)
def test_lossy_and_other_inputs_become_explicit_little_endian(
    name: str, sample: Callable[[str], Dataset], via_file: Callable[[Dataset], Dataset]
) -> None:
    ds = sample(name)
    lossy = ds.file_meta.TransferSyntaxUID.is_compressed
    fill = 1 if ds.BitsAllocated == 1 else 0
    expected = _expected(ds, ZONES, fill=fill)
    report = redact_dataset(ds, ZONES, fill=fill)
    assert report.transfer_syntax_out == ExplicitVRLittleEndian
    out = via_file(ds)
    np.testing.assert_array_equal(decode(out), expected)
    if ds.SamplesPerPixel == 3:
        assert (out.PhotometricInterpretation, out.PlanarConfiguration) == ("RGB", 0)
    if lossy:
        assert out.LossyImageCompression == "01"
        np.testing.assert_array_equal(out.pixel_array, expected)  # pydicom reads it back too


def test_zones_outside_leave_the_dataset_alone(sample: Callable[[str], Dataset]) -> None:
    ds = sample("MR_small_RLE.dcm")
    data = ds.PixelData
    report = redact_dataset(ds, [Zone(100, 110, 0, 5)])
    assert not report.changed and report.method == "unchanged" and report.pixels == 0
    assert report.warnings == (
        "zone (100, 110, 0, 5) lies entirely outside the 64x64 image; nothing redacted",
    )
    assert ds.PixelData is data


def test_fill_must_fit_bits_stored(make_ds: Callable[..., Dataset]) -> None:
    ds = make_ds(np.zeros((4, 4), np.uint16), bits_stored=12)
    data = ds.PixelData
    with pytest.raises(RedactionError, match="within 0..4095 for BitsStored 12, got 4096"):
        redact_dataset(ds, [Zone(0, 1, 0, 1)], fill=4096)
    assert ds.PixelData is data


def test_failed_verification_leaves_the_dataset_alone(
    monkeypatch: pytest.MonkeyPatch, sample: Callable[[str], Dataset]
) -> None:
    def broken(array: np.ndarray, zones: object, **kwargs: object) -> object:
        return redact(array, [Zone(0, 1, 0, 1)], **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(redact_dataset_module, "redact", broken)
    for name in ("MR_small.dcm", "MR_small_RLE.dcm"):  # in-place and transcode paths
        ds = sample(name)
        data = ds.PixelData
        with pytest.raises(RedactionError, match="not the fill value"):
            redact_dataset(ds, [Zone(0, 9, 0, 9)])
        assert ds.PixelData is data


@pytest.mark.parametrize("ts", [JPEG2000Lossless, ExplicitVRLittleEndian])
def test_worker_threads_give_identical_output(ts: str, tmp_path: Path) -> None:
    make_instance(tmp_path / "a.dcm", modality="US", frames=5, rows=24, columns=32,
                  transfer_syntax=ts)  # fmt: skip
    one, two = pydicom.dcmread(tmp_path / "a.dcm"), pydicom.dcmread(tmp_path / "a.dcm")
    redact_dataset(one, ZONES, workers=1)
    redact_dataset(two, ZONES, workers=2)
    assert one.PixelData == two.PixelData
    pixels = decode(one)
    assert (
        encode(pixels, one, "jpegls", workers=3).pixel_data
        == encode(pixels, one, "jpegls").pixel_data
    )


def test_single_frame_j2k_on_openjpeg_threads_is_identical(tmp_path: Path) -> None:
    make_instance(tmp_path / "a.dcm", modality="US", frames=1, rows=64, columns=80,
                  transfer_syntax=JPEG2000Lossless)  # fmt: skip
    one, two = pydicom.dcmread(tmp_path / "a.dcm"), pydicom.dcmread(tmp_path / "a.dcm")
    expected = _expected(one, ZONES, fill=0)
    redact_dataset(one, ZONES, workers=1)
    redact_dataset(two, ZONES, workers=2)  # one frame: two OpenJPEG threads
    assert one.PixelData == two.PixelData
    np.testing.assert_array_equal(decode(two), expected)


def _tamper_frame(monkeypatch: pytest.MonkeyPatch, index: int) -> None:
    """Make the encoder write frame ``index`` (of the call) one grey level off."""
    import gantry.pixels._encode as encode_module

    real, seen = encode_module.encode_frame, []

    def tampered(frame: np.ndarray, *args: object, **kwargs: object) -> bytes:
        seen.append(None)
        if len(seen) - 1 == index:
            frame = frame.copy()
            frame[-1, -1] ^= 1
        return real(frame, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(encode_module, "encode_frame", tampered)


@pytest.mark.parametrize(("check", "index", "caught"), [
    ("first", 0, True), ("first", 2, False), ("all", 2, True),
])  # fmt: skip
def test_check_decodes_back_the_first_or_every_frame(
    check: str, index: int, caught: bool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_instance(tmp_path / "a.dcm", modality="US", frames=3, rows=24, columns=32,
                  transfer_syntax=JPEG2000Lossless)  # fmt: skip
    ds = pydicom.dcmread(tmp_path / "a.dcm")
    data = ds.PixelData
    _tamper_frame(monkeypatch, index)
    if caught:
        with pytest.raises(CodecError, match=f"lossless frame {index} did not decode"):
            redact_dataset(ds, ZONES, check=check)
        assert ds.PixelData is data
    else:  # frames after the first are trusted to the lossless encoder
        assert redact_dataset(ds, ZONES, check=check).changed


def test_check_must_be_first_or_all(make_ds: Callable[..., Dataset]) -> None:
    ds = make_ds(np.zeros((2, 8, 8), np.uint8))
    with pytest.raises(ConfigError, match="'all' or 'first'"):
        redact_dataset(ds, ZONES, check="some")


def test_a_failing_frame_stops_the_worker_pipeline(
    make_ds: Callable[..., Dataset], image: Callable[..., np.ndarray]
) -> None:
    pixels = image((6, 8, 8), 0, 255, np.uint8)
    ds = make_ds(pixels)
    apply_encoded(ds, encode(pixels, ds, "j2k"))
    frames = list(generate_frames(ds.PixelData, number_of_frames=6))
    frames[3] = b"\xff\x4f\xff\x51broken"
    ds.PixelData = encapsulate(frames)
    data = ds.PixelData
    with pytest.raises(CodecError, match="could not be decoded"):
        redact_dataset(ds, ZONES, workers=2)
    assert ds.PixelData is data


@pytest.mark.parametrize("planar", [0, 1])
def test_in_place_batches_of_frames(
    planar: int,
    rng: np.random.Generator,
    make_ds: Callable[..., Dataset],
    via_file: Callable[[Dataset], Dataset],
) -> None:
    stored = rng.integers(0, 256, (7, 12, 10, 3), dtype=np.uint8)  # thin zones: 7 frames a batch
    ds = make_ds(stored, planar=planar)
    zones = [Zone(2, 3, 1, 4), Zone(10, 11, -3, 2)]
    expected = _expected(ds, zones, fill=200)
    report = redact_dataset(ds, zones, fill=200)
    assert report.method == "in-place" and report.pixels == 5
    np.testing.assert_array_equal(decode(via_file(ds)), expected)


def test_an_encoder_that_cannot_take_the_data_falls_back_to_native(
    rng: np.random.Generator, make_ds: Callable[..., Dataset]
) -> None:
    pixels = rng.integers(0, 2**20, (8, 9), dtype=np.uint32)  # 20-bit data in 32-bit words
    stream = imagecodecs.jpeg2k_encode(pixels, level=0, codecformat="J2K", bitspersample=20)
    ds = make_ds(pixels, transfer_syntax=JPEG2000Lossless, encoded=[stream], bits_stored=20)
    np.testing.assert_array_equal(decode(ds), pixels)
    expected = _expected(ds, ZONES, fill=0)
    report = redact_dataset(ds, ZONES)
    assert report.transfer_syntax_out == ExplicitVRLittleEndian
    np.testing.assert_array_equal(decode(ds), expected)
