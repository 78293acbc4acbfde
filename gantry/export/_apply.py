"""Apply one instance's plan rows to its file and write the clean copy (worker side).

Runs in worker processes: it receives plain data (no store, no DuckDB), reads the
original, applies edits and actions, writes atomically, and verifies the bytes.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import io
import json
import os
import time
from pathlib import Path
from typing import Any

import pydicom
from pydicom.dataelem import DataElement, RawDataElement
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import (
    PYDICOM_IMPLEMENTATION_UID,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRLittleEndian,
)

from gantry._messages import capture_warnings, reason_for
from gantry.errors import ExportError
from gantry.export._items import drop_items, has_item_rows
from gantry.export._rewrite import export_fast
from gantry.export._work import (
    STAGING,
    ExportItem,
    ExportOutcome,
    VerificationError,
    clean_staging,
    staging_file,
)

__all__ = [
    "STAGING",
    "ExportItem",
    "ExportOutcome",
    "VerificationError",
    "check_leaks",
    "clean_staging",
    "export_items",
    "is_planned",
    "staging_file",
]

_INT_VRS = {"IS", "SL", "SS", "UL", "US", "SV", "UV"}
_FLOAT_VRS = {"DS", "FL", "FD"}
_BINARY_NUMERIC = {"SL", "SS", "UL", "US", "SV", "UV", "FL", "FD"}
# the smallest value of each bulk VR: what a dummy (D) of it is
_MINIMAL = {"OB": 2, "UN": 2, "OW": 2, "OF": 4, "OL": 4, "OD": 8, "OV": 8}


def export_items(
    items: list[ExportItem], dest: str, *, verify: bool = True, compression: str | None = None
) -> list[ExportOutcome]:
    """Export ``items`` into ``dest``; never raises for one bad instance.

    An item that does not carry its plan (the rows every planned instance has)
    is refused here, whatever the caller checked: nothing unplanned is written.
    A failure's reason names the error kind and the attribute, never a value
    or the source path (:func:`gantry._messages.reason_for`); third-party
    warnings come back in each outcome's ``warnings``, their values masked.
    """
    out = []
    for item in items:
        if not is_planned(item):
            out.append(
                ExportOutcome(
                    item.file_id,
                    item.out_rel,
                    "failed",
                    "not planned: the instance has no plan rows",
                )
            )
            continue
        seen: list[str] = []
        try:
            with capture_warnings(log=False) as seen:
                outcome = _export_one(item, Path(dest), verify=verify, compression=compression)
        except Exception as exc:  # recorded with its reason; the batch goes on
            outcome = ExportOutcome(item.file_id, item.out_rel, "failed", reason_for(exc))
        outcome.warnings = seen  # logged by the caller: a worker's log goes nowhere
        out.append(outcome)
    return out


def is_planned(item: ExportItem) -> bool:
    """Whether ``item`` carries the plan's de-identification marker rows.

    Every instance the plan covers gets ``PatientIdentityRemoved`` (0012,0062)
    added; an item without it was never planned.
    """
    return any(a[2] == "A" and a[0] == _IDENTITY_REMOVED for a in item.actions)


_IDENTITY_REMOVED = "00120062"


def _export_one(
    item: ExportItem, dest: Path, *, verify: bool, compression: str | None
) -> ExportOutcome:
    if item.pixel_length is None:
        compression = None  # no pixel data (SR, RTPLAN, ...): nothing to transcode
    pixels_changed = (
        item.redaction is not None
        or item.pixel_edit is not None
        or item.deface is not None
        or bool(compression)
    )
    if not pixels_changed and not item.edits and item.encrypt_key is None:
        # byte-level header rewrite; None when it cannot reproduce this path exactly
        fast = export_fast(item, dest, verify=verify)
        if fast is not None:
            return fast
    copy_pixels = (
        not pixels_changed
        and item.pixel_offset is not None
        and item.pixel_length is not None
        and item.file_size is not None
        and item.pixel_offset + item.pixel_length == item.file_size
        and item.transfer_syntax != DeflatedExplicitVRLittleEndian
    )
    with open(item.src, "rb") as fh:
        # when the pixel element is copied as bytes, only the header is parsed
        try:
            ds = pydicom.dcmread(
                fh,
                stop_before_pixels=copy_pixels,
                defer_size=None if copy_pixels else 4096,
                force=True,  # ingest accepted files without preamble or file meta
            )
        except Exception as exc:
            raise ExportError(
                f"the source file no longer reads as DICOM ({type(exc).__name__}); "
                "if it changed since ingest, run `ingest` and `anonymize` again"
            ) from exc
        ts = str(
            ds.file_meta.get("TransferSyntaxUID") or item.transfer_syntax or ExplicitVRLittleEndian
        )
        if copy_pixels and os.fstat(fh.fileno()).st_size != item.file_size:
            raise VerificationError("the source file changed since it was indexed")
        if _settle_encoding(ds, ts) and copy_pixels:
            # the pixel element's own header is in the other encoding too: write it anew
            fh.seek(0)
            ds = pydicom.dcmread(fh, defer_size=4096, force=True)
            _settle_encoding(ds, ts)
            copy_pixels = False
        original = _originals(ds) if item.encrypt_key is not None else None
        geometry = _deface_geometry(ds) if item.deface is not None else None
        if has_item_rows(item.actions):
            # whole content items go first; the other rows are read in the new tree
            item = dataclasses.replace(item, actions=drop_items(ds, item.actions))
        _apply_edits(ds, item.edits)
        burn = _overlay_masks(ds, item.redaction.get("overlays", [])) if item.redaction else None
        _apply_actions(ds, item.actions)
        if original is not None and item.encrypt_key is not None:
            from gantry.vault import encrypted_attributes_sequence

            ds.EncryptedAttributesSequence = encrypted_attributes_sequence(
                original, item.encrypt_key
            )
        cleaned, notes = False, []
        if pixels_changed:
            ts, cleaned, notes = _apply_pixels(
                ds, item, ts, compression, burn=burn, geometry=geometry
            )
        _settle_claims(ds, cleaned)
        ds.file_meta = _clean_meta(ds, ts)
        ds.preamble = None  # dcmwrite would copy the original's (it may hold anything)
        buf = io.BytesIO()
        try:
            pydicom.dcmwrite(buf, ds, enforce_file_format=True)
        except Exception as exc:
            raise ExportError(
                f"the de-identified header could not be encoded ({type(exc).__name__}); "
                "an element's value does not fit its VR: check this instance's `plan` rows "
                "and `edits`"
            ) from exc
        header = buf.getvalue()
        pixel_bytes = b""
        if copy_pixels:
            assert item.pixel_offset is not None and item.pixel_length is not None
            fh.seek(item.pixel_offset)
            pixel_bytes = fh.read(item.pixel_length)
    data = header + pixel_bytes
    checked = time.perf_counter()
    if verify:
        _verify(data, header, item, copied=copy_pixels)
    checked = time.perf_counter() - checked
    if item.ocr_check is not None:
        from gantry.ocr._verify import remaining_phi

        if (reason := remaining_phi(data, item.ocr_check)) is not None:
            raise VerificationError(reason)
    target = dest / item.out_rel
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = staging_file(dest)
    try:
        with open(tmp, "wb") as fh:
            fh.write(data)
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return ExportOutcome(
        file_id=item.file_id,
        out_rel=item.out_rel,
        status="ok",
        size=len(data),
        sha256=hashlib.sha256(data).hexdigest(),
        patient_id=str(ds.get("PatientID", "")),
        study_uid=str(ds.get("StudyInstanceUID", "")),
        series_uid=str(ds.get("SeriesInstanceUID", "")),
        sop_uid=str(ds.get("SOPInstanceUID", "")),
        modality=str(ds.get("Modality", "")),
        series_description=str(ds.get("SeriesDescription", "")),
        transfer_syntax=str(ts),
        pixels_copied=copy_pixels,
        notes="; ".join(notes),
        verify_seconds=checked,
    )


def _originals(ds: Dataset) -> Dataset:
    """A copy of the header before de-identification (no pixel data), to encrypt."""
    original = Dataset()
    for elem in ds:
        if elem.tag != 0x7FE00010:
            original.add(copy.deepcopy(elem))
    return original


def _clean_meta(ds: Dataset, ts: str) -> FileMetaDataset:
    """A fresh file meta group: nothing from the original's (it may name a station)."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = ds.get("SOPClassUID", "1.2.840.10008.5.1.4.1.1.7")
    meta.MediaStorageSOPInstanceUID = ds.get("SOPInstanceUID", "")
    meta.TransferSyntaxUID = ts
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    meta.ImplementationVersionName = "GANTRY"
    return meta


