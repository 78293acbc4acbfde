"""The review app in-process (Starlette's TestClient): the guard, the pages, and decisions
reaching the plan, ``runs`` and a later export."""

from __future__ import annotations

import html
import json
import logging
import re
import sys
from collections.abc import Iterator
from pathlib import Path

import imagecodecs
import numpy as np
import pydicom
import pytest
from click.testing import CliRunner
from starlette.testclient import TestClient

from gantry import Session
from gantry.cli import cli
from gantry.errors import ConfigError, MissingDependencyError
from gantry.review import (
    create_app,
    decisions,
    device_zones,
    exclude,
    instance_zones,
    set_device_zones,
)
from gantry.testing import make_instance
from gantry.testing._canaries import CANARY_RE

TOKEN = "t0k3n-" + "x" * 26
BASE = "http://127.0.0.1"


@pytest.fixture
def session(review_db: Path) -> Iterator[Session]:
    with Session(review_db) as s:
        yield s


@pytest.fixture
def client(session: Session) -> TestClient:
    return TestClient(create_app(session, token=TOKEN, reviewer="ana"), base_url=BASE)


def _get(client: TestClient, path: str, **params: str) -> str:
    r = client.get(path, params={"token": TOKEN, **params})
    assert r.status_code == 200, (path, r.status_code, r.text[:300])
    return r.text


def _ids(s: Session, modality: str) -> list[int]:
    return s.sql("SELECT file_id FROM instances WHERE Modality = ? ORDER BY file_id", [modality])[
        "file_id"
    ].to_list()


def _series_of(s: Session, modality: str) -> str:
    for si, series in enumerate(s.patients[0].studies[0].series):
        if series.get("Modality") == modality:
            return f"/patients/0/studies/0/series/{si}"
    raise AssertionError(modality)


# -- the guard -------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/", "/patients", "/instances/1", "/review.css", "/nope"])
def test_every_request_without_the_token_is_403(client: TestClient, path: str) -> None:
    for params in ({}, {"token": "wrong"}, {"token": TOKEN[:-1]}):
        r = client.get(path, params=params)
        assert r.status_code == 403 and "CNRY" not in r.text
    assert client.post("/decide", data={"token": TOKEN, "action": "approve"}).status_code == 403


def test_the_guard_checks_host_and_origin_and_sets_headers(client: TestClient) -> None:
    ok = client.get("/", params={"token": TOKEN})
    assert ok.status_code == 200
    assert "default-src 'none'" in ok.headers["content-security-policy"]
    assert ok.headers["referrer-policy"] == "same-origin"
    assert ok.headers["x-frame-options"] == "DENY"
    other_host = client.get("/", params={"token": TOKEN}, headers={"host": "evil.example"})
    assert other_host.status_code == 403
    cross_site = client.post(
        "/decide",
        params={"token": TOKEN},
        data={"token": TOKEN, "action": "approve", "level": "instance", "file_id": "1"},
        headers={"origin": "http://evil.example"},
    )
    assert cross_site.status_code == 403


def test_a_form_without_the_token_changes_nothing(client: TestClient, session: Session) -> None:
    fid = _ids(session, "CT")[0]
    r = client.post(
        "/decide",
        params={"token": TOKEN},
        data={"action": "exclude", "level": "instance", "file_id": str(fid),
              "reason": "face", "confirmed": "yes"},
    )  # fmt: skip
    assert r.status_code == 400 and "token" in r.text
    assert decisions(session).height == 0
    assert not session.instances(f"file_id = {fid}")[0].excluded


def test_the_extra_is_named_when_starlette_is_missing(
    session: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "starlette", None)
    with pytest.raises(MissingDependencyError, match=r"gantry\[review\]"):
        create_app(session, token=TOKEN)


# -- pages -----------------------------------------------------------------------------------


def test_browse_patients_studies_series_instances(client: TestClient, session: Session) -> None:
    home = _get(client, "/")
    assert "<h1>Review before release</h1>" in home and ">4</td>" in home
    patients = _get(client, "/patients")
    pid = session.sql("SELECT DISTINCT PatientID FROM instances").item()
    assert pid in patients
    assert "Study 1" in _get(client, "/patients/0")
    study = _get(client, "/patients/0/studies/0")
    assert "Series 1" in study and "Series 2" in study
    series = _get(client, _series_of(session, "US"))
    us = _ids(session, "US")
    for fid in us:
        assert f"/instances/{fid}?token=" in series
        assert f"/instances/{fid}/thumb.png?token=" in series
    assert "Decide for the whole series" in series
    assert client.get("/patients/9", params={"token": TOKEN}).status_code == 404
    assert client.get("/instances/12", params={"token": TOKEN}).status_code == 404


