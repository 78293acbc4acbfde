"""scan_pixels → text_regions; audit, plan and safe export driven by the scan."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import polars as pl
import pydicom
import pytest

from gantry import Session
from gantry.audit import ocr_status
from gantry.cli import main
from gantry.ocr import display_frame
from gantry.testing._text import box_iou, make_text_instance


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Small images: US with identity text, US without text, an RGB screen capture with
    text, a 5-frame US cine with text in its last frame only, and a text-free CT."""
    root = tmp_path_factory.mktemp("ocr") / "dicom"
    truth = {}
    for name, kw in {
        "us_text": dict(kind="us", rows=96, columns=224, size=14, seed=1),
        "us_clean": dict(kind="us", rows=96, columns=224, texts=[], seed=2),
        "sc_text": dict(kind="screen", rows=96, columns=224, size=13, seed=3,
                        texts=[("Tel 020 7946 0958", True), ("GAIN 52", False)]),
        "cine": dict(kind="us", rows=96, columns=224, frames=5, text_frames=[4], size=14,
                     seed=4, transfer_syntax="1.2.840.10008.1.2.5"),
        "ct_clean": dict(kind="blank-ct", rows=64, columns=64, seed=5),
    }.items():  # fmt: skip
        _, boxes = make_text_instance(root / f"{name}.dcm", **kw)
        truth[name] = boxes
    return {"root": root, "truth": truth}


def _fid(s: Session, name: str) -> int:
    return int(s.sql(f"SELECT file_id FROM instances WHERE file_path LIKE '%{name}.dcm'").item())


@pytest.fixture
def session(corpus: dict, tmp_path: Path) -> Session:
    s = Session(tmp_path / "p.db")
    s.ingest(corpus["root"], workers=1, progress=False)
    yield s
    s.close()


def test_scan_writes_regions_and_flags_identity(session: Session, corpus: dict) -> None:
    r = session.scan_pixels(workers=1, progress=False)
    assert (r.selected, r.scanned, r.failed) == (5, 5, 0)
    assert r.frames == 1 + 1 + 1 + 3 + 1  # the cine's first, middle and last frames
    regions = session.sql("SELECT * FROM text_regions")
    assert set(regions.columns) >= {
        "file_id", "frame", "r1", "r2", "c1", "c2", "confidence", "text", "identity", "phi",
    }  # fmt: skip
    us = regions.filter(pl.col("file_id") == _fid(session, "us_text"))
    for t in corpus["truth"]["us_text"]:
        best = max(us.iter_rows(named=True), key=lambda b: box_iou(_Box(b), t))
        assert box_iou(_Box(best), t) >= 0.3, t.text
        assert best["phi"] == t.phi, (t.text, best["match"])
    assert us.filter(pl.col("identity")).height >= 2  # the patient's name and ID
    phone = regions.filter((pl.col("file_id") == _fid(session, "sc_text")) & pl.col("phi"))
    assert "pattern:phone" in phone["match"].item()
    cine = regions.filter(pl.col("file_id") == _fid(session, "cine"))
    assert set(cine["frame"]) == {4}
    for clean in ("us_clean", "ct_clean"):
        assert regions.filter(pl.col("file_id") == _fid(session, clean)).height == 0
    scans = session.sql("SELECT file_id, all_frames, status FROM ocr_scans")
    assert scans.height == 5 and set(scans["status"]) == {"ok"}
    assert not scans.filter(pl.col("file_id") == _fid(session, "cine"))["all_frames"].item()


class _Box:
    def __init__(self, row: dict) -> None:
        self.r1, self.r2, self.c1, self.c2 = row["r1"], row["r2"], row["c1"], row["c2"]


def test_scan_resumes_and_keeps_the_latest_scan(session: Session) -> None:
    first = session.scan_pixels(query="file_path LIKE '%clean.dcm'", workers=1, progress=False)
    assert first.scanned == 2
    again = session.scan_pixels(workers=1, progress=False)
    assert (again.skipped, again.scanned) == (2, 3)  # only what was not scanned yet
    redo = session.scan_pixels(
        query="file_path LIKE '%us_%'", rescan=True, workers=1, progress=False
    )
    assert redo.scanned == 2
    per_file = session.sql("SELECT file_id, count(*) AS n FROM ocr_scans GROUP BY 1")
    assert per_file.height == 5 and per_file["n"].max() == 1
    n = session.sql("SELECT count(DISTINCT scan_id) AS n FROM text_regions").item()
    assert n == 3  # us_text, sc_text and cine: each with its latest scan only