def _locate(ds: Dataset, path: str) -> tuple[Dataset | None, int]:
    parts = path.split(".")
    container: Dataset = ds
    for part in parts[:-1]:
        tag_hex, _, rest = part.partition("[")
        idx = int(rest.rstrip("]"))
        tag = int(tag_hex, 16)
        if tag not in container:
            return None, 0
        seq = container[tag].value
        if not isinstance(seq, Sequence | list) or idx >= len(seq):
            return None, 0
        container = seq[idx]
    return container, int(parts[-1], 16)


def _typed(vr: str, value: str) -> Any:
    if vr in _BINARY_NUMERIC:
        items = [v for v in value.split("\\") if v != ""]
        conv = float if vr in {"FL", "FD"} else int
        vals = [conv(v) for v in items]
        return vals[0] if len(vals) == 1 else (vals or None)
    return value


def _apply_actions(ds: Dataset, actions: list[tuple[str, str, str, str | None]]) -> None:
    # deepest first, so removing a sequence never hides an action inside it
    for path, vr, action, new_value in sorted(actions, key=lambda a: -a[0].count(".")):
        if action in ("REDACT", "DEFACE"):  # pixel actions: _apply_pixels
            continue
        try:
            _apply_action(ds, path, vr, action, new_value)
        except Exception as exc:
            raise _action_error(path, vr, action, exc) from exc


