"""Images with text burned in at known places, for OCR tests and the OCR benchmark.

:func:`text_image` draws text (Pillow, antialiased) over a modality-like
background — ultrasound speckle in a sector, CT in Hounsfield units, MR with
Rician noise, or an RGB screen capture — and returns the stored values with
the true box of every line of text.  :func:`make_text_instance` wraps that in
a DICOM instance of any photometric interpretation, bit depth, frame count
and lossless transfer syntax.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final

import numpy as np
from pydicom.dataset import Dataset
from pydicom.uid import ExplicitVRLittleEndian

__all__ = [
    "BACKGROUNDS",
    "TruthBox",
    "box_iou",
    "font_names",
    "make_text_instance",
    "text_image",
]

BACKGROUNDS: Final = ("us", "ct", "mr", "screen", "blank-ct", "blank-mr")

_DEJAVU: Final = (
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/truetype/dejavu/DejaVuSansMono-Bold.ttf",
    "/usr/share/fonts/truetype/dejavu/DejaVuSerif.ttf",
)


@dataclasses.dataclass(frozen=True)
class TruthBox:
    """Where a line of text was drawn: rows ``[r1, r2)`` (the font's line height) × columns
    ``[c1, c2)`` (the ink)."""

    r1: int
    r2: int
    c1: int
    c2: int
    text: str
    phi: bool

    @property
    def height(self) -> int:
        return self.r2 - self.r1


def box_iou(a: Any, b: Any) -> float:
    """Intersection over union of two boxes with ``r1, r2, c1, c2`` attributes.

    Examples
    --------
    >>> box_iou(TruthBox(0, 10, 0, 10, "", False), TruthBox(0, 10, 5, 15, "", False))
    0.3333333333333333
    """
    r = max(0, min(a.r2, b.r2) - max(a.r1, b.r1))
    c = max(0, min(a.c2, b.c2) - max(a.c1, b.c1))
    inter = r * c
    union = (a.r2 - a.r1) * (a.c2 - a.c1) + (b.r2 - b.r1) * (b.c2 - b.c1) - inter
    return inter / union if union else 0.0


def font_names() -> list[str]:
    """Fonts available here: Pillow's built-in one, plus DejaVu faces when installed."""
    return ["pillow"] + [Path(p).stem for p in _DEJAVU if Path(p).is_file()]


@functools.lru_cache(maxsize=64)
def _font(name: str, size: int) -> Any:
    from PIL import ImageFont

    if name == "pillow":
        return ImageFont.load_default(size=size)
    for p in _DEJAVU:
        if Path(p).stem == name:
            return ImageFont.truetype(p, size)
    raise ValueError(f"`font` must be one of {font_names()}, got {name!r}")


def _background(kind: str, rows: int, cols: int, rng: np.random.Generator) -> np.ndarray:
    """Float stored values: US 0–255, CT in HU, MR 0–4095, screen RGB 0–255."""
    yy, xx = np.mgrid[0:rows, 0:cols].astype(np.float32)
    cy, cx = rows / 2, cols / 2
    if kind == "us":
        r = np.hypot(yy + rows * 0.1, xx - cx)
        angle = np.abs(np.arctan2(xx - cx, yy + rows * 0.1))
        sector = (angle < 0.6) & (r < rows * 1.05)
        speckle = rng.rayleigh(40, (rows, cols)) * (1 - r / (rows * 1.4))
        return np.where(sector, np.clip(speckle, 0, 200), 0).astype(np.float32)
    ell = ((yy - cy) / (rows * 0.42)) ** 2 + ((xx - cx) / (cols * 0.38)) ** 2
    if kind in ("ct", "blank-ct"):
        hu = np.where(ell < 1, 40.0, -1000.0)
        hu = np.where((ell > 0.85) & (ell < 1), 700.0, hu)  # skull / ribs
        hu += np.where(ell < 0.3, 30 * np.sin(xx / 9) * np.cos(yy / 11), 0)
        return (hu + rng.normal(0, 12, (rows, cols))).astype(np.float32)
    if kind in ("mr", "blank-mr"):
        tissue = np.where(ell < 1, 700 + 250 * np.cos(np.hypot(yy - cy, xx - cx) / 7), 0)
        noise = rng.normal(0, 25, (2, rows, cols))
        return np.hypot(tissue + noise[0], noise[1]).astype(np.float32)
    if kind == "screen":
        img = np.full((rows, cols, 3), 38.0, np.float32)
        img[: max(8, rows // 14)] = (60, 70, 96)  # title bar
        img[rows // 6 :, cols // 5 :] = (20, 20, 24)  # image panel
        img[rows // 3 : rows * 5 // 6, cols // 3 : cols * 5 // 6] = 90 + 40 * np.sin(
            xx[rows // 3 : rows * 5 // 6, cols // 3 : cols * 5 // 6, None] / 13
        )
        return img
    raise ValueError(f"`kind` must be one of {BACKGROUNDS}, got {kind!r}")


def _ink(kind: str, contrast: str) -> float | tuple[float, float, float]:
    high = contrast == "high"
    return {
        "us": 255.0 if high else 150.0,
        "ct": 3000.0 if high else 190.0,  # window 40/400: white, or light grey over tissue
        "mr": 4095.0 if high else 1500.0,
        "screen": (235.0, 235.0, 200.0) if high else (140.0, 150.0, 160.0),
    }.get(kind.removeprefix("blank-"), 255.0)


def _default_texts(rng: np.random.Generator, identity: dict[str, str]) -> list[tuple[str, bool]]:
    name = identity.get("PatientName", "DOE^JOHN").replace("^", ", ")
    pid = identity.get("PatientID", "MRN0042")
    dob = identity.get("PatientBirthDate", "19610312")
    return [
        (name, True),
        (f"ID {pid}", True),
        (f"DOB {dob[6:8]}/{dob[4:6]}/{dob[:4]}", True),
        (["GAIN 52", "DEPTH 14", "FREQ 5.0", "5 cm"][int(rng.integers(4))], False),
    ]


def text_image(
    kind: str = "us",
    rows: int = 256,
    columns: int = 256,
    *,
    texts: Sequence[tuple[str, bool]] | None = None,
    size: int = 14,
    font: str = "pillow",
    contrast: str = "high",
    seed: int = 0,
    identity: dict[str, str] | None = None,
) -> tuple[np.ndarray, list[TruthBox]]:
    """Stored values (float32) with ``texts`` drawn on, and each line's true box.

    ``texts`` are ``(text, is_phi)`` pairs (default: the patient's name, ID and
    birth date, and one harmless label), placed down the left and right margins
    without overlap.  ``blank-ct`` / ``blank-mr`` draw no text at all.

    Examples
    --------
    >>> img, boxes = text_image("ct", 128, 128, texts=[("ID 12345", True)], size=12)
    >>> img.shape, len(boxes), boxes[0].text, boxes[0].height >= 8
    ((128, 128), 1, 'ID 12345', True)
    """
    from PIL import Image, ImageDraw

    rng = np.random.default_rng(seed)
    base = _background(kind, rows, columns, rng)
    if kind.startswith("blank-"):
        return base, []
    lines = list(texts) if texts is not None else _default_texts(rng, identity or {})
    mask = Image.new("L", (columns, rows), 0)
    draw = ImageDraw.Draw(mask)
    face = _font(font, size)
    boxes: list[TruthBox] = []
    top = max(4, rows // 40)  # one line per row band (left and right alternate)
    for i, (text, phi) in enumerate(lines):
        side = i % 2
        # the line box: the ink's columns, and the font's full line height (ascender
        # to descender), which is what a text detector outlines whatever the letters
        x0, _, x1, _ = draw.textbbox((0, 0), text, font=face)
        _, y0, _, y1 = draw.textbbox((0, 0), "Ag|" + text, font=face)
        w, h = x1 - x0, y1 - y0
        left = 4 + int(rng.integers(0, 6)) if side == 0 else columns - w - 6 - int(rng.integers(0, 6))
        y = top
        if y + h >= rows or left < 0:
            continue  # no room: not drawn, not in the truth
        draw.text((left - x0, y - y0), text, fill=255, font=face)
        boxes.append(TruthBox(y, y + h, left, left + w, text, phi))
        top = y + h + max(4, size // 3) + int(rng.integers(0, 4))
    alpha = np.asarray(mask, np.float32) / 255.0
    ink = np.asarray(_ink(kind, contrast), np.float32)
    if base.ndim == 3:
        alpha = alpha[:, :, None]
    return base * (1 - alpha) + ink * alpha, boxes


def _set_pixels(
    ds: Dataset, arr: np.ndarray, *, photometric: str, bits: int, transfer_syntax: str
) -> None:
    from pydicom.pixels import convert_color_space

    from gantry.testing._pixels import encapsulated_bytes, native_bytes

    frames = arr.shape[0] if arr.ndim == (4 if arr.shape[-1] == 3 else 3) else 1
    samples = 3 if photometric in ("RGB", "YBR_FULL") else 1
    if photometric == "YBR_FULL":
        arr = convert_color_space(arr, "RGB", "YBR_FULL")
    ds.PhotometricInterpretation = photometric
    ds.SamplesPerPixel = samples
    ds.BitsAllocated = bits
    ds.BitsStored = bits if bits == 8 else (16 if arr.dtype.kind == "i" else 12)
    ds.HighBit = ds.BitsStored - 1
    ds.PixelRepresentation = int(arr.dtype.kind == "i")
    if samples == 3:
        ds.PlanarConfiguration = 0
    elif "PlanarConfiguration" in ds:
        del ds.PlanarConfiguration
    if frames > 1:
        ds.NumberOfFrames = frames
    elif "NumberOfFrames" in ds:
        del ds.NumberOfFrames
    ds.Rows, ds.Columns = arr.shape[1:3] if frames > 1 else arr.shape[:2]
    ds.file_meta.TransferSyntaxUID = transfer_syntax
    if transfer_syntax in (ExplicitVRLittleEndian, "1.2.840.10008.1.2"):
        ds.PixelData = native_bytes(arr, transfer_syntax)
        ds["PixelData"].VR = "OB" if bits == 8 else "OW"
    else:
        ds.PixelData = encapsulated_bytes(
            arr, transfer_syntax, frames=frames, bits_stored=int(ds.BitsStored),
            photometric=photometric,
        )  # fmt: skip
        ds["PixelData"].VR = "OB"
        ds["PixelData"].is_undefined_length = True


def _palette(ds: Dataset) -> None:
    """A grey-ramp palette with a tint, 256 entries of 16 bits."""
    ramp = np.arange(256, dtype=np.uint16) * 257
    for colour, scale in (("Red", 1.0), ("Green", 0.9), ("Blue", 0.8)):
        setattr(ds, f"{colour}PaletteColorLookupTableDescriptor", [256, 0, 16])
        setattr(
            ds, f"{colour}PaletteColorLookupTableData", (ramp * scale).astype("<u2").tobytes()
        )


def make_text_instance(
    path: str | Path | None = None,
    *,
    kind: str = "us",
    rows: int = 192,
    columns: int = 256,
    frames: int = 1,
    photometric: str | None = None,
    bits: int | None = None,
    transfer_syntax: str = ExplicitVRLittleEndian,
    texts: Sequence[tuple[str, bool]] | None = None,
    size: int = 14,
    font: str = "pillow",
    contrast: str = "high",
    text_frames: Sequence[int] | None = None,
    seed: int = 0,
    **overrides: Any,
) -> tuple[Dataset, list[TruthBox]]:
    """A DICOM instance with text burned into its pixels, and the text's true boxes.

    Parameters
    ----------
    kind : {"us", "ct", "mr", "screen", "blank-ct", "blank-mr"}
        Background; ``screen`` is an RGB secondary capture, ``blank-*`` has no text.
    photometric : {"MONOCHROME2", "MONOCHROME1", "RGB", "YBR_FULL", "PALETTE COLOR"}, optional
        Default ``RGB`` for ``screen``, ``MONOCHROME2`` otherwise. MONOCHROME1 stores
        the inverse, so the image a viewer shows is the same.
    bits : {8, 16}, optional
        Default 16 for CT and MR (CT signed, HU with a 40/400 window; MR 12 bits
        stored), 8 otherwise.
    text_frames : sequence of int, optional
        Frames that carry the text (default: all of them).
    texts, size, font, contrast, seed
        As for :func:`text_image`; the default texts are this instance's
        patient name, ID and birth date.
    **overrides
        DICOM keywords, as for :func:`~gantry.testing.make_instance`.

    Examples
    --------
    >>> ds, boxes = make_text_instance(kind="ct", rows=96, columns=128, PatientID="ID-77")
    >>> ds.pixel_array.dtype.name, [b.text for b in boxes][1]
    ('int16', 'ID ID-77')
    """
    from gantry.testing._builders import make_instance, write_dataset

    base = kind.removeprefix("blank-")
    modality = {"us": "US", "ct": "CT", "mr": "MR", "screen": "SC"}[base]
    photometric = photometric or ("RGB" if base == "screen" else "MONOCHROME2")
    bits = bits or (16 if base in ("ct", "mr") else 8)
    ds = make_instance(
        modality=modality, rows=8, columns=8, frames=2 if frames > 1 else 1,
        photometric="RGB" if photometric in ("RGB", "YBR_FULL") else "MONOCHROME2",
        seed=seed, **overrides,
    )  # fmt: skip
    identity = {k: str(ds.get(k, "")) for k in ("PatientName", "PatientID", "PatientBirthDate")}
    img, boxes = text_image(
        kind, rows, columns, texts=texts, size=size, font=font, contrast=contrast,
        seed=seed, identity=identity,
    )  # fmt: skip
    plain, _ = text_image(kind, rows, columns, texts=[], seed=seed)
    carriers = set(range(frames)) if text_frames is None else set(text_frames)
    stack = np.stack([img if f in carriers else plain for f in range(frames)])
    rgb = photometric in ("RGB", "YBR_FULL")
    if rgb and stack.ndim == 3:
        stack = np.repeat(stack[..., None], 3, axis=-1)
    if not rgb and stack.ndim == 4:
        stack = stack.mean(axis=-1)
    if base == "ct" and bits == 16:
        stored = np.clip(stack + 1024, -32768, 32767).astype(np.int16)  # rescale -1024
        ds.RescaleIntercept, ds.RescaleSlope = -1024, 1
        ds.WindowCenter, ds.WindowWidth = 40, 400
    elif bits == 16:
        scale = 4095 / max(float(stack.max()), 1.0) if base != "mr" else 1.0
        stored = np.clip(stack * scale, 0, 4095).astype(np.uint16)
        for kw in ("WindowCenter", "WindowWidth", "RescaleIntercept", "RescaleSlope"):
            if kw in ds:
                delattr(ds, kw)
    else:
        stored = np.clip(stack * (255 / max(float(stack.max()), 1.0)), 0, 255).astype(np.uint8)
        for kw in ("WindowCenter", "WindowWidth", "RescaleIntercept", "RescaleSlope"):
            if kw in ds:
                delattr(ds, kw)
    if photometric == "MONOCHROME1":
        top = 4095 if bits == 16 and stored.dtype == np.uint16 else 255
        if stored.dtype == np.int16:
            raise ValueError("`photometric` MONOCHROME1 needs unsigned pixels (not 16-bit CT)")
        stored = (top - stored).astype(stored.dtype)
    if photometric == "PALETTE COLOR":
        if bits != 8:
            raise ValueError("`photometric` PALETTE COLOR needs `bits` 8")
        _palette(ds)
    _set_pixels(
        ds, stored if frames > 1 else stored[0], photometric=photometric, bits=bits,
        transfer_syntax=transfer_syntax,
    )  # fmt: skip
    if path is not None:
        write_dataset(ds, path)
    return ds, boxes
