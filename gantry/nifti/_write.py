"""Write one :class:`Volume` as ``.nii.gz`` (+ ``.json``, ``.bval``, ``.bvec``) through nibabel."""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path
from typing import Any

import numpy as np

from gantry._deps import require
from gantry.nifti._volume import Volume

DESCRIP = b"gantry"


def write_volume(volume: Volume, stem: Path, sidecar: dict[str, Any]) -> list[Path]:
    """Write ``<stem>.nii.gz`` and its companions atomically; return the paths written.

    The header holds the geometry and scaling only: ``descrip`` is ``"gantry"``,
    ``aux_file``, ``intent_name`` and ``db_name`` are empty and there are no
    extensions, so nothing from the DICOM header can travel in it.
    """
    nib = require("nibabel", extra="nifti")
    img = nib.Nifti1Image(volume.data, None)
    hdr = img.header
    hdr.set_data_dtype(volume.data.dtype)
    img.set_sform(volume.affine, code="scanner")
    if volume.sheared:  # a sheared affine has no quaternion form
        img.set_qform(None, code="unknown")
        zooms = np.linalg.norm(volume.affine[:3, :3], axis=0)
    else:
        img.set_qform(volume.affine, code="scanner")
        zooms = np.linalg.norm(volume.affine[:3, :3], axis=0)
    tr = sidecar.get("RepetitionTime")
    if volume.data.ndim == 4:
        hdr.set_zooms((*zooms, float(tr) if tr else 1.0))
    else:
        hdr.set_zooms(tuple(zooms))
    hdr.set_xyzt_units("mm", "sec")
    if (volume.slope, volume.intercept) != (1.0, 0.0):
        hdr.set_slope_inter(volume.slope, volume.intercept)
    else:
        hdr.set_slope_inter(1.0, 0.0)
    hdr["descrip"] = DESCRIP
    hdr["aux_file"] = b""
    hdr["intent_name"] = b""
    hdr["db_name"] = b""
    # nibabel serialises; imagecodecs (a core dependency) gzips about 3x faster than zlib
    import imagecodecs

    packed = imagecodecs.gzip_encode(img.to_bytes(), level=1)
    written = [_atomic(stem.with_name(stem.name + ".nii.gz"), lambda p: p.write_bytes(packed))]
    text = json.dumps(sidecar, indent=2, sort_keys=True) + "\n"
    written.append(_atomic(stem.with_name(stem.name + ".json"), lambda p: p.write_text(text)))
    if volume.bvals is not None and volume.bvecs is not None:
        bval = " ".join(_num(b) for b in volume.bvals) + "\n"
        bvec = "".join(" ".join(_num(v) for v in row) + "\n" for row in volume.bvecs)
        written.append(_atomic(stem.with_name(stem.name + ".bval"), lambda p: p.write_text(bval)))
        written.append(_atomic(stem.with_name(stem.name + ".bvec"), lambda p: p.write_text(bvec)))
    return written


def _num(value: float) -> str:
    text = f"{value:.6f}".rstrip("0").rstrip(".")
    return "0" if text in ("", "-0") else text


def _atomic(path: Path, write: Any) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{uuid.uuid4().hex}.tmp{''.join(path.suffixes)}")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path