def _action_error(path: str, vr: str, action: str, exc: Exception) -> ExportError:
    """An actionable, value-free error for a plan row that could not be applied."""
    from pydicom.datadict import keyword_for_tag

    tag = path.rsplit(".", 1)[-1]
    try:
        keyword = keyword_for_tag(int(tag, 16)) or f"({tag[:4]},{tag[4:]})"
    except ValueError:
        keyword = tag
    return ExportError(
        f"`{keyword}` at {path} (VR {vr}): action {action} gives a value this VR cannot hold "
        f"({type(exc).__name__}); set an action for it under `phi_tags` in the config "
        "(e.g. X to remove it) and run `anonymize` again"
    )


def _apply_action(ds: Dataset, path: str, vr: str, action: str, new_value: str | None) -> None:
    if action == "A":
        _add(ds, path, vr, new_value)
        return
    container, tag = _locate(ds, path)
    if container is None or tag not in container:
        return
    elem = container[tag]
    if action == "X":
        del container[tag]
    elif action == "D" and elem.VR == "SQ":
        elem.value = Sequence(list(elem.value)[:1])  # one item, under its own rules
    elif action == "D" and elem.VR in _MINIMAL:
        elem.value = bytes(_MINIMAL[elem.VR])
    elif action == "Z" or (new_value in (None, "") and action in {"D", "S"}):
        elem.value = Sequence() if elem.VR == "SQ" else (None if elem.VR in _BINARY_NUMERIC else "")
    elif elem.VR == "SQ":
        elem.value = Sequence()
    elif new_value is not None:
        elem.value = _typed(elem.VR, new_value)


def _add(ds: Dataset, path: str, vr: str, value: str | None) -> None:
    tag = int(path, 16)
    if vr == "SQ":
        seq = Sequence()
        for code in json.loads(value or "[]"):
            item = Dataset()
            item.CodeValue = code["value"]
            item.CodingSchemeDesignator = code["scheme"]
            item.CodeMeaning = code["meaning"]
            seq.append(item)
        ds[tag] = DataElement(tag, "SQ", seq)
    else:
        ds[tag] = DataElement(tag, vr, value or "")