def test_safe_export_clears_text_free_images_and_redacts_text(
    session: Session, corpus: dict, tmp_path: Path
) -> None:
    before = session.audit().unresolved()
    blocked = {int(f) for f in before.filter(pl.col("rule") == "burned-in")["file_id"]}
    us_ids = {_fid(session, n) for n in ("us_text", "us_clean", "sc_text", "cine")}
    assert us_ids <= blocked  # no scan yet: today's fail-closed exclusion
    assert _ocr_preview(session) == {"ocr:needs-scan": (4, 4)}

    session.scan_pixels(safe=True, workers=1, progress=False)  # every frame
    regions = session.sql("SELECT count(*) FROM text_regions WHERE file_id != "
                          f"{_fid(session, 'us_clean')}").item()  # fmt: skip
    assert _ocr_preview(session) == {
        "ocr:scanned": (5, 5),  # the CT too
        "ocr": (regions, 3),  # text in us_text, sc_text and the cine
        "ocr:cleared": (2, 2),  # us_clean and the CT
    }
    assert str(ocr_status(session.store)).startswith("5 images scanned in full: 2 cleared")
    report = session.audit()
    assert report.unresolved().filter(pl.col("rule") == "burned-in").height == 0
    ocr = report.to_polars().filter(pl.col("rule") == "burned-in-ocr")
    assert ocr.height >= 4 and ocr["resolved"].all()
    assert "high" in ocr["severity"].cast(pl.String).to_list()

    session.anonymize()
    redact = session.sql("SELECT file_id, new_value, rule FROM plan WHERE action = 'REDACT'")
    assert set(redact["rule"]) == {"ocr"}
    assert _fid(session, "us_clean") not in set(redact["file_id"])
    dest = tmp_path / "out"
    r = session.export(dest, safe=True, workers=1, progress=False)
    assert r.ok, r.failed
    assert r.excluded.height == 0 and r.exported == 5

    manifest = pl.read_csv(dest / "manifest.csv")
    boxed = manifest.filter(pl.col("redacted_boxes").is_not_null())
    assert boxed.height == 3
    out = {p: pydicom.dcmread(dest / p) for p in manifest["output_path"]}
    zones_of = {int(f): json.loads(v)["zones"] for f, v, _ in redact.iter_rows()}
    fid_us = _fid(session, "us_text")
    written = next(
        ds for ds in out.values() if ds.Rows == 96 and "NumberOfFrames" not in ds
        and _same_pixels_outside(ds, corpus["root"] / "us_text.dcm", zones_of[fid_us])
    )  # fmt: skip
    image = display_frame(written)
    for t in corpus["truth"]["us_text"]:  # every line of text is blanked
        assert image[t.r1 : t.r2, t.c1 : t.c2].max() == 0, t.text
    assert written.BurnedInAnnotation == "NO"


def _ocr_preview(s: Session) -> dict[str, tuple[int, int]]:
    rows = s.preview().filter(pl.col("rule").str.starts_with("ocr"))
    return {r: (e, i) for r, e, i in rows.select("rule", "elements", "instances").iter_rows()}


def _same_pixels_outside(ds: pydicom.Dataset, original: Path, zones: list) -> bool:
    src = pydicom.dcmread(original).pixel_array
    got = ds.pixel_array
    if got.shape != src.shape:
        return False
    mask = np.ones(src.shape[:2], bool)
    for r1, r2, c1, c2 in zones:
        mask[r1:r2, c1:c2] = False
    return bool(np.array_equal(got[mask], src[mask]))


def test_sampled_scan_does_not_clear_a_cine(session: Session, tmp_path: Path) -> None:
    session.scan_pixels(query="file_path LIKE '%cine.dcm'", workers=1, progress=False)
    un = session.audit().unresolved()
    cine = un.filter(pl.col("file_id") == _fid(session, "cine"))
    assert cine.height == 1 and "sampled frames only" in cine["reason"].item()
    status = ocr_status(session.store)
    assert (status.partial, status.scanned, status.needs_scan) == (1, 0, 4)
    session.anonymize()
    r = session.export(tmp_path / "out", safe=True, query="file_path LIKE '%cine.dcm'",
                       workers=1, progress=False)  # fmt: skip
    assert r.exported == 0 and r.excluded.height == 1


def test_policy_phi_keeps_harmless_text(session: Session) -> None:
    session.scan_pixels(query="file_path LIKE '%sc_text.dcm'", workers=1, progress=False)
    cfg = {"burned_in": {"ocr_redact": "phi", "ocr_padding": 0}}
    session.anonymize(cfg)
    zones = json.loads(session.sql("SELECT new_value FROM plan WHERE action = 'REDACT'").item())
    phone = session.sql("SELECT r1, r2, c1, c2 FROM text_regions WHERE phi").rows()
    assert [tuple(z) for z in zones["zones"]] == phone  # "GAIN 52" is kept
    assert session.sql("SELECT count(*) FROM text_regions WHERE NOT phi").item() == 1


