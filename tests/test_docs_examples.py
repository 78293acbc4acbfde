"""Every ``python`` code block of ``docs/*.md`` runs.

The blocks of one page run in order, in one namespace, in a fresh working folder
that holds what the pages take for granted: synthetic DICOM files in ``dicom/``
and ``incoming/``, a session ``project.db`` with those files ingested, and the
default config written as ``gantry.yaml`` and ``config.yaml``. Names a page uses
without defining (a pydicom ``ds``, a CTP script's ``text``) come from
:data:`PRELUDES`; absolute example paths (``/secure/``) are made relative.

Some pages talk to a server the test can start itself: ``docs/cluster.md`` gets a
Dask ``LocalCluster`` whose address replaces ``tcp://scheduler:8786`` (see
:func:`_servers`). A block that needs something a test machine lacks is marked in the page by an
HTML comment on the line before it, ``<!-- docs-test: compile-only REASON -->``:
it is compiled (syntax and names checked by Python's compiler) but not run; the
REASON says which test runs the same calls against a real server. ``>>>``
blocks run as doctests. ``docs/queries.md`` has its own test
(``tests/report/test_report_queries.py``) that also compares its SQL and Polars.
"""

from __future__ import annotations

import contextlib
import doctest
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pydicom
import pytest

from gantry import Session

DOCS = Path(__file__).resolve().parents[1] / "docs"
BLOCK = re.compile(r"(?:<!-- docs-test: (?P<mark>[^>]*?) -->\n)?```python\n(?P<code>.*?)```", re.S)
OWN_TEST = {"queries.md"}

# Paths in the examples that point outside a working folder, made relative to it.
PATHS = {'"/secure/': '"secure/', '"/shared/': '"shared/'}

PRELUDES = {
    "pixels.md": (
        "import pydicom\n"
        "from pydicom.data import get_testdata_file\n"
        "ds = pydicom.dcmread(get_testdata_file('CT_small.dcm'))\n"
    ),
    "ctp.md": (
        "from pathlib import Path\n"
        "text = 'Acme US\\n  { Manufacturer.containsIgnoreCase(\"ACME\") }\\n  (0,0,640,40)\\n'\n"
        'xml = \'<script><e en="T" t="00080080" n="InstitutionName">@remove()</e></script>\'\n'
        "Path('in.script').write_text(text, encoding='utf-8')\n"
    ),
    "model.md": "import polars as pl\n",
    "vault.md": "from pathlib import Path\nPath('secure').mkdir()\n",
}


def _blocks(page: Path) -> list[tuple[int, str, str | None]]:
    text = page.read_text(encoding="utf-8")
    return [
        (text.count("\n", 0, m.start("code")) + 1, m.group("code"), m.group("mark"))
        for m in BLOCK.finditer(text)
    ]


PAGES = sorted(p.name for p in DOCS.glob("*.md") if p.name not in OWN_TEST and _blocks(p))


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from gantry.testing import make_corpus

    root = tmp_path_factory.mktemp("docs")
    make_corpus(root / "dicom", patients=2, studies_per_patient=1, series_per_study=2)
    with Session(root / "project.db") as s:
        s.ingest(root / "dicom", workers=1, progress=False)
    return root


def _copy(workdir: Path, dest: Path, page: str) -> None:
    from gantry.config import write_default_config

    shutil.copytree(workdir, dest, dirs_exist_ok=True)
    shutil.copytree(workdir / "dicom", dest / "incoming")
    if page != "config.md":  # that page writes its own
        write_default_config(dest / "gantry.yaml")
        write_default_config(dest / "config.yaml")


@contextlib.contextmanager
def _servers(page: str, root: Path) -> Iterator[dict[str, str]]:
    """What a page's examples talk to, started for them: ``{text in the page: its stand-in}``."""
    if page == "storage.md":
        with _s3_buckets(root):
            yield {}
        return
    if page == "network.md":
        with _dicom_peer(root) as stand_ins:
            yield stand_ins
        return
    if page != "cluster.md":
        yield {}
        return
    distributed = pytest.importorskip("distributed", reason="pip install 'gantry[cluster]'")
    shutil.copytree(root / "dicom", root / "shared" / "dicom")
    with distributed.LocalCluster(
        n_workers=1,
        processes=True,
        threads_per_worker=1,
        dashboard_address=None,
        worker_dashboard_address=None,
    ) as cluster:
        yield {'"tcp://scheduler:8786"': repr(cluster.scheduler_address)}