def _apply_edits(ds: Dataset, edits: list[tuple[str, str, str | None, str | None]]) -> None:
    """Metadata edits saved in the session (object model), applied before the plan."""
    from pydicom.datadict import dictionary_VR, keyword_for_tag

    for tag_text, op, value_json, vr in edits:
        tag = int(tag_text, 16)
        try:
            if op == "delete":
                if tag in ds:
                    del ds[tag]
            elif op == "set":
                value = json.loads(value_json) if value_json is not None else None
                if tag in ds:
                    ds[tag].value = value
                else:
                    ds.add_new(tag, vr or dictionary_VR(tag), value)
        except Exception as exc:
            keyword = keyword_for_tag(tag) or f"({tag_text[:4]},{tag_text[4:]})"
            raise ExportError(
                f"the saved edit of `{keyword}` gives a value its VR cannot hold "
                f"({type(exc).__name__}): change the edit (Instance.set) and save again"
            ) from exc


def _overlay_masks(ds: Dataset, groups: list[str]) -> Any:
    """The image-sized mask of the overlay planes ``groups`` (read before they are removed).

    Only single-frame overlays on single-sample images are burned; anything else
    raises, and the instance fails rather than being written without its overlay.
    """
    import numpy as np

    if not groups:
        return None
    rows, cols = int(ds.Rows), int(ds.Columns)
    if int(ds.get("SamplesPerPixel", 1) or 1) != 1:
        raise ExportError("overlays are burned into single-sample (grey) images only")
    mask = np.zeros((rows, cols), dtype=bool)
    for name in groups:
        group = int(name, 16)
        frames = ds.get((group, 0x0015))
        if frames is not None and int(frames.value or 1) != 1:
            raise ExportError("multi-frame overlays are not burned; set `overlays: remove`")
        bits = np.asarray(ds.overlay_array(group), dtype=bool)
        origin = ds.get((group, 0x0050))
        top, left = (int(v) - 1 for v in origin.value) if origin is not None else (0, 0)
        r0, c0 = max(top, 0), max(left, 0)
        r1, c1 = min(top + bits.shape[0], rows), min(left + bits.shape[1], cols)
        if r1 > r0 and c1 > c0:
            mask[r0:r1, c0:c1] |= bits[r0 - top : r1 - top, c0 - left : c1 - left]
    return mask


def _burn(array: Any, ds: Dataset, mask: Any) -> Any:
    """``array`` with the overlay ``mask`` drawn in the brightest value on display."""
    import numpy as np

    bits = int(ds.get("BitsStored", 8) or 8)
    signed = int(ds.get("PixelRepresentation", 0) or 0) == 1
    low, high = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1)
    value = low if str(ds.get("PhotometricInterpretation", "")) == "MONOCHROME1" else high
    out = np.array(array, copy=True)
    out[..., mask] = value  # every frame
    return out


def _deface_geometry(ds: Dataset) -> Any:
    """The instance's geometry as read (before any edit), for its defacing mask."""
    from gantry.deface import SliceGeometry

    return SliceGeometry.from_dataset(ds)


def _deface(ds: Dataset, array: Any, item: ExportItem, geometry: Any) -> tuple[Any, Any, float]:
    from gantry.deface._pixels import deface_pixels

    assert item.deface is not None
    if int(ds.get("NumberOfFrames", 1) or 1) != 1:
        raise ExportError("only single-frame images are defaced; this one has several frames")
    return deface_pixels(array, geometry, item.deface)


def _claim_defaced(ds: Dataset, mask: Any, fill: float) -> None:
    """Check the written pixels, then say so: Recognizable Visual Features NO, code 113102."""
    from gantry import pixels
    from gantry.deface._pixels import DEFACE_CODE, verify_defaced

    verify_defaced(pixels.decode(ds), mask, fill)
    ds.RecognizableVisualFeatures = "NO"
    item = Dataset()
    item.CodeValue = DEFACE_CODE["value"]
    item.CodingSchemeDesignator = DEFACE_CODE["scheme"]
    item.CodeMeaning = DEFACE_CODE["meaning"]
    codes = list(ds.get("DeidentificationMethodCodeSequence", []) or [])
    if not any(str(c.get("CodeValue", "")) == DEFACE_CODE["value"] for c in codes):
        ds.DeidentificationMethodCodeSequence = Sequence([*codes, item])


