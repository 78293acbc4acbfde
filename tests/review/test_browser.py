"""The review app end to end in a real headless browser (Debian chromium, driven by Playwright).

The fixture starts the real ``gantry review`` command on 127.0.0.1 (a free port, the
token read from what it prints), and stops it with Ctrl-C (SIGINT). The user reaches
every page and decision with the keyboard only: Tab to move, Enter or Space to act.
Screenshots go to ``$GANTRY_ARTIFACTS/review`` (default: ``artifacts/review`` under
pytest's temporary folder); the path is printed.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
import pytest

from gantry import Session
from gantry.testing._canaries import CANARY_RE

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
try:
    from playwright.sync_api import Page, sync_playwright
except ImportError:  # pragma: no cover - the test extra installs it
    sync_playwright = None  # type: ignore[assignment]

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        CHROMIUM is None,
        reason="needs a headless browser: apt-get install -y chromium (.ci/run installs it)",
    ),
    pytest.mark.skipif(
        sync_playwright is None,
        reason="needs Playwright for Python: pip install -e '.[test]' (no browser download: "
        "it drives the system chromium)",
    ),
]


@dataclass
class Server:
    url: str
    base: str
    proc: subprocess.Popen[bytes]
    out: Path
    err: Path

    def stop(self) -> str:
        """Ctrl-C, wait, and return everything the server printed."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            self.proc.wait(timeout=60)
        return self.out.read_text() + self.err.read_text()


@contextmanager
def _serve(db: Path, tmp_path: Path) -> Iterator[Server]:
    """``gantry review`` on ``db`` until the block ends (Ctrl-C)."""
    out, err = tmp_path / "server.out", tmp_path / "server.err"
    cmd = [sys.executable, "-c", "from gantry.cli import main; main()", "review",
           "--db", str(db), "--no-browser", "--reviewer", "tester"]  # fmt: skip
    with out.open("wb") as o, err.open("wb") as e:
        proc = subprocess.Popen(cmd, stdout=o, stderr=e)
    srv = None
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and proc.poll() is None:
            line = next((x for x in out.read_text().splitlines() if x.startswith("review at ")), "")
            if line:
                url = line.removeprefix("review at ").strip()
                srv = Server(url, url.split("/?")[0], proc, out, err)
                break
            time.sleep(0.1)
        assert srv is not None, f"the server did not start: {err.read_text()[-2000:]}"
        yield srv
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@pytest.fixture
def server(review_db: Path, tmp_path: Path) -> Iterator[Server]:
    with _serve(review_db, tmp_path) as srv:
        yield srv


@pytest.fixture
def page() -> Iterator[Page]:
    assert sync_playwright is not None and CHROMIUM is not None
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            yield browser.new_page(viewport={"width": 1280, "height": 900})
        finally:
            browser.close()


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = os.environ.get("GANTRY_ARTIFACTS")
    folder = (Path(root) if root else tmp_path_factory.getbasetemp() / "artifacts") / "review"
    folder.mkdir(parents=True, exist_ok=True)
    print(f"review screenshots: {folder}")
    return folder


_FOCUSED = """() => { const e = document.activeElement;
  return {tag: e.tagName, id: e.id, text: (e.innerText || e.value || '').trim(),
          outline: getComputedStyle(e).outlineStyle + ' ' + getComputedStyle(e).outlineWidth}; }"""


def _focused(page: Page) -> dict[str, Any]:
    result: dict[str, Any] = page.evaluate(_FOCUSED)
    return result


def tab_to(page: Page, *, text: str | None = None, id: str | None = None, limit: int = 80) -> None:
    """Press Tab until the focused element has ``text`` (a substring) or ``id``."""

    def hit(f: dict[str, Any]) -> bool:
        if f["tag"] not in ("A", "BUTTON", "INPUT", "SELECT"):
            return False
        return (id is not None and f["id"] == id) or (text is not None and text in f["text"])

    for _ in range(limit):
        if hit(_focused(page)):
            return
        page.keyboard.press("Tab")
    raise AssertionError(f"Tab never reached {text or id!r}")


def press(page: Page, key: str) -> None:
    """Press ``key`` on the focused element and wait for the page it loads."""
    with page.expect_navigation():
        page.keyboard.press(key)


def _ids(db: Path, modality: str) -> list[int]:
    with Session(db, read_only=True) as s:
        return s.sql(
            "SELECT file_id FROM instances WHERE Modality = ? ORDER BY InstanceNumber", [modality]
        )["file_id"].to_list()


def test_pages_without_the_token_are_forbidden(server: Server, page: Page) -> None:
    for url in (server.base + "/", server.base + "/patients?token=wrong"):
        response = page.goto(url)
        assert response is not None and response.status == 403
        assert "forbidden" in page.content()
    response = page.goto(server.url)
    assert response is not None and response.status == 200