@contextlib.contextmanager
def _s3_buckets(root: Path) -> Iterator[None]:
    """A moto S3 server with the page's buckets (its scans uploaded) and the SDK environment
    pointing at it, plus the local export its compliance example reads."""
    from gantry.testing._s3 import S3Bucket, moto_missing, moto_server, s3_env

    reason = moto_missing()
    if reason:
        pytest.skip(reason)
    with Session(root / "project.db") as s:
        s.anonymize(None)
        s.export(root / "export", safe=False, workers=1, progress=False)
    with moto_server() as server, pytest.MonkeyPatch.context() as mp:
        env = s3_env(server.url)
        for key, value in env.items():
            mp.setenv(key, value)
        for name in ("archive", "research", "lake", "private", "qa-reports"):
            bucket = S3Bucket(server, name, env)
            bucket.client().create_bucket(Bucket=name)
            if name == "archive":
                bucket.upload(root / "dicom", "scans")
        yield


@contextlib.contextmanager
def _dicom_peer(root: Path) -> Iterator[dict[str, str]]:
    """A real Orthanc (DICOM and DICOMweb) holding the page's study, standing in for its
    PACS and archive; it may C-MOVE to our AE title on a free port."""
    from gantry.testing._servers import free_port, missing, orthanc

    reason = missing("Orthanc")
    if reason:
        pytest.skip(reason)
    port = free_port()
    with orthanc(root / "orthanc", modalities={"GANTRY": ("127.0.0.1", port)}) as peer:
        for path in sorted((root / "dicom").rglob("*.dcm"))[:3]:
            peer.rest("/instances", path.read_bytes())
        yield {
            '"dicom://PACS@10.0.0.5:104"': repr(peer.url),
            '"dicom://ARCHIVE@10.0.0.9:104"': repr(peer.url),
            '"http://10.0.0.9:8042/dicom-web"': repr(peer.dicomweb),
            '"123"': repr(str(pydicom.dcmread(next((root / "dicom").rglob("*.dcm"))).PatientID)),
            "port=11112": f"port={port}",
        }


@pytest.mark.slow
@pytest.mark.parametrize("page", PAGES)
def test_page_runs(
    page: str, workdir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _copy(workdir, tmp_path, page)
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("GANTRY_EXECUTOR", raising=False)
    with _servers(page, tmp_path) as stand_ins:
        _run_page(page, {**PATHS, **stand_ins})


def _run_page(page: str, substitutions: dict[str, str]) -> None:
    scope: dict[str, object] = {"__name__": "__docs__"}
    exec(compile(PRELUDES.get(page, ""), f"prelude of {page}", "exec"), scope)  # noqa: S102
    for line, code, mark in _blocks(DOCS / page):
        where = f"docs/{page}, line {line}"
        for old, new in substitutions.items():
            code = code.replace(old, new)
        if code.lstrip().startswith(">>>"):
            test = doctest.DocTestParser().get_doctest(code, scope, where, where, line)
            runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
            runner.run(test)
            assert runner.failures == 0, f"{where}: doctest failed"
            continue
        compiled = compile(code, where, "exec")
        if mark is not None:
            assert mark.startswith("compile-only "), f"{where}: unknown mark {mark!r}"
            continue
        exec(compiled, scope)  # noqa: S102 - our own documentation
    for value in scope.values():  # a page may leave a session or client open, as a notebook would
        if isinstance(value, Session) or type(value).__name__ == "Client":
            value.close()  # type: ignore[attr-defined]


def test_marks_say_why() -> None:
    for page in PAGES:
        for line, _, mark in _blocks(DOCS / page):
            if mark is not None:
                reason = mark.removeprefix("compile-only ").strip()
                assert mark.startswith("compile-only ") and len(reason) > 10, (page, line)