def test_second_pass_fails_an_instance_whose_text_survives(
    session: Session, tmp_path: Path
) -> None:
    session.scan_pixels(query="file_path LIKE '%us_text.dcm'", workers=1, progress=False)
    # boxes in the wrong place (as a bad detection would give): the plan redacts them,
    # the text stays, and the second OCR pass on the written pixels catches it
    regions = session.sql("SELECT * FROM text_regions")
    session.store.write_table(
        "text_regions",
        regions.with_columns(
            pl.lit(88, pl.Int32).alias("r1"), pl.lit(92, pl.Int32).alias("r2"),
            pl.lit(0, pl.Int32).alias("c1"), pl.lit(8, pl.Int32).alias("c2"),
        ),
    )  # fmt: skip
    session.anonymize({"burned_in": {"ocr_padding": 0}})
    r = session.export(tmp_path / "out", safe=True, query="file_path LIKE '%us_text.dcm'",
                       workers=1, progress=False)  # fmt: skip
    assert r.exported == 0 and r.failed.height == 1, (r.excluded, r.failed)
    reason = r.failed["reason"].item()
    assert "second OCR pass" in reason and "identity:" in reason
    assert not list((tmp_path / "out").rglob("*.dcm"))


def test_unreadable_pixels_are_recorded_not_cleared(tmp_path: Path) -> None:
    ds, _ = make_text_instance(kind="us", rows=32, columns=32, texts=[])
    ds.PixelData = ds.PixelData[:100]  # truncated
    ds.save_as(tmp_path / "bad.dcm", enforce_file_format=True)
    with Session(tmp_path / "p.db") as s:
        s.ingest(tmp_path / "bad.dcm", workers=1, progress=False)
        r = s.scan_pixels(workers=1, progress=False)
        assert (r.scanned, r.failed) == (0, 1)
        row = s.sql("SELECT status, error FROM ocr_scans").row(0)
        assert row[0] == "failed" and row[1]
        assert s.audit().unresolved().filter(pl.col("rule") == "burned-in").height == 1


def test_a_scan_that_finds_no_text_leaves_an_empty_regions_table(tmp_path: Path) -> None:
    ds, _ = make_text_instance(kind="us", rows=32, columns=32, texts=[])
    ds.save_as(tmp_path / "blank.dcm", enforce_file_format=True)
    with Session(tmp_path / "p.db") as s:
        s.ingest(tmp_path / "blank.dcm", workers=1, progress=False)
        r = s.scan_pixels(workers=1, progress=False)
        assert (r.scanned, r.regions) == (1, 0)
        assert s.sql("SELECT count(*) AS n FROM text_regions")["n"][0] == 0


def test_parallel_scan_and_cli(corpus: dict, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    db = tmp_path / "p.db"
    with Session(db) as s:
        s.ingest(corpus["root"], workers=1, progress=False)
        r = s.scan_pixels(query="file_path LIKE '%clean.dcm' OR file_path LIKE '%us_text%'",
                          workers=2, progress=False)  # fmt: skip
        assert (r.scanned, r.regions > 0) == (3, True)
    with pytest.raises(SystemExit) as exc:
        main(["scan", "--db", str(db), "--safe", "-q"])
    assert exc.value.code in (0, None)
    out = capsys.readouterr().out
    assert "scanned 2 of 5 instances (3 already scanned, 0 failed)" in out
    with pytest.raises(SystemExit) as exc:
        main(["scan", "--db", str(db), "--engine", "nope"])
    assert exc.value.code == 2


def test_scan_after_the_plan_is_not_exported_unredacted(session: Session, tmp_path: Path) -> None:
    session.anonymize()  # planned before any scan: no OCR boxes in the plan
    session.scan_pixels(query="file_path LIKE '%us_text.dcm'", safe=True, workers=1,
                        progress=False)  # fmt: skip
    r = session.export(tmp_path / "out", safe=True, query="file_path LIKE '%us_text.dcm'",
                       workers=1, progress=False)  # fmt: skip
    assert r.exported == 0 and "run anonymize again" in r.excluded["reason"].item()
    session.anonymize()
    r = session.export(tmp_path / "out", safe=True, query="file_path LIKE '%us_text.dcm'",
                       workers=1, progress=False)  # fmt: skip
    assert r.exported == 1, (r.excluded, r.failed)