def _apply_pixels(
    ds: Dataset,
    item: ExportItem,
    ts: str,
    compression: str | None,
    *,
    burn: Any = None,
    geometry: Any = None,
) -> tuple[str, bool, list[str]]:
    """Pixel edits, redaction and transcoding; returns (new syntax, cleaned, notes).

    ``cleaned`` is True only when redaction zones were applied and verified on
    the pixel data as written; ``notes`` tell of zones clipped to the image.
    A zone wholly outside the image fails the instance.

    Redaction alone goes frame by frame (:func:`gantry.pixels.redact_dataset`); a
    pixel edit or a requested compression decodes the whole array once.
    Anything that cannot be decoded, redacted, verified or re-encoded raises, and
    the instance is reported as failed (never written as clean).
    """
    import numpy as np

    from gantry import pixels

    zones = [pixels.Zone(*z) for z in item.redaction["zones"]] if item.redaction else []
    fill = item.redaction.get("fill", 0) if item.redaction else 0
    notes: list[str] = []
    if item.redaction is not None and (zones or burn is None):  # burning alone needs none
        notes = _check_zones(zones, int(ds.get("Rows", 0) or 0), int(ds.get("Columns", 0) or 0))
    if (
        item.pixel_edit is None
        and item.redaction is not None
        and not compression
        and burn is None
        and item.deface is None
    ):
        pixels.redact_dataset(ds, zones, fill=fill, path=item.src)
        _verify_written_zones(ds, zones, fill, lossy=False)
        ds.BurnedInAnnotation = "NO"  # claimed only now: the written pixels were checked
        return str(ds.file_meta.TransferSyntaxUID), True, notes
    if item.pixel_edit is not None:
        sidecar, offset, nbytes, dtype, shape = item.pixel_edit
        with open(sidecar, "rb") as fh:
            fh.seek(offset)
            array = np.frombuffer(fh.read(nbytes), dtype=np.dtype(dtype)).reshape(shape)
    else:
        array = pixels.decode(ds, path=item.src)
    if burn is not None:
        array = _burn(array, ds, burn)
        ds.BurnedInAnnotation = "YES"  # the overlay is part of the image now
    if zones:
        spp = int(ds.get("SamplesPerPixel", 1))
        frames = int(ds.get("NumberOfFrames", 1) or 1)
        before = array
        array = pixels.redact(array, zones, fill=fill, samples_per_pixel=spp, frames=frames).array
        pixels.verify_redaction(before, array, zones, fill, samples_per_pixel=spp, frames=frames)
    deface_mask = None
    if item.deface is not None:
        array, deface_mask, deface_fill = _deface(ds, array, item, geometry)
    encoded = pixels.encode(array, ds, compression or "none")
    if deface_mask is not None and encoded.lossy:
        raise ExportError(
            "a defaced image is not written with lossy compression (the cut must hold "
            "exactly); choose a lossless `compression`"
        )
    pixels.apply_encoded(ds, encoded)
    if deface_mask is not None:
        _claim_defaced(ds, deface_mask, deface_fill)
    cleaned = False
    if zones:
        _verify_written_zones(ds, zones, fill, lossy=encoded.lossy)
        ds.BurnedInAnnotation = "NO"
        cleaned = True
    return str(encoded.transfer_syntax), cleaned, notes


def _check_zones(zones: list[Any], rows: int, cols: int) -> list[str]:
    """Validate the zones against this image: one wholly outside fails the instance.

    Returns one note per zone clipped to the image.
    """
    from gantry.errors import RedactionError
    from gantry.pixels._redact import clip_zones

    if not zones:
        raise RedactionError(
            "the instance has a redaction entry with no zones; nothing would be redacted: "
            "give the machine `redaction_zones` or drop its entry, then run `anonymize` again"
        )
    for zone in zones:
        if zone.clip(rows, cols) is None:
            raise RedactionError(
                f"redaction zone {list(zone.as_tuple())} lies entirely outside the "
                f"{rows}x{cols} image, so nothing there would be redacted: fix the machine's "
                "`redaction_zones` (row_start, row_end, col_start, col_end) and run "
                "`anonymize` again"
            )
    return clip_zones(zones, rows, cols)[1]