def test_instance_page_shows_findings_and_planned_changes_old_to_new(
    client: TestClient, session: Session
) -> None:
    fid = _ids(session, "US")[0]
    page = _get(client, f"/instances/{fid}")
    old_name = session.sql(
        "SELECT value FROM elements WHERE file_id = ? AND keyword = 'PatientName'", [fid]
    ).item()
    new_name = session.sql(
        "SELECT new_value FROM plan WHERE file_id = ? AND keyword = 'PatientName'", [fid]
    ).item()
    row = re.search(r"<tr><td>PatientName</td>.*?</tr>", page)
    assert row is not None
    assert old_name.replace("^", "^") in row.group(0) and new_name in row.group(0)
    assert "burned-in" in page  # the unresolved finding of a US image
    assert "no entry in the config yet" in page
    assert '<label for="new_r1">First row</label>' in page


def test_findings_and_plan_pages(client: TestClient) -> None:
    findings = _get(client, "/findings")
    assert "burned-in" in findings and "unresolved first" in findings
    plan = _get(client, "/plan")
    assert "<td>P</td>" in plan or "<td>X</td>" in plan


def test_thumbnail_is_a_windowed_png(client: TestClient, session: Session) -> None:
    for modality in ("CT", "US"):
        fid = _ids(session, modality)[0]
        r = client.get(f"/instances/{fid}/thumb.png", params={"token": TOKEN})
        assert r.status_code == 200 and r.headers["content-type"] == "image/png"
        image = imagecodecs.png_decode(r.content)
        assert image.shape[:2] == (64, 64) and image.dtype == np.uint8
        assert image.max() > image.min()  # windowed, not a flat frame


# -- decisions -------------------------------------------------------------------------------


def test_exclude_asks_for_confirmation_then_is_recorded_and_exported_without(
    client: TestClient, session: Session, tmp_path: Path
) -> None:
    fid = _ids(session, "CT")[0]
    form = {"token": TOKEN, "action": "exclude", "level": "instance", "file_id": str(fid),
            "reason": "face"}  # fmt: skip
    ask = client.post("/decide", params={"token": TOKEN}, data=form)
    assert ask.status_code == 200 and "Exclude 1 instance(s)?" in ask.text
    assert not session.instances(f"file_id = {fid}")[0].excluded  # nothing yet
    done = client.post(
        "/decide", params={"token": TOKEN}, data={**form, "confirmed": "yes"},
        follow_redirects=False,
    )  # fmt: skip
    assert done.status_code == 303
    assert done.headers["location"] == f"/instances/{fid}?token={TOKEN}&done=exclude%3A1"
    assert "Excluded 1 instance(s)" in client.get(done.headers["location"]).text
    assert session.instances(f"file_id = {fid}")[0].excluded
    runs = session.sql("SELECT details FROM runs WHERE kind = 'review'")
    details = json.loads(runs.item())
    assert details == {"decision": "exclude", "level": "instance", "reason": "face",
                       "reviewer": "ana", "file_ids": [fid]}  # fmt: skip
    result = session.export(tmp_path / "out", workers=1, progress=False)
    assert fid in result.excluded["file_id"].to_list()
    assert result.exported == 1  # the other CT; the US images wait for a zone
    assert "runs" in session.tables()


def test_approve_undoes_an_exclusion(client: TestClient, session: Session) -> None:
    fid = _ids(session, "CT")[0]
    exclude(session, [fid], reason="unusable", reviewer="ana")
    r = client.post(
        "/decide", params={"token": TOKEN},
        data={"token": TOKEN, "action": "approve", "level": "instance", "file_id": str(fid)},
    )  # fmt: skip
    assert r.status_code == 200 and "Approved 1 instance(s)" in r.text
    assert not session.instances(f"file_id = {fid}")[0].excluded
    assert decisions(session)["decision"].to_list() == ["exclude", "approve"]


def test_series_exclusion_covers_every_instance(client: TestClient, session: Session) -> None:
    series = _series_of(session, "CT")
    _, _, p, _, s_, _, r_ = series.split("/")
    form = {"token": TOKEN, "action": "exclude", "level": "series", "p": p, "s": s_, "r": r_,
            "reason": "not-for-release", "confirmed": "yes"}  # fmt: skip
    r = client.post("/decide", params={"token": TOKEN}, data=form)
    assert r.status_code == 200 and "Excluded 2 instance(s)" in r.text
    assert all(i.excluded for i in session.instances("Modality = 'CT'"))
    assert decisions(session)["level"].to_list() == ["series"]


