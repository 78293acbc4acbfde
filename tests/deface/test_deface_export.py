"""Defacing end to end: anonymize plans DEFACE rows, export writes defaced pixels.

A series that cannot be defaced is excluded with its reason, never written with
its face; the written files still pass the canary scan.
"""

from __future__ import annotations

import json
from pathlib import Path

import pydicom
import pytest

from gantry import Session
from gantry.deface import SliceGeometry, side_projection
from gantry.errors import ConfigError, StoreError
from gantry.pixels import decode
from gantry.testing import make_head_phantom, write_head_series

pytest.importorskip("scipy", reason="pip install 'gantry[deface]'")


CANARIES = {
    "PatientName": "Zqcanary^Headface",
    "PatientID": "ZQCANARY-ID-7731",
    "InstitutionName": "Zqcanary Imaging Centre",
    "StudyDescription": "ZQCANARY HEAD STUDY",
}


@pytest.fixture(scope="module")
def heads(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    root = tmp_path_factory.mktemp("deface")
    ct = make_head_phantom(size=48, spacing=5.0, orientation="coronal", reverse=True, noise=10)
    mr = make_head_phantom(size=48, spacing=5.0, modality="MR", pitch=8.0, noise=20)
    write_head_series(root / "dicom" / "ct", ct, seed=1, **CANARIES)
    write_head_series(root / "dicom" / "mr", mr, seed=2, **CANARIES)
    short = make_head_phantom(size=48, spacing=5.0)
    short.volume, short.positions = short.volume[:8], short.positions[:8]
    write_head_series(root / "dicom" / "short", short, seed=3)
    flat = make_head_phantom(size=48, spacing=5.0, modality="MR", seed=4)
    write_head_series(root / "dicom" / "nogeo", flat, seed=4, ImagePositionPatient=None)
    with Session(root / "s.db") as s:
        s.ingest(root / "dicom", workers=1, progress=False)
        uids = dict(
            s.sql(
                "SELECT DISTINCT regexp_extract(file_path, '/dicom/([a-z]+)/', 1), "
                "SeriesInstanceUID FROM instances"
            ).rows()
        )
    return {"root": root, "uids": uids, "ct": ct, "mr": mr}


def test_deface_table_records_planes_and_refusals(heads: dict[str, object]) -> None:
    root, uids = Path(str(heads["root"])), heads["uids"]
    assert isinstance(uids, dict)
    with Session(root / "s.db") as s:
        table = s.deface(list(uids.values()))
        again = s.deface(uids["ct"])  # current: not fitted again
        runs = s.sql("SELECT kind FROM runs WHERE kind = 'deface'")
    by = {r["SeriesInstanceUID"]: r for r in table.iter_rows(named=True)}
    for name in ("ct", "mr"):
        row = by[uids[name]]
        assert row["status"] == "ok", row["reason"]
        assert row["method"] == "quickshear" and len(row["normal"]) == 3
        assert 0.01 < row["removed_fraction"] < 0.5
    assert by[uids["short"]]["status"] == "refused"
    assert "at least 16 slices" in by[uids["short"]]["reason"]
    assert "no usable geometry" in by[uids["nogeo"]]["reason"]
    assert again["computed_at"].to_list() == [by[uids["ct"]]["computed_at"]]
    assert runs.height == 2


def test_preview_pngs_show_the_face_gone(heads: dict[str, object]) -> None:
    import imagecodecs

    root, uids = Path(str(heads["root"])), heads["uids"]
    assert isinstance(uids, dict)
    with Session(root / "s.db") as s:
        s.deface(uids["ct"])
        preview = s.deface_preview(uids["ct"])
        with pytest.raises(StoreError, match="run `deface`"):
            s.deface_preview(uids["short"])
    before, after = imagecodecs.png_decode(preview.before), imagecodecs.png_decode(preview.after)
    assert before.shape == after.shape == (48, 48)
    assert after.sum() < before.sum()
    ct = heads["ct"]
    face = side_projection(ct.face.astype(float), ct.geometries()) > 0  # type: ignore[attr-defined]
    assert face[:, :24].sum() > 0.9 * face.sum()  # the face is drawn to the left
    assert before[face].mean() > 50 and after[face].max() < 10  # gone after defacing


def test_export_writes_defaced_pixels_and_excludes_what_cannot_be(
    heads: dict[str, object],
) -> None:
    root, uids = Path(str(heads["root"])), heads["uids"]
    assert isinstance(uids, dict)
    cfg = {"deface": {"series": [uids[n] for n in ("ct", "mr", "short", "nogeo")]}}
    with Session(root / "s.db") as s:
        s.anonymize(cfg)
        planned = s.sql(
            "SELECT count(*) AS n, any_value(rule) AS rule FROM plan WHERE action = 'DEFACE'"
        )
        result = s.export(root / "out", config=cfg, workers=1, progress=False)
        sources = dict(
            s.sql(
                "SELECT SOPInstanceUID, file_path FROM instances WHERE SeriesInstanceUID IN (?, ?)",
                [uids["ct"], uids["mr"]],
            ).rows()
        )
        source_series = dict(s.sql("SELECT file_id, SeriesInstanceUID FROM instances").rows())
    assert planned.row(0) == (96, "deface:quickshear")
    assert result.exported == 96 and result.failed.height == 0
    excluded = {source_series[f]: r for f, r in result.excluded.iter_rows()}
    assert set(excluded) == {uids["short"], uids["nogeo"]}
    assert all(r.startswith("not defaced: ") for r in excluded.values())
    assert "at least 16 slices" in excluded[uids["short"]]
    written = list((root / "out").rglob("*.dcm"))
    assert len(written) == 96
    for path in written:  # every output byte: no identifying value planted in the source
        data = path.read_bytes().upper()
        assert not any(v.upper().encode() in data for v in CANARIES.values()), path
    face_removed, face_total, brain_kept, brain_total = 0, 0, 0, 0
    by_original_sop = {pydicom.dcmread(p, stop_before_pixels=True).SOPInstanceUID: p
                       for p in sources.values()}  # fmt: skip
    geometries = {}
    for path in by_original_sop.values():
        ds = pydicom.dcmread(path)
        geometries[(str(ds.SeriesDescription), int(ds.InstanceNumber))] = (
            SliceGeometry.from_dataset(ds),
            decode(ds),
        )
    for path in written:
        out = pydicom.dcmread(path)
        assert out.RecognizableVisualFeatures == "NO"
        codes = [c.CodeValue for c in out.DeidentificationMethodCodeSequence]
        assert "113102" in codes
        kind = "CT" if out.Modality == "CT" else "MR"
        phantom = heads[kind.lower()]
        k = int(out.InstanceNumber) - 1
        geometry, original = geometries[(f"HEAD {kind}", k + 1)]
        pixels = decode(out)
        changed = pixels != original
        face, brain = phantom.face[k], phantom.brain[k]  # type: ignore[attr-defined]
        face_removed += int((pixels[face] == pixels.min()).sum() if face.any() else 0)
        face_total += int(face.sum())
        brain_kept += int((~changed[brain]).sum())
        brain_total += int(brain.sum())
        assert geometry.rows == pixels.shape[0]
    assert face_total > 0 and face_removed / face_total >= 0.99
    assert brain_kept / brain_total >= 0.995


def test_config_mistakes_name_the_key(tmp_path: Path) -> None:
    from gantry.config import load_config

    with pytest.raises(ConfigError, match=r"deface\.series\[0\]"):
        load_config({"deface": {"series": ["not a uid"]}})
    with pytest.raises(ConfigError, match=r"deface\.margin"):
        load_config({"deface": {"margin": -1}})
    with pytest.raises(ConfigError, match=r"deface\.serie"):
        load_config({"deface": {"serie": []}})
    cfg = load_config({"deface": {"series": ["1.2.3"], "margin": 6}})
    assert cfg.deface.series == ("1.2.3",) and cfg.deface.margin == 6.0
    assert load_config(cfg.to_dict()) == cfg


def test_cli_fits_reports_and_writes_previews(heads: dict[str, object], tmp_path: Path) -> None:
    from click.testing import CliRunner

    from gantry.cli import cli

    root, uids = Path(str(heads["root"])), heads["uids"]
    assert isinstance(uids, dict)
    db = str(root / "s.db")
    ok = CliRunner().invoke(
        cli, ["deface", "--db", db, "--series", uids["mr"], "--preview", str(tmp_path)]
    )
    assert ok.exit_code == 0, ok.output
    assert "1 of 1 series fitted" in ok.output
    assert (tmp_path / f"{uids['mr']}_after.png").read_bytes()[:4] == b"\x89PNG"
    bad = CliRunner().invoke(
        cli, ["deface", "--db", db, "--series", uids["short"], "--series", uids["ct"], "--json"]
    )
    assert bad.exit_code == 1
    out = json.loads(bad.output)
    assert out["fitted"] == 1 and out["series"] == 2
    assert out["planes"][0]["SeriesInstanceUID"] == uids["ct"]
    assert "at least 16 slices" in out["refused"][0]["reason"]


@pytest.mark.parametrize(("compression", "lossy"), [("rle", False), ("j2k-lossy", True)])
def test_compressed_output_is_defaced_or_refused_when_lossy(
    heads: dict[str, object], compression: str, lossy: bool
) -> None:
    import hashlib

    root, uids = Path(str(heads["root"])), heads["uids"]
    assert isinstance(uids, dict)
    cfg = {"deface": {"series": [uids["mr"]]}}
    query = f"SeriesInstanceUID = '{uids['mr']}'"
    with Session(root / "s.db") as s:
        sources = s.sql(f"SELECT file_path FROM instances WHERE {query}")["file_path"].to_list()
        digests = [hashlib.sha256(Path(p).read_bytes()).hexdigest() for p in sources]
        s.anonymize(cfg)
        dest = root / f"out-{compression}"
        result = s.export(
            dest, config=cfg, query=query, compression=compression, workers=1, progress=False
        )
    assert digests == [hashlib.sha256(Path(p).read_bytes()).hexdigest() for p in sources]
    if lossy:
        assert result.exported == 0 and result.failed.height == len(sources)
        assert result.failed["reason"].str.contains("lossy").all()
        return
    assert result.exported == len(sources)
    mr = heads["mr"]
    for path in dest.rglob("*.dcm"):
        out = pydicom.dcmread(path)
        assert out.file_meta.TransferSyntaxUID == pydicom.uid.RLELossless
        k = int(out.InstanceNumber) - 1
        face = mr.face[k]  # type: ignore[attr-defined]
        if face.any():
            assert (decode(out)[face] == 0).mean() >= 0.99


def test_dry_run_on_a_read_only_session_fits_without_writing(heads: dict[str, object]) -> None:
    import shutil

    root, uids = Path(str(heads["root"])), heads["uids"]
    assert isinstance(uids, dict)
    copy = root.parent / "readonly-copy"
    shutil.copytree(root, copy, ignore=shutil.ignore_patterns("out*"))
    cfg = {"deface": {"series": [uids["ct"]], "margin": 7.5}}  # a margin never fitted before
    with Session(copy / "s.db", read_only=True) as s:
        failures = s.preview_failures(cfg)
        tables = s.store.table_names()
        margins = s.sql("SELECT margin FROM deface")["margin"] if "deface" in tables else []
    assert failures.height == 0
    assert 7.5 not in list(margins)