def _verify_written_zones(ds: Dataset, zones: list[Any], fill: float, *, lossy: bool) -> None:
    """Decode the pixel data as it will be written and check every zone holds `fill`.

    Lossless output must hold exactly `fill`; lossy output (a requested lossy
    compression) may differ by at most 1/16 of the stored range.
    """
    import numpy as np

    from gantry import pixels
    from gantry.errors import RedactionError
    from gantry.pixels._redact import clip_zones

    rows, cols = int(ds.Rows), int(ds.Columns)
    applied, _ = clip_zones(zones, rows, cols)
    bits = int(ds.get("BitsStored", 8) or 8)
    tolerance = max(2.0, float(2**bits) / 16) if lossy else 0.0
    for frame in pixels.iter_frames(ds):
        for zone in applied:
            region = frame[zone.row_start : zone.row_end, zone.col_start : zone.col_end]
            worst = float(np.max(np.abs(region.astype(np.float64) - float(fill))))
            if worst > tolerance:
                raise RedactionError(
                    f"the written pixel data still differs from the fill inside zone "
                    f"{list(zone.as_tuple())}; the instance is not exported as clean"
                )


def _settle_encoding(ds: Dataset, transfer_syntax: str) -> bool:
    """Decode every raw element when the data set is not encoded as its syntax says.

    pydicom reads such a file (an implicit VR data set under an explicit VR
    syntax, as some writers produce) with raw elements that carry no VR, and
    ``dcmwrite`` cannot encode those in the syntax the file is written in.
    True when it did (the source's bytes are then no part of the output).
    """
    syntax = pydicom.uid.UID(transfer_syntax)
    if not syntax.is_transfer_syntax:
        return False
    encoding = (syntax.is_implicit_VR, syntax.is_little_endian)
    raw = (ds.get_item(tag) for tag in ds.keys())
    if all(
        not isinstance(elem, RawDataElement)
        or (elem.is_implicit_VR, elem.is_little_endian) == encoding
        for elem in raw
    ):
        return False
    for _ in ds.iterall():  # reading an element converts it (sequence items too)
        pass
    return True


def _settle_claims(ds: Dataset, cleaned: bool) -> None:
    """Keep Clean Pixel Data (113101) only where a redaction was verified on the written pixels."""
    if cleaned or "DeidentificationMethodCodeSequence" not in ds:
        return
    codes = ds.DeidentificationMethodCodeSequence
    kept = [item for item in codes if str(item.get("CodeValue", "")) != "113101"]
    if len(kept) != len(codes):
        ds.DeidentificationMethodCodeSequence = Sequence(kept)


def _verify(data: bytes, header: bytes, item: ExportItem, *, copied: bool) -> None:
    """Read the output back: removed elements absent, no original value where it must not be."""
    ds = pydicom.dcmread(io.BytesIO(header if copied else data), stop_before_pixels=True)
    for path, _vr, action, _nv in item.actions:
        if action == "X":
            container, tag = _locate(ds, path)
            if container is not None and tag in container:
                raise VerificationError(f"element {path} should be removed but is present")
    scan = header if copied else data
    ts = str(ds.file_meta.get("TransferSyntaxUID", ExplicitVRLittleEndian))
    check_leaks(scan, item, ts)


def check_leaks(data: bytes, item: ExportItem, transfer_syntax: str) -> None:
    """Raise VerificationError naming the first original value found where it must not be."""
    from gantry.export._verification import file_leak, written_paths

    leak = file_leak(
        data,
        item.tokens,
        written_paths(item.actions, item.edits),
        transfer_syntax=transfer_syntax,
        out_rel=item.out_rel,
    )
    if leak is not None:
        raise VerificationError(leak.reason)