def test_a_device_zone_reaches_the_plan_and_the_exported_pixels(
    client: TestClient, session: Session, tmp_path: Path
) -> None:
    us = _ids(session, "US")
    form = {"token": TOKEN, "file_id": str(us[0]), "r1": "0", "r2": "10", "c1": "0", "c2": "40"}
    r = client.post("/zones", params={"token": TOKEN}, data=form)
    assert r.status_code == 200 and "Saved 1 zone(s)" in r.text
    assert 'class="zone-plan"' in r.text and 'class="zone-machine"' in r.text
    for fid in us:  # the whole device, not only the instance shown
        assert device_zones(session, fid) == ("review-1", [[0, 10, 0, 40]])
        plan = session.sql(
            "SELECT new_value FROM plan WHERE file_id = ? AND action = 'REDACT'", [fid]
        ).item()
        assert json.loads(plan)["zones"] == [[0, 10, 0, 40]]
    assert decisions(session).row(0, named=True)["zones"] == "[[0, 10, 0, 40]]"
    source = pydicom.dcmread(
        session.sql("SELECT file_path FROM instances WHERE file_id = ?", [us[0]]).item()
    ).pixel_array
    assert source[:10, :40].any()
    result = session.export(tmp_path / "out", workers=1, progress=False)
    assert result.exported == 4 and result.excluded.height == 0
    sop = session.sql(
        "SELECT new_value FROM plan WHERE file_id = ? AND keyword = 'SOPInstanceUID'", [us[0]]
    ).item()
    (written,) = (tmp_path / "out").rglob(f"{sop}.dcm")
    pixels = pydicom.dcmread(written).pixel_array
    assert not pixels[:10, :40].any()  # the zone is filled
    assert np.array_equal(pixels[10:, :], source[10:, :])  # and nothing else changed


def test_zones_are_adjusted_and_removed(client: TestClient, session: Session) -> None:
    fid = _ids(session, "US")[0]
    set_device_zones(session, fid, [[0, 10, 0, 40], [50, 60, 0, 64]], reviewer="ana")
    page = _get(client, f"/instances/{fid}")
    assert 'value="50"' in page and "config entry <code>review-1</code>" in page
    form = {"token": TOKEN, "file_id": str(fid),
            "r1_0": "0", "r2_0": "12", "c1_0": "0", "c2_0": "40",
            "r1_1": "50", "r2_1": "60", "c1_1": "0", "c2_1": "64", "remove_1": "yes"}  # fmt: skip
    assert client.post("/zones", params={"token": TOKEN}, data=form).status_code == 200
    assert device_zones(session, fid) == ("review-1", [[0, 12, 0, 40]])
    assert [z.label for z in instance_zones(session, fid)] == [
        "machine: rows 0-12, cols 0-40",
        "plan: rows 0-12, cols 0-40",
    ]
    form = {"token": TOKEN, "file_id": str(fid), "r1_0": "0", "r2_0": "12", "c1_0": "0",
            "c2_0": "40", "remove_0": "yes"}  # fmt: skip
    assert client.post("/zones", params={"token": TOKEN}, data=form).status_code == 200
    assert device_zones(session, fid) == (None, [])


@pytest.mark.parametrize(
    "zone,message",
    [(["5", "2", "0", "10"], "r1 < r2"), (["70", "80", "0", "10"], "inside the 64x64"),
     (["a", "2", "0", "10"], "whole number")],
)  # fmt: skip
def test_a_bad_zone_is_a_clear_error_and_changes_nothing(
    client: TestClient, session: Session, zone: list[str], message: str
) -> None:
    fid = _ids(session, "US")[0]
    form = {
        "token": TOKEN,
        "file_id": str(fid),
        **dict(zip(["r1", "r2", "c1", "c2"], zone, strict=True)),
    }
    r = client.post("/zones", params={"token": TOKEN}, data=form)
    assert r.status_code == 400 and message in html.unescape(r.text)
    assert device_zones(session, fid) == (None, []) and decisions(session).height == 0


def test_exclude_refuses_free_text_reasons(session: Session) -> None:
    with pytest.raises(ConfigError, match="reason"):
        exclude(session, _ids(session, "CT"), reason="Smith's scan", reviewer="ana")


