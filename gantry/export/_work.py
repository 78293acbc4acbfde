"""What an export worker is handed and hands back, and where it writes.

A leaf of ``gantry.export``: the pydicom path (:mod:`gantry.export._apply`) and
the byte-level path (:mod:`gantry.export._rewrite`) both import it, so neither
imports the other's module for these shapes.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "STAGING",
    "ExportItem",
    "ExportOutcome",
    "VerificationError",
    "clean_staging",
    "staging_file",
]


@dataclass
class ExportItem:
    """Everything a worker needs to export one instance."""

    file_id: int
    src: str
    out_rel: str
    actions: list[tuple[str, str, str, str | None]]  # (path, vr, action, new_value)
    edits: list[tuple[str, str, str | None, str | None]] = field(
        default_factory=list
    )  # (tag, op, json value, vr)
    tokens: list[Any] = field(default_factory=list)  # gantry.export._leaks.Token
    pixel_offset: int | None = None
    pixel_length: int | None = None
    file_size: int | None = None
    pixel_edit: tuple[str, int, int, str, list[int]] | None = (
        None  # (sidecar, offset, nbytes, dtype, shape)
    )
    redaction: dict[str, Any] | None = None
    transfer_syntax: str | None = None
    encrypt_key: bytes | None = None  # vault key: carry the originals encrypted (0400,0500)
    ocr_check: dict[str, Any] | None = None  # safe mode: OCR the written pixels again
    deface: dict[str, Any] | None = None  # the series' face plane (gantry.deface.FacePlane)


@dataclass
class ExportOutcome:
    """What happened to one instance."""

    file_id: int
    out_rel: str
    status: str  # "ok" | "failed"
    reason: str = ""
    size: int = 0
    sha256: str = ""
    patient_id: str = ""
    study_uid: str = ""
    series_uid: str = ""
    sop_uid: str = ""
    modality: str = ""
    series_description: str = ""
    transfer_syntax: str = ""
    pixels_copied: bool = False
    notes: str = ""  # e.g. a redaction zone clipped to the image
    verify_seconds: float = 0.0  # time spent verifying this file (worker side)
    warnings: list[str] = field(default_factory=list)  # masked, "Category: text"


class VerificationError(Exception):
    """A written file still holds something it must not (its message is value-free)."""

    safe_message = True


#: The folder inside an export destination holding files being written.
STAGING = ".gantry-staging"


def staging_file(dest: Path) -> Path:
    """A fresh temporary file name in `dest`'s staging folder (same file system as `dest`).

    Output files are written there and renamed into place, so an interrupted
    export leaves nothing half-written beside the outputs; the next export into
    `dest` empties the folder (:func:`clean_staging`).
    """
    folder = dest / STAGING
    folder.mkdir(parents=True, exist_ok=True)
    return folder / f"{uuid.uuid4().hex}.tmp"


def clean_staging(dest: Path, *, remove: bool = False) -> None:
    """Empty `dest`'s staging folder (and remove it when `remove`)."""
    folder = dest / STAGING
    if not folder.is_dir():
        return
    for child in folder.iterdir():
        child.unlink(missing_ok=True)
    if remove:
        try:
            folder.rmdir()
        except OSError:
            pass  # another export into the same folder is writing there
