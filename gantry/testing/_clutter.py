"""Files a real archive holds besides clean images: :func:`make_clutter`."""

from __future__ import annotations

import io
import shutil
from pathlib import Path

import numpy as np
from pydicom import dcmwrite
from pydicom.fileset import FileSet
from pydicom.uid import UID, DeflatedExplicitVRLittleEndian, ExplicitVRBigEndian

from gantry.testing._builders import make_instance, write_dataset
from gantry.testing._specs import make_uid

CLUTTER_CASES: tuple[str, ...] = (
    "empty",
    "text",
    "truncated",
    "truncated_pixels",
    "no_preamble",
    "no_meta",
    "big_endian",
    "deflated",
    "dicomdir",
    "binary",
    "original",
    "duplicate",
)

# explicit VR LE header of RequestAttributesSequence (0040,0275): tag, "SQ", 2 reserved bytes
_SEQUENCE_HEADER = b"\x40\x00\x75\x02SQ\x00\x00"


def _png(seed: int) -> bytes:
    import imagecodecs

    rng = np.random.default_rng(seed)
    img = (np.add.outer(np.arange(32), np.arange(32)) * 4 % 256).astype(np.uint8)
    img = img + rng.integers(0, 8, size=img.shape, dtype=np.uint8)
    return bytes(imagecodecs.png_encode(img))


def make_clutter(root: str | Path, *, seed: int = 1000) -> dict[str, Path]:
    """Write the non-image and odd files a real archive contains under ``root``.

    Cases (the keys of the result):

    ``empty``
        A zero-byte ``.dcm`` file.
    ``text``
        A plain text note with a ``.dcm`` extension.
    ``truncated``
        A DICOM file cut in the middle of the item header of a sequence
        (``RequestAttributesSequence``).  ``pydicom.dcmread`` parses sequences
        lazily, so it returns, but walking the dataset (``iterall()``) raises.
    ``truncated_pixels``
        A DICOM file cut in the middle of its pixel data: the header reads,
        the pixels do not.
    ``no_preamble``
        A valid file with file meta but without the 128-byte preamble and
        ``DICM`` prefix (``dcmread`` needs ``force=True``).
    ``no_meta``
        A bare implicit VR little endian dataset (no preamble, no file meta).
    ``big_endian``, ``deflated``
        Valid instances in explicit VR big endian / deflated explicit VR little endian.
    ``dicomdir``
        A ``DICOMDIR`` (written by :class:`pydicom.fileset.FileSet`) with the one
        instance it indexes under ``dicomdir/``.
    ``binary``
        A PNG image with no file extension, as screenshots in exports often are.
    ``original``, ``duplicate``
        The same instance (same SOP Instance UID, same bytes) at two paths.

    Every file is deterministic given ``seed``; each valid instance has its own
    SOP Instance UID except the duplicate pair.

    Examples
    --------
    >>> import tempfile
    >>> cases = make_clutter(tempfile.mkdtemp())
    >>> cases["empty"].stat().st_size
    0
    >>> cases["original"].read_bytes() == cases["duplicate"].read_bytes()
    True
    """
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    out: dict[str, Path] = {}

    out["empty"] = root / "empty.dcm"
    out["empty"].write_bytes(b"")

    out["text"] = root / "notes.dcm"
    out["text"].write_text(
        "Scan notes\n==========\nExported from the workstation. Not an image.\n",
        encoding="ascii",
    )

    ds = make_instance(modality="CT", seed=seed + 1)
    buf = io.BytesIO()
    dcmwrite(buf, ds, enforce_file_format=True)
    raw = buf.getvalue()
    # 4 length bytes follow the header, then the item tag: cut 3 bytes into it
    cut = raw.index(_SEQUENCE_HEADER) + len(_SEQUENCE_HEADER) + 4 + 3
    out["truncated"] = root / "IMG_TRUNC.dcm"
    out["truncated"].write_bytes(raw[:cut])

    ds = make_instance(modality="MR", seed=seed + 2)
    buf = io.BytesIO()
    dcmwrite(buf, ds, enforce_file_format=True)
    raw = buf.getvalue()
    pixel_value = len(raw) - len(ds.PixelData)
    out["truncated_pixels"] = root / "IMG_PARTIAL.dcm"
    out["truncated_pixels"].write_bytes(raw[: pixel_value + len(ds.PixelData) // 2])

    ds = make_instance(modality="CT", seed=seed + 3)
    buf = io.BytesIO()
    dcmwrite(buf, ds, enforce_file_format=True)
    out["no_preamble"] = root / "NOPREAMBLE"
    out["no_preamble"].write_bytes(buf.getvalue()[132:])  # starts at (0002,0000)

    ds = make_instance(modality="MR", seed=seed + 4, transfer_syntax="1.2.840.10008.1.2")
    del ds.file_meta
    ds.preamble = None
    out["no_meta"] = root / "ACRNEMA.IMG"
    dcmwrite(out["no_meta"], ds, implicit_vr=True, little_endian=True)

    out["big_endian"] = write_dataset(
        make_instance(modality="MR", seed=seed + 5, transfer_syntax=ExplicitVRBigEndian),
        root / "big_endian.dcm",
    )
    out["deflated"] = write_dataset(
        make_instance(modality="CR", seed=seed + 6, transfer_syntax=DeflatedExplicitVRLittleEndian),
        root / "deflated.dcm",
    )

    fs_root = root / "dicomdir"
    if fs_root.exists():
        shutil.rmtree(fs_root)
    fs = FileSet()
    fs.UID = UID(make_uid(seed, "fileset"))
    fs.ID = "GANTRYFS"
    try:
        fs.add(make_instance(modality="CT", seed=seed + 7))
        fs.write(fs_root)
    finally:
        # FileSet stages into a TemporaryDirectory it never cleans up itself
        stage = getattr(fs, "_stage", {}).get("t")
        if stage is not None:
            stage.cleanup()
    out["dicomdir"] = fs_root / "DICOMDIR"

    out["binary"] = root / "screenshot"
    out["binary"].write_bytes(_png(seed))

    ds = make_instance(modality="CT", seed=seed + 8)
    out["original"] = write_dataset(ds, root / "series_a" / "IMG0001.dcm")
    out["duplicate"] = root / "series_a_copy" / "IMG0001 (1).dcm"
    out["duplicate"].parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(out["original"], out["duplicate"])
    return out