def test_cli_review_on_a_missing_session_is_a_clear_error(tmp_path: Path) -> None:
    r = CliRunner().invoke(cli, ["review", "--db", str(tmp_path / "none.db"), "--no-browser"])
    assert r.exit_code == 2 and "error:" in r.output


def test_nothing_a_file_holds_reaches_the_logs(
    client: TestClient, session: Session, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    us, ct = _ids(session, "US"), _ids(session, "CT")
    for path in ["/", "/patients", "/patients/0", "/patients/0/studies/0", "/findings",
                 "/plan", "/decisions", _series_of(session, "US"),
                 *(f"/instances/{f}" for f in us + ct)]:  # fmt: skip
        _get(client, path)
    client.post("/zones", params={"token": TOKEN},
                data={"token": TOKEN, "file_id": str(us[0]), "r1": "0", "r2": "4", "c1": "0",
                      "c2": "4"})  # fmt: skip
    client.post("/decide", params={"token": TOKEN},
                data={"token": TOKEN, "action": "exclude", "level": "instance",
                      "file_id": str(ct[0]), "reason": "face", "confirmed": "yes"})  # fmt: skip
    assert decisions(session).height == 2
    assert caplog.records  # the stages did log
    assert not CANARY_RE.search(caplog.text)
    runs = session.sql("SELECT details::VARCHAR AS d FROM runs WHERE kind = 'review'")
    assert not CANARY_RE.search(" ".join(runs["d"].to_list()))


def test_an_unexpected_error_is_logged_by_its_type_only(
    client: TestClient, session: Session, caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    pid = session.sql("SELECT DISTINCT PatientID FROM instances").item()

    def boom(*_: object) -> None:
        raise RuntimeError(f"value {pid} in a message")

    monkeypatch.setattr("gantry.review._app.decisions", boom)
    client = TestClient(client.app, base_url=BASE, raise_server_exceptions=False)
    r = client.get("/", params={"token": TOKEN})
    assert r.status_code == 500 and pid not in r.text
    assert "RuntimeError" in caplog.text and pid not in caplog.text


def test_an_instance_without_pixels_has_no_image(tmp_path: Path) -> None:
    ds = make_instance(modality="CT")
    del ds.PixelData
    for kw in ("Rows", "Columns", "BitsAllocated", "BitsStored", "HighBit",
               "PixelRepresentation", "SamplesPerPixel", "PhotometricInterpretation"):  # fmt: skip
        if kw in ds:
            delattr(ds, kw)
    (tmp_path / "d").mkdir()
    ds.save_as(tmp_path / "d" / "nopix.dcm", enforce_file_format=True)
    with Session(tmp_path / "s.db") as s:
        s.ingest(tmp_path / "d", workers=1, progress=False)
        fid = int(s.instances()[0].file_id)
        c = TestClient(create_app(s, token=TOKEN), base_url=BASE)
        page = _get(c, f"/instances/{fid}")
        assert "no pixel data" in page and "<svg" not in page
        assert c.get(f"/instances/{fid}/thumb.png", params={"token": TOKEN}).status_code == 404


def test_cli_review_on_a_busy_port_is_a_clear_error(review_db: Path) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        r = CliRunner().invoke(
            cli, ["review", "--db", str(review_db), "--port", str(port), "--no-browser"]
        )
    assert r.exit_code == 2 and f"a free port on 127.0.0.1, got {port}" in r.output


def test_ocr_boxes_are_drawn_with_their_own_label(client: TestClient, session: Session) -> None:
    import polars as pl

    from gantry.ocr._scan import REGIONS_SCHEMA, REGIONS_TABLE

    fid = _ids(session, "US")[0]
    row = {"file_id": fid, "frame": 0, "r1": 2, "r2": 9, "c1": 3, "c2": 30, "confidence": 0.9,
           "text": "x", "identity": False, "phi": False, "match": None, "engine": "test",
           "scan_id": "s1"}  # fmt: skip
    second_frame = {**row, "frame": 1, "r1": 40, "r2": 50}
    session.store.write_table(
        REGIONS_TABLE, pl.DataFrame([row, second_frame], schema=REGIONS_SCHEMA)
    )
    assert [z.label for z in instance_zones(session, fid)] == ["ocr: rows 2-9, cols 3-30"]
    page = _get(client, f"/instances/{fid}")
    rect = re.search(r'<rect class="zone-ocr"[^>]*>', page)
    assert rect is not None
    assert 'x="3" y="2" width="27" height="7"' in rect.group(0)
    assert "<td>text found by OCR</td><td>2–9</td><td>3–30</td>" in page
