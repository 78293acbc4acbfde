"""Export under hostile input: no false "cleaned" claim, no PHI in reasons, nothing left behind."""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

import pydicom
import pytest
import yaml
from click.testing import CliRunner

from gantry import Session
from gantry._messages import capture_warnings, mask, reason_for
from gantry.cli import cli
from gantry.errors import CodecError
from gantry.export._apply import STAGING
from gantry.store._layout import EXPORT_MARKER
from gantry.testing import make_instance

CANARY_DIR = "CANARY_DOE^JANE_555-123-4567"
CANARY_UID = "1.2.826.0.1.3680043.55512345"


def _machine(*zones: list[int]) -> dict[str, object]:
    return {
        "machines": [
            {"name": "us", "match": {"manufacturer": "sonoria"}, "redaction_zones": list(zones)}
        ]
    }


@pytest.fixture
def us_files(tmp_path: Path) -> Path:
    root = tmp_path / CANARY_DIR
    root.mkdir()
    for i in range(3):
        make_instance(root / f"us{i}.dcm", modality="US", frames=2, seed=i,
                      transfer_syntax="1.2.840.10008.1.2.5")  # fmt: skip
    # one file whose RLE pixel data is corrupt: decoding it must fail closed
    bad = root / "us_bad.dcm"
    make_instance(bad, modality="US", seed=9, transfer_syntax="1.2.840.10008.1.2.5")
    data = bytearray(bad.read_bytes())
    data[-200:-8] = bytes(192)
    bad.write_bytes(bytes(data))
    return root


def _export(root: Path, tmp_path: Path, config: dict[str, object]) -> tuple[object, list[dict]]:
    with Session(tmp_path / "s.db") as s:
        s.ingest(root, workers=1, progress=False)
        s.anonymize(config)
        result = s.export(tmp_path / "out", config=config, workers=1, progress=False)
        rows = s.sql("SELECT status, reason, notes FROM exports").to_dicts()
    return result, rows


def test_a_zone_outside_the_image_fails_the_instance(us_files: Path, tmp_path: Path) -> None:
    result, rows = _export(us_files, tmp_path, _machine([5000, 6000, 5000, 6000]))
    assert result.exported == 0 and result.failed.height == 4  # type: ignore[attr-defined]
    reasons = [r["reason"] for r in rows]
    assert all("entirely outside the 64x64 image" in r for r in reasons)
    assert not list((tmp_path / "out").rglob("*.dcm"))


def test_a_partly_outside_zone_is_clipped_reported_and_verified(
    us_files: Path, tmp_path: Path
) -> None:
    result, rows = _export(us_files, tmp_path, _machine([0, 8, 40, 500]))
    assert result.exported == 3  # type: ignore[attr-defined]
    notes = {r["notes"] for r in rows if r["status"] == "ok"}
    assert notes == {
        "zone (0, 8, 40, 500) extends outside the 64x64 image; clipped to (0, 8, 40, 64)"
    }
    for path in (tmp_path / "out").rglob("*.dcm"):
        ds = pydicom.dcmread(path)
        assert ds.BurnedInAnnotation == "NO"
        assert "113101" in {c.CodeValue for c in ds.DeidentificationMethodCodeSequence}
        assert not ds.pixel_array[:, 0:8, 40:64].any()


def test_failure_reasons_hold_no_path_and_no_value(us_files: Path, tmp_path: Path) -> None:
    config = _machine([0, 8, 0, 16])
    result, rows = _export(us_files, tmp_path, config)
    failed = result.failed  # type: ignore[attr-defined]
    assert failed.height == 1
    reason = failed["reason"][0]
    assert reason.startswith("CodecError: pixel data (1.2.840.10008.1.2.5)")
    for text in [*failed["reason"], *(r["reason"] for r in rows)]:
        assert "CANARY" not in text and str(tmp_path) not in text
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(yaml.safe_dump(config))
    out = CliRunner().invoke(
        cli,
        ["export", str(tmp_path / "out2"), "--db", str(tmp_path / "s.db"), "-q", "-j", "1",
         "--config", str(cfg)],
    )  # fmt: skip
    assert "failed 1" in out.output and "CodecError" in out.output
    assert "CANARY" not in out.output and str(us_files) not in out.output


def test_nothing_is_left_beside_the_outputs(us_files: Path, tmp_path: Path) -> None:
    config = _machine([0, 8, 0, 16])
    staging = tmp_path / "out" / STAGING
    staging.mkdir(parents=True)
    (staging / "0123.tmp").write_bytes(b"")  # what a killed export leaves
    _export(us_files, tmp_path, config)
    assert not staging.exists()
    hidden = [p.name for p in (tmp_path / "out").rglob(".*")]
    assert hidden == [EXPORT_MARKER]  # only the export folder's marker


def test_reasons_of_internal_errors_name_the_kind_only() -> None:
    text = reason_for(ValueError(f"could not convert string to float: 'ANON_000016' {CANARY_UID}"))
    assert "ValueError" in text and "ANON" not in text and CANARY_UID not in text
    assert "No such file" in reason_for(FileNotFoundError(2, "No such file", f"/x/{CANARY_DIR}/a"))
    assert CANARY_DIR not in reason_for(FileNotFoundError(2, "No such file", f"/x/{CANARY_DIR}/a"))
    codec = reason_for(CodecError(f"/x/{CANARY_DIR}/a.dcm", "1.2.840.10008.1.2.5", "is corrupt"))
    assert codec == "CodecError: pixel data (1.2.840.10008.1.2.5) is corrupt"


def test_third_party_warnings_are_logged_masked(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="gantry"), capture_warnings() as seen:
        warnings.warn(f"Invalid value for VR UI: '{CANARY_UID}'", UserWarning, stacklevel=1)
        warnings.warn(f"cannot read /data/{CANARY_DIR}/x.dcm", UserWarning, stacklevel=1)
    assert len(seen) == 2 and all("CANARY" not in s and CANARY_UID not in s for s in seen)
    assert CANARY_UID not in caplog.text and "CANARY" not in caplog.text
    assert "Invalid value for VR UI: '<masked>'" in caplog.text
    assert mask(f"uid {CANARY_UID}") == "uid <uid>"


def test_pydicom_warnings_never_reach_stderr_during_export(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    root = tmp_path / "in"
    root.mkdir()
    # an invalid UID (letters) that pydicom warns about, quoting it, when it reads it
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        make_instance(root / "a.dcm", modality="CT", FrameOfReferenceUID=CANARY_UID + ".X9")
    with Session(tmp_path / "s.db") as s:
        s.ingest(root, workers=1, progress=False)
        s.anonymize(None)
        capfd.readouterr()
        s.export(tmp_path / "out", workers=1, progress=False, compression="rle")
    captured = capfd.readouterr()
    assert CANARY_UID not in captured.err and CANARY_UID not in captured.out


def test_error_messages_never_carry_the_source_path() -> None:
    from gantry.errors import IngestError

    path = f"/data/{CANARY_DIR}/{CANARY_UID}.dcm"
    for exc in (
        CodecError(path, "1.2.840.10008.1.2.4.90", "could not be decoded"),
        IngestError(path, "truncated", "the file ends inside an element"),
    ):
        assert exc.path == path  # the file is a field ...
        assert "CANARY" not in str(exc) and CANARY_UID not in str(exc)  # ... never message text
        assert "CANARY" not in reason_for(exc)
