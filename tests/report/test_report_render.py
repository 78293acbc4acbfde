"""The HTML reports render in a real browser (headless Debian chromium) at desktop and phone
widths without layout overflow; screenshots are kept as test artifacts.

The page is measured inside an iframe of the exact width (a headless window is never
narrower than 500 px), so media queries and wrapping see a true 390 px viewport.
Screenshots go to ``$GANTRY_ARTIFACTS`` (default: ``report-screens`` under pytest's
temporary folder).
"""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import struct
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner

from gantry.cli import cli

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(
    CHROMIUM is None,
    reason="needs a headless browser: apt-get install -y chromium (.ci/run installs it)",
)
WIDTHS = (1280, 390)
PAGES = ("report/compliance.html", "export/manifest.html")


def _chromium(*args: str, timeout: int = 120) -> str:
    assert CHROMIUM is not None
    proc = subprocess.run(
        [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            "--allow-file-access-from-files",
            "--no-first-run",
            *args,
        ],  # fmt: skip
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout


_MEASURE = """<!DOCTYPE html><html><body style="margin:0">
<iframe id="page" src="{src}" style="width:{width}px;height:{height}px;border:0"></iframe>
<script>
document.getElementById('page').addEventListener('load', () => {{
  const doc = document.getElementById('page').contentDocument;
  const view = doc.documentElement;
  const win = document.getElementById('page').contentWindow;
  const over = [...doc.querySelectorAll('body *')]
    .filter(e => !e.closest('.scroll') && !e.closest('.zoom'))
    .filter(e => e.getBoundingClientRect().right > view.clientWidth + 0.5)
    .slice(0, 8).map(e => e.tagName.toLowerCase() + (e.className ? '.' + e.className : ''));
  const zoom = doc.querySelector('.zoom:target');
  const out = document.createElement('pre');
  out.id = 'gantry-measure';
  out.textContent = JSON.stringify({{
    scrollWidth: view.scrollWidth, clientWidth: view.clientWidth, overflowing: over,
    images: [...doc.images].filter(i => i.complete && i.naturalWidth > 0).length,
    allImages: doc.images.length,
    scrolledBoxes: [...doc.querySelectorAll('.scroll')]
      .filter(e => e.scrollWidth > e.clientWidth + 0.5).length,
    zoom: zoom ? {{display: win.getComputedStyle(zoom).display,
                   width: zoom.querySelector('img').getBoundingClientRect().width}} : null,
  }});
  document.body.appendChild(out);
}});
</script></body></html>"""


def _measure(page: Path, width: int, tmp: Path, fragment: str = "") -> dict[str, object]:
    wrapper = tmp / f"measure-{page.stem}-{width}{fragment.replace('#', '-')}.html"
    wrapper.write_text(_MEASURE.format(src=page.as_uri() + fragment, width=width, height=900))
    dom = _chromium(
        f"--window-size={max(width, 500) + 20},1000",
        "--virtual-time-budget=5000",
        "--dump-dom",
        wrapper.as_uri(),
    )
    found = re.search(r'<pre id="gantry-measure">(.*?)</pre>', dom, flags=re.S)
    assert found, f"the page did not load: {dom[-500:]}"
    return json.loads(html.unescape(found.group(1)))


def _png_size(path: Path) -> tuple[int, int]:
    head = path.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", head[16:24])


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("render") / "demo"
    r = CliRunner().invoke(cli, ["demo", str(root), "--patients", "2", "-q"])
    assert r.exit_code in (0, 1), r.output
    return root


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = Path(
        os.environ.get("GANTRY_ARTIFACTS") or tmp_path_factory.getbasetemp() / "artifacts"
    )
    folder = folder / "report-screens"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture(scope="module")
def leaky(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A compliance report that fails: every finding listed file by file, long paths."""
    from gantry import Session
    from gantry.testing import make_corpus

    root = tmp_path_factory.mktemp("leaky")
    make_corpus(root / "dicom", patients=2, series_per_study=2, instances_per_series=2, seed=5)
    config = {"phi_tags": {"0010,0010": {"action": "keep"}}}
    with Session(root / "p.db") as s:
        s.ingest(root / "dicom", workers=1, progress=False)
        s.anonymize(config)
        bad = s.export(root / "export", config=config, safe=False, verify=False, workers=1,
                       progress=False)  # fmt: skip
        report = s.compliance_report(bad, profile=config, out=root / "report")
    assert not report.compliant and report.leaks.height
    return report.outputs["html"]


@pytest.mark.parametrize("width", WIDTHS)
def test_a_failing_compliance_report_fits(leaky: Path, width: int, tmp_path: Path) -> None:
    m = _measure(leaky, width, tmp_path)
    assert "Each finding, file by file" in leaky.read_text()
    assert m["scrollWidth"] <= m["clientWidth"], f"overflows at {width} px: {m}"
    if width >= 1280:  # long paths wrap: every table fits a desktop without scrolling
        assert m["scrolledBoxes"] == 0, m


def test_demo_writes_both_pages(demo: Path) -> None:
    for page in PAGES:
        assert (demo / page).is_file(), page


@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize("page", PAGES)
def test_page_renders_without_overflow(
    demo: Path, page: str, width: int, tmp_path: Path, artifacts: Path
) -> None:
    path = demo / page
    m = _measure(path, width, tmp_path)
    assert m["clientWidth"] == width
    assert m["scrollWidth"] <= m["clientWidth"], f"{page} overflows at {width} px: {m}"
    assert m["images"] == m["allImages"], f"an image did not load: {m}"
    if width >= 1280:
        assert m["scrolledBoxes"] == 0, f"a table of {page} needs scrolling at {width} px: {m}"
    shot = artifacts / f"{path.stem}-{width}.png"
    wrapper = tmp_path / "shot.html"
    wrapper.write_text(
        f'<html><body style="margin:0"><iframe src="{path.as_uri()}" '
        f'style="width:{width}px;height:1600px;border:0"></iframe></body></html>'
    )
    _chromium(
        f"--window-size={max(width, 500)},1600",
        "--virtual-time-budget=5000",
        f"--screenshot={shot}",
        wrapper.as_uri(),
    )
    assert shot.stat().st_size > 5_000 and _png_size(shot)[0] == max(width, 500)


@pytest.mark.parametrize("width", WIDTHS)
def test_a_thumbnail_opens_full_size(demo: Path, width: int, tmp_path: Path) -> None:
    page = demo / "export" / "manifest.html"
    text = page.read_text()
    assert 'href="#after-1"' in text, "the demo has a redacted image"
    m = _measure(page, width, tmp_path, "#after-1")
    assert m["zoom"] is not None and m["zoom"]["display"] == "flex"  # type: ignore[index]
    # at least twice the 220 px thumbnail, or nearly the whole width of a phone
    assert m["zoom"]["width"] > min(2 * 220, 0.8 * width)  # type: ignore[index]
    assert m["scrollWidth"] <= m["clientWidth"]


def test_chart_labels_are_whole(demo: Path) -> None:
    text = (demo / "report" / "compliance.html").read_text()
    labels = re.findall(r"<text [^>]*>([^<]*)</text>", text)
    assert labels and not any(label.endswith("…") for label in labels)
