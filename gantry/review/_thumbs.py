"""Thumbnails for the review pages, and the redaction zones drawn over them.

The first frame is windowed with numpy (the DICOM window when the header gives
one, else the 1st-99th percentiles), shrunk by an integer factor and encoded
with ``imagecodecs.png_encode``. Zones stay in image pixels: the page draws them
as an SVG overlay whose ``viewBox`` is the image size, so they line up at any
zoom and each carries its source as a text label.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, Literal

import numpy as np
import polars as pl

from gantry.report._png import thumbnail

if TYPE_CHECKING:
    from gantry.session import Session

__all__ = ["ZONE_SOURCES", "Zone", "instance_zones", "render_png", "window"]

ZoneSource = Literal["machine", "ocr", "plan"]

#: Where a zone comes from, and the words the page's legend uses.
ZONE_SOURCES: Final[dict[str, str]] = {
    "machine": "device zone in the config",
    "ocr": "text found by OCR",
    "plan": "redacted by the plan",
}


@dataclass(frozen=True, slots=True)
class Zone:
    """A rectangle in image pixels, ends exclusive, and where it comes from."""

    r1: int
    r2: int
    c1: int
    c2: int
    source: ZoneSource

    @classmethod
    def of(cls, box: Any, source: ZoneSource) -> Zone:
        """A zone from ``(r1, r2, c1, c2)``.

        Examples
        --------
        >>> Zone.of([0, 10, 0, 40], "plan").label
        'plan: rows 0-10, cols 0-40'
        """
        r1, r2, c1, c2 = (int(v) for v in box)
        return cls(r1, r2, c1, c2, source)

    @property
    def label(self) -> str:
        """``"plan: rows 0-40, cols 0-640"``."""
        return f"{self.source}: rows {self.r1}-{self.r2}, cols {self.c1}-{self.c2}"


def window(
    frame: np.ndarray, *, center: Any = None, width: Any = None, invert: bool = False
) -> np.ndarray:
    """An 8-bit copy of a grey ``frame`` (or 8-bit scaled RGB).

    The DICOM linear window (``center``, ``width``) when given, else the 1st to
    99th percentiles. ``invert`` for MONOCHROME1.

    Examples
    --------
    >>> window(np.array([[0, 50, 100]]), center=50, width=100).tolist()
    [[0, 129, 255]]
    >>> window(np.array([[0, 1000]])).tolist()
    [[0, 255]]
    """
    data = np.asarray(frame, dtype=np.float64)
    if data.ndim == 3:  # colour: scale to 8 bits
        top = float(data.max(initial=0)) or 1.0
        return np.clip(data * (255.0 / top if top > 255 else 1.0), 0, 255).astype(np.uint8)
    c = _first_number(center)
    w = _first_number(width)
    if c is not None and w is not None and w >= 1:
        lo, hi = c - 0.5 - (w - 1) / 2, c - 0.5 + (w - 1) / 2
    elif data.size:
        lo, hi = (float(x) for x in np.percentile(data, [1, 99]))
    else:
        lo, hi = 0.0, 1.0
    if hi <= lo:
        lo, hi = float(data.min(initial=0)), float(data.max(initial=1))
        hi = hi if hi > lo else lo + 1.0
    out = np.clip(np.rint((data - lo) / (hi - lo) * 255.0), 0, 255).astype(np.uint8)
    return 255 - out if invert else out


def _first_number(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, list | tuple):
        value = value[0] if value else None
    try:
        return float(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def render_png(session: Session, file_id: int, *, max_size: int = 384) -> tuple[bytes, int, int]:
    """The instance's first frame as PNG bytes, and the image's ``(rows, columns)``.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> from gantry import Session
    >>> from gantry.testing import make_instance
    >>> tmp = pathlib.Path(tempfile.mkdtemp())
    >>> _ = make_instance(tmp / "d" / "a.dcm", rows=64, columns=96)
    >>> with Session(tmp / "s.db") as s:
    ...     _ = s.ingest(tmp / "d", workers=1, progress=False)
    ...     png, rows, cols = render_png(s, int(s.instances()[0].file_id), max_size=48)
    >>> png[:4], rows, cols
    (b'\\x89PNG', 64, 96)
    """
    import imagecodecs

    inst = session.instances(pl.col("file_id") == file_id)[0]
    array = np.asarray(inst.pixel_array)
    samples = int(inst.get("SamplesPerPixel") or 1)
    frame_ndim = 3 if samples > 1 else 2
    while array.ndim > frame_ndim:
        array = array[0]
    image = window(
        array,
        center=inst.get("WindowCenter"),
        width=inst.get("WindowWidth"),
        invert=inst.get("PhotometricInterpretation") == "MONOCHROME1",
    )
    small, _ = thumbnail(image, max_size)
    return bytes(imagecodecs.png_encode(small)), int(array.shape[0]), int(array.shape[1])


def instance_zones(session: Session, file_id: int) -> list[Zone]:
    """Every zone to draw on the instance: its device's zones in the stored config,
    the OCR text boxes of its first frame (``text_regions``) and the plan's REDACT zones.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> from gantry import Session
    >>> from gantry.review import set_device_zones
    >>> from gantry.testing import make_instance
    >>> tmp = pathlib.Path(tempfile.mkdtemp())
    >>> _ = make_instance(tmp / "d" / "a.dcm", Manufacturer="Acme")
    >>> with Session(tmp / "s.db") as s:
    ...     _ = s.ingest(tmp / "d", workers=1, progress=False)
    ...     fid = int(s.instances()[0].file_id)
    ...     _ = set_device_zones(s, fid, [[0, 8, 0, 32]], reviewer="ana")
    ...     [z.label for z in instance_zones(s, fid)]
    ['machine: rows 0-8, cols 0-32', 'plan: rows 0-8, cols 0-32']
    """
    from gantry.review._decisions import device_zones

    zones = [Zone.of(z, "machine") for z in device_zones(session, file_id)[1]]
    tables = set(session.tables())
    if "text_regions" in tables:
        boxes = session.sql(
            "SELECT r1, r2, c1, c2 FROM text_regions WHERE file_id = ? AND frame = 0 "
            "ORDER BY r1, c1",
            [file_id],
        )
        zones += [Zone.of(row, "ocr") for row in boxes.iter_rows()]
    if "plan" in tables:
        redact = session.sql(
            "SELECT new_value FROM plan WHERE file_id = ? AND action = 'REDACT'", [file_id]
        )
        for (text,) in redact.iter_rows():
            zones += [Zone.of(z, "plan") for z in json.loads(text)["zones"]]
    return zones