def test_keyboard_only_browse_exclude_confirm_and_zone_reach_the_export(
    server: Server, page: Page, shots: Path, review_db: Path, tmp_path: Path
) -> None:
    ct, us = _ids(review_db, "CT"), _ids(review_db, "US")
    page.goto(server.url)
    page.screenshot(path=shots / "01-overview.png", full_page=True)

    # browse: overview ▸ patients ▸ patient ▸ study ▸ CT series ▸ first instance
    tab_to(page, text="Browse patients")
    assert _focused(page)["outline"].startswith("solid 3px")  # focus is visible
    press(page, "Enter")
    assert page.locator("h1").inner_text() == "Patients"
    tab_to(page, text="CNRY")  # the patient's ID is its link
    press(page, "Enter")
    tab_to(page, text="Study 1")
    press(page, "Enter")
    row = page.locator("tbody tr", has_text="CT")
    series_link = row.locator("a").inner_text()
    tab_to(page, text=series_link)
    press(page, "Enter")
    page.screenshot(path=shots / "02-series.png", full_page=True)
    tab_to(page, text="Instance")
    press(page, "Enter")
    assert page.url.split("?")[0].endswith(f"/instances/{ct[0]}")
    page.screenshot(path=shots / "03-instance.png", full_page=True)

    # exclude with a reason picked by the arrow keys, then confirm
    tab_to(page, id="reason-instance")
    page.keyboard.press("ArrowDown")
    assert page.locator("#reason-instance").input_value() == "face"
    tab_to(page, text="Exclude this instance")
    press(page, " ")
    assert "Exclude 1 instance(s)?" in page.locator("h1").inner_text()
    page.screenshot(path=shots / "04-confirm.png", full_page=True)
    tab_to(page, text="Confirm: exclude")
    press(page, "Enter")
    assert "Excluded 1 instance(s)" in page.locator("[role=status]").inner_text()
    assert page.locator(".excluded").inner_text() == "excluded"
    page.screenshot(path=shots / "05-excluded.png", full_page=True)

    # a redaction zone for the US device, typed into the form
    page.goto(f"{server.base}/instances/{us[0]}?{server.url.split('?')[1]}")
    tab_to(page, id="new_r1")
    for value in ("0", "10", "0", "40"):
        page.keyboard.type(value)
        page.keyboard.press("Tab")
    tab_to(page, text="Save the device's zones")
    press(page, "Enter")
    assert "Saved 1 zone(s)" in page.locator("[role=status]").inner_text()
    assert page.locator("svg rect.zone-plan").count() == 1
    assert page.locator("svg rect.zone-machine").count() == 1
    assert page.locator("svg image").evaluate("e => e.getBBox().width") == 64
    page.screenshot(path=shots / "06-zone.png", full_page=True)

    page.goto(f"{server.base}/decisions?{server.url.split('?')[1]}")
    assert page.locator("tbody tr").count() == 2
    page.screenshot(path=shots / "07-decisions.png", full_page=True)

    logs = server.stop()
    assert server.proc.returncode == 0, logs
    assert not CANARY_RE.search(logs), "a patient's value reached the server's output"

    with Session(review_db) as s:  # the decisions are in the store; export honours them
        result = s.export(tmp_path / "out", workers=1, progress=False)
        assert result.excluded["file_id"].to_list() == [ct[0]]
        assert result.exported == 3
        sop = s.sql(
            "SELECT new_value FROM plan WHERE file_id = ? AND keyword = 'SOPInstanceUID'", [us[0]]
        ).item()
        source = s.sql("SELECT file_path FROM instances WHERE file_id = ?", [us[0]]).item()
    (written,) = (tmp_path / "out").rglob(f"{sop}.dcm")
    before, after = pydicom.dcmread(source).pixel_array, pydicom.dcmread(written).pixel_array
    assert before[:10, :40].any() and not after[:10, :40].any()
    assert np.array_equal(after[10:], before[10:])
    assert len(list(shots.glob("0[1-7]-*.png"))) == 7


def test_a_zone_drawn_with_the_mouse_fills_the_form(
    server: Server, page: Page, shots: Path, review_db: Path
) -> None:
    us = _ids(review_db, "US")
    page.goto(f"{server.base}/instances/{us[0]}?{server.url.split('?')[1]}")
    box = page.locator("svg image").bounding_box()
    assert box is not None
    scale = box["width"] / 64

    def at(row: int, col: int) -> tuple[float, float]:  # the centre of an image pixel
        return box["x"] + (col + 0.5) * scale, box["y"] + (row + 0.5) * scale

    page.mouse.move(*at(5, 8))
    page.mouse.down()
    page.mouse.move(*at(12, 20), steps=4)
    page.mouse.move(*at(20, 30), steps=4)
    page.mouse.up()
    values = [page.locator(f"#new_{k}").input_value() for k in ("r1", "r2", "c1", "c2")]
    assert values == ["5", "21", "8", "31"]
    assert _focused(page)["id"] == "zones-save"  # Enter saves
    page.screenshot(path=shots / "08-drawn.png", full_page=True)
    press(page, "Enter")
    assert "Saved 1 zone(s)" in page.locator("[role=status]").inner_text()
    assert page.locator("#r1_0").input_value() == "5"
    assert page.locator("#c2_0").input_value() == "31"


def test_keyboard_reaches_a_series_defacing_views(
    deface_db: Path, head_series: dict[str, str], page: Page, shots: Path, tmp_path: Path
) -> None:
    with _serve(deface_db, tmp_path) as srv:
        page.goto(srv.url)
        tab_to(page, text="Defacing")
        press(page, "Enter")
        assert page.locator("h1").inner_text() == "Defacing"
        tab_to(page, text="CT")  # the defaced CT series' link
        press(page, "Enter")
        section = page.locator("section[aria-labelledby=deface-h]")
        assert section.locator("#deface-status").inner_text() == "defaced"
        images = section.locator("img")
        assert images.count() == 2
        for i in range(2):  # both views loaded (the CSP and the token let them through)
            assert images.nth(i).evaluate("e => e.complete && e.naturalWidth") == 48
        section.screenshot(path=shots / "09-deface.png")
        logs = srv.stop()
    assert srv.proc.returncode == 0, logs
    assert not any(uid in logs for uid in head_series.values())
