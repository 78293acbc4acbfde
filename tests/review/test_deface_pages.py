"""Defacing in the review app: a series' row and its before/after views, and the list.

The ``deface_db`` session (conftest): a CT the cut defaces, an empty volume
refused because no head is found in it (its "before" view still shows), and
one refused for lacking geometry (no view at all).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import imagecodecs
import numpy as np
import pytest
from starlette.testclient import TestClient

from gantry import Session
from gantry.review import create_app

TOKEN = "d3f4c3-" + "x" * 25
BASE = "http://127.0.0.1"


@pytest.fixture
def session(deface_db: Path, head_series: dict[str, str]) -> Iterator[Session]:
    with Session(deface_db) as s:
        yield s


@pytest.fixture
def client(session: Session) -> TestClient:
    return TestClient(create_app(session, token=TOKEN), base_url=BASE)


def _page(s: Session, uid: str) -> str:
    for p, patient in enumerate(s.patients):
        for si, study in enumerate(patient.studies):
            for r, key in enumerate(study.series.keys()):
                if key == uid:
                    return f"/patients/{p}/studies/{si}/series/{r}"
    raise AssertionError(uid)


def _get(client: TestClient, path: str) -> str:
    r = client.get(path, params={"token": TOKEN})
    assert r.status_code == 200, (path, r.status_code, r.text[:300])
    return r.text


def test_a_defaced_series_shows_its_row_and_both_views(
    client: TestClient, session: Session, head_series: dict[str, str], head_size: int
) -> None:
    path = _page(session, head_series["ct"])
    page = _get(client, path)
    row = session.sql(
        "SELECT removed_fraction, head_removed_fraction FROM deface WHERE SeriesInstanceUID = ?",
        [head_series["ct"]],
    ).row(0)
    assert '<h2 id="deface-h">Defacing</h2>' in page
    assert '<td id="deface-status"><span class="approved">defaced</span></td>' in page
    assert "quickshear, margin 4.0 mm" in page
    assert f"{100 * row[0]:.1f} % of the volume ({100 * row[1]:.1f} % of the head)" in page
    assert f"{head_size} of {head_size} instance(s) defaced on export" in page
    for which in ("before", "after"):
        assert f'src="{path}/deface/{which}.png?token={TOKEN}"' in page
    addresses = " ".join(re.findall(r'(?:src|href)="([^"]*)"', page))
    assert head_series["ct"] not in addresses  # ordinals only
    views = {}
    for which in ("before", "after"):
        r = client.get(f"{path}/deface/{which}.png", params={"token": TOKEN})
        assert r.status_code == 200 and r.headers["content-type"] == "image/png"
        assert r.headers["x-content-type-options"] == "nosniff"
        assert r.headers["cache-control"] == "no-store"
        views[which] = imagecodecs.png_decode(r.content)
    before, after = views["before"], views["after"]
    assert before.shape == after.shape == (head_size, head_size) and before.dtype == np.uint8
    changed = before != after
    assert changed.any() and after[changed].mean() < before[changed].mean()  # the face is dark
    assert changed[:, : head_size // 2].sum() > 0.9 * changed.sum()  # on the face side (left)


def test_a_refused_series_shows_its_reason_and_no_after_view(
    client: TestClient, session: Session, head_series: dict[str, str], head_size: int
) -> None:
    path = _page(session, head_series["blank"])
    page = _get(client, path)
    assert '<span class="excluded">refused</span>:' in page and "no head was found" in page
    assert "export leaves its instances out" in page
    assert f"{path}/deface/before.png" in page and "/deface/after.png" not in page
    assert 'No "after" view' in page
    before = client.get(f"{path}/deface/before.png", params={"token": TOKEN})
    assert before.status_code == 200
    assert imagecodecs.png_decode(before.content).shape == (head_size, head_size)  # the side view
    after = client.get(f"{path}/deface/after.png", params={"token": TOKEN})
    assert after.status_code == 404

    nogeo = _page(session, head_series["nogeo"])
    page = _get(client, nogeo)
    assert "no usable geometry" in page and "/deface/" not in page
    assert "cannot be read as one volume" in page
    assert client.get(f"{nogeo}/deface/before.png", params={"token": TOKEN}).status_code == 404


def test_the_views_need_the_token(
    client: TestClient, session: Session, head_series: dict[str, str]
) -> None:
    path = _page(session, head_series["ct"])
    for which in ("before", "after"):
        for params in ({}, {"token": "wrong"}, {"token": TOKEN[:-1]}):
            r = client.get(f"{path}/deface/{which}.png", params=params)
            assert r.status_code == 403 and not r.content.startswith(b"\x89PNG")
    assert client.get(f"{path}/deface/side.png", params={"token": TOKEN}).status_code == 404


def test_the_defacing_list_shows_every_series_with_its_status(
    client: TestClient, session: Session, head_series: dict[str, str], head_size: int
) -> None:
    home = _get(client, "/")
    assert "Series defaced or refused" in home and f'href="/deface?token={TOKEN}">3</a>' in home
    page = _get(client, "/deface")
    assert "<h1>Defacing</h1>" in page and "3 series" in page
    assert page.count('<span class="excluded">refused</span>') == 2
    assert page.count('<span class="approved">defaced</span>') == 1
    assert page.index('"excluded">refused') < page.index('"approved">defaced')  # refused first
    assert "no head was found" in page and "no usable geometry" in page
    assert f"{head_size} of {head_size}" in page
    for name in ("ct", "blank", "nogeo"):
        assert f'href="{_page(session, head_series[name])}?token={TOKEN}"' in page
    for uid in head_series.values():  # addresses hold ordinals only
        assert uid not in page


def test_without_defacing_the_pages_say_so(tmp_path: Path) -> None:
    from gantry.testing import make_instance

    make_instance(tmp_path / "d" / "a.dcm")
    with Session(tmp_path / "s.db") as s:
        s.ingest(tmp_path / "d", workers=1, progress=False)
        client = TestClient(create_app(s, token=TOKEN), base_url=BASE)
        assert "No series defaced yet" in _get(client, "/deface")
        series = _get(client, "/patients/0/studies/0/series/0")
        assert "Defacing</h2>" not in series
        r = client.get("/patients/0/studies/0/series/0/deface/before.png", params={"token": TOKEN})
        assert r.status_code == 404
