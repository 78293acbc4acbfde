"""Export with redaction zones and transcoding; fail closed on undecodable pixels."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
import pytest
from click.testing import CliRunner

from gantry import Session
from gantry.cli import cli
from gantry.pixels import decode
from gantry.testing import make_corpus, make_instance

ZONE = [0, 8, 0, 16]
US_MACHINE = {
    "name": "Sonoria S8 banner",
    "match": {"manufacturer": "sonoria", "model": "S8", "mode": "contains"},
    "redaction_zones": [ZONE],
    "fill": 0,
}


def _by_sop(dest: Path) -> dict[str, pydicom.Dataset]:
    return {pydicom.dcmread(f).SOPInstanceUID: pydicom.dcmread(f) for f in dest.rglob("*.dcm")}


@pytest.fixture(scope="module")
def us_session(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("us")
    make_corpus(
        root / "dicom",
        patients=1,
        studies_per_patient=1,
        series_per_study=2,
        instances_per_series=2,
        modalities=("US", "CT"),
    )
    with Session(root / "s.db") as s:
        s.ingest(root / "dicom", workers=1, progress=False)
    return root


def test_zones_blank_every_frame_and_leave_the_rest(us_session: Path) -> None:
    cfg = {"machines": [US_MACHINE]}
    with Session(us_session / "s.db") as s:
        s.anonymize(cfg)
        plan = s.sql("SELECT file_id, new_value FROM plan WHERE action = 'REDACT'")
        r = s.export(us_session / "out", config=cfg, safe=True, workers=1, progress=False)
        originals = dict(
            s.sql("SELECT SOPInstanceUID, file_path FROM instances WHERE Modality = 'US'").rows()
        )
        secret = s.store.secret
    assert plan.height == len(originals) > 0
    assert r.ok and r.excluded.height == 0  # the zone resolves the burned-in risk
    from gantry.plan import remap_uid

    out = _by_sop(us_session / "out")
    for sop, path in originals.items():
        before = decode(pydicom.dcmread(path))
        ds = out[remap_uid(secret, sop)]
        after = decode(ds)
        assert before.shape == after.shape and before.ndim == 4  # frames, rows, cols, rgb
        r1, r2, c1, c2 = ZONE
        assert not after[:, r1:r2, c1:c2].any()
        mask = np.ones(before.shape[1:3], bool)
        mask[r1:r2, c1:c2] = False
        assert np.array_equal(before[:, mask], after[:, mask])
        assert ds.BurnedInAnnotation == "NO"
        assert "113101" in {c.CodeValue for c in ds.DeidentificationMethodCodeSequence}


def test_without_zone_burned_in_instances_are_excluded(us_session: Path) -> None:
    with Session(us_session / "s.db") as s:
        s.anonymize(None)
        r = s.export(us_session / "out-safe", safe=True, workers=1, progress=False)
        n_us = s.sql("SELECT count(*) AS n FROM instances WHERE Modality = 'US'")["n"][0]
    assert r.excluded.height == n_us
    assert all("burned-in" in reason for reason in r.excluded["reason"].to_list())


@pytest.mark.parametrize("compression", ["j2k", "jpegls", "rle", "htj2k"])
def test_lossless_transcoding_keeps_pixels(us_session: Path, compression: str) -> None:
    dest = us_session / f"out-{compression}"
    with Session(us_session / "s.db") as s:
        s.anonymize(None)
        r = s.export(
            dest,
            safe=False,
            compression=compression,
            query="Modality = 'CT'",
            workers=1,
            progress=False,
        )
        originals = dict(
            s.sql("SELECT SOPInstanceUID, file_path FROM instances WHERE Modality = 'CT'").rows()
        )
        secret = s.store.secret
    assert r.ok and r.exported == len(originals)
    from gantry.plan import remap_uid

    out = _by_sop(dest)
    for sop, path in originals.items():
        ds = out[remap_uid(secret, sop)]
        assert ds.file_meta.TransferSyntaxUID.is_compressed
        assert np.array_equal(decode(pydicom.dcmread(path)), decode(ds))


def test_undecodable_pixels_fail_closed_and_cli_exits_nonzero(tmp_path: Path) -> None:
    src = tmp_path / "dicom" / "broken.dcm"
    make_instance(src, modality="US", transfer_syntax="1.2.840.10008.1.2.4.90")
    data = bytearray(src.read_bytes())
    soc = data.find(b"\xff\x4f\xff\x51")  # JPEG 2000 start of codestream + SIZ
    assert soc > 0
    data[soc : soc + 64] = b"\x00" * 64  # the codestream header is gone
    src.write_bytes(bytes(data))
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(
        "version: 2\nmachines:\n  - name: us\n    match: {manufacturer: Sonoria}\n"
        "    redaction_zones: [[0, 4, 0, 4]]\n"
    )
    db = tmp_path / "s.db"
    with Session(db) as s:
        s.ingest(tmp_path / "dicom", workers=1, progress=False)
        s.anonymize(cfg)
    result = CliRunner().invoke(
        cli,
        ["export", str(tmp_path / "out"), "--db", str(db), "--config", str(cfg), "-q", "-j", "1"],
    )
    assert result.exit_code == 1, result.output
    assert "failed 1" in result.output
    assert not list((tmp_path / "out").rglob("*.dcm"))
    with Session(db) as s:
        reason = s.sql("SELECT reason FROM exports WHERE status = 'failed'")["reason"][0]
    assert "CodecError" in reason or "Redaction" in reason
