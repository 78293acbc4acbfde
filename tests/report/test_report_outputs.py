"""The audit report, manifest.html and the CLI verbs."""

from __future__ import annotations

import base64
import json
import re
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import polars as pl
import pydicom
import pytest
from click.testing import CliRunner

from gantry import Session
from gantry.cli import cli
from gantry.errors import ConfigError, ExportError
from gantry.pixels import decode
from gantry.report import ACTION_NAMES, audit_table, write_manifest_html
from gantry.testing import make_corpus

ZONE = [0, 12, 0, 40]
CONFIG = {
    "machines": [
        {"name": "sonoria", "match": {"manufacturer": "Sonoria"}, "redaction_zones": [ZONE]}
    ]
}


@dataclass(frozen=True)
class Env:
    db: Path
    dest: Path
    config: Path
    root: Path


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Env:
    root = tmp_path_factory.mktemp("outputs")
    make_corpus(root / "dicom", patients=2, studies_per_patient=1, series_per_study=3,
                instances_per_series=2, canaries=True, rows=48, columns=64)  # fmt: skip
    config = root / "gantry.yaml"
    config.write_text(json.dumps(CONFIG))  # JSON is YAML
    with Session(root / "s.db") as s:
        s.ingest(root / "dicom", workers=1, progress=False)
        s.anonymize(config)
        r = s.export(root / "out", config=config, workers=1, progress=False)
        assert r.ok and r.exported == 10
    return Env(root / "s.db", root / "out", config, root)


# -- audit report -----------------------------------------------------------------------------


def test_audit_counts_equal_the_plan(env: Env) -> None:
    with Session(env.db, read_only=True) as s:
        table = audit_table(s.store)
        plan = s.sql("SELECT file_id, action, keyword, tag FROM plan")
        n_instances = s.sql("SELECT count(*) FROM instances").item()
    assert table.height == n_instances and table["file_id"].n_unique() == n_instances
    counts = plan.group_by("file_id", "action").len("n")
    for action, word in ACTION_NAMES.items():
        want = dict(counts.filter(pl.col("action") == action).select("file_id", "n").iter_rows())
        got = dict(table.select("file_id", f"n_{word}").iter_rows())
        assert {k: v for k, v in got.items() if v} == want, action
    # keyword lists, per action, for one instance
    fid = table["file_id"][0]
    mine = plan.filter(pl.col("file_id") == fid)
    row = table.filter(pl.col("file_id") == fid).row(0, named=True)
    for action, word in ACTION_NAMES.items():
        names = mine.filter(pl.col("action") == action).select(
            pl.coalesce("keyword", "tag").unique(maintain_order=True)
        )
        assert row[f"{word}_keywords"] == names.to_series().to_list()  # in the plan's order
    assert (table["n_actions"] == table.select(pl.sum_horizontal(
        pl.col(f"n_{w}") for w in ACTION_NAMES.values()
    )).to_series()).all()  # fmt: skip
    redacted = table.filter(pl.col("n_redacted") > 0)
    assert set(redacted["Modality"]) == {"US"} and redacted.height == 2
    assert json.loads(redacted["redaction_zones"][0]) == [ZONE]
    assert "machine:sonoria" in redacted["rules"][0]


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_audit_report_files(env: Env, fmt: str, tmp_path: Path) -> None:
    with Session(env.db, read_only=True) as s:
        path = s.audit_report(tmp_path / f"audit.{fmt}", format=fmt)
        table = audit_table(s.store)
    back = pl.read_csv(path) if fmt == "csv" else pl.read_parquet(path)
    assert back.columns == table.columns and back.height == table.height
    if fmt == "csv":
        assert back["removed_keywords"][0] == ";".join(table["removed_keywords"][0])
    else:
        assert back.equals(table)
    with Session(env.db, read_only=True) as s, pytest.raises(ConfigError):
        s.audit_report(tmp_path / "x", format="xlsx")


# -- manifest.html ----------------------------------------------------------------------------


class _Page(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.ids: set[str] = set()
        self.imgs: list[dict[str, str | None]] = []
        self.tags: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.ids.update(v for k, v in attrs if k == "id" and v)
        if tag == "img":
            self.imgs.append(dict(attrs))


def _png_gray(uri: str) -> np.ndarray:
    import struct
    import zlib

    data = base64.b64decode(uri.split(",", 1)[1])
    w, h, _, color = struct.unpack(">IIBB", data[16:26])
    pos, idat = 8, b""
    while pos < len(data):
        (n,) = struct.unpack(">I", data[pos : pos + 4])
        if data[pos + 4 : pos + 8] == b"IDAT":
            idat += data[pos + 8 : pos + 8 + n]
        pos += 12 + n
    rows = np.frombuffer(zlib.decompress(idat), np.uint8).reshape(h, -1)[:, 1:]
    return rows.reshape(h, w, 3 if color == 2 else 1)


def test_manifest_html(env: Env) -> None:
    with Session(env.db, read_only=True) as s:
        path = write_manifest_html(s, env.dest)
    assert path == env.dest / "manifest.html"
    html = path.read_text()
    page = _Page()
    page.feed(html)
    assert {"counts", "series", "redaction"} <= page.ids and "script" not in page.tags
    manifest = pl.read_csv(env.dest / "manifest.csv")
    assert f'<td class="num">{manifest.height}</td>' in html
    for uid in manifest["SeriesInstanceUID"].unique():
        assert uid in html
    # two redacted US instances: a before and an after thumbnail each, and each opens a
    # full-size image; zones outlined in red in all of them
    assert len(page.imgs) == 8
    after = [i for i in page.imgs if str(i["alt"]).startswith("after: ")]
    full = [i for i in page.imgs if str(i["alt"]).startswith("after, full size: ")]
    assert len(after) == len(full) == 2
    for image in (after[0], full[0]):
        thumb = _png_gray(str(image["src"]))
        assert thumb.shape[2] == 3
        assert (thumb[0, 0] == [220, 30, 30]).all()  # the zone's corner is outlined
    rel = str(after[0]["alt"]).removeprefix("after: ")
    exported = decode(pydicom.dcmread(env.dest / rel))
    assert (exported[..., 1:11, 1:39, :] == 0).all()  # and blank inside, in the file itself
    # nothing identifying in the page
    corpus_canaries = set(re.findall(r"CNRY[0-9A-F]{8}", html))
    assert not corpus_canaries


def test_manifest_html_refuses_full_originals_in_the_export(env: Env, tmp_path: Path) -> None:
    with Session(env.db, read_only=True) as s:
        with pytest.raises(ExportError, match="outside the export"):
            write_manifest_html(s, env.dest, original="full")
        out = write_manifest_html(s, env.dest, original="full", out=tmp_path / "review.html")
        assert out.exists()
        with pytest.raises(ExportError, match="no export recorded"):
            write_manifest_html(s, tmp_path)


# -- CLI --------------------------------------------------------------------------------------


def _run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    return result.exit_code, result.output


def test_cli_compliance_pass_and_fail(env: Env, tmp_path: Path) -> None:
    code, out = _run("report", "compliance", str(env.dest), "--db", str(env.db),
                     "--config", str(env.config), "--out", str(tmp_path / "rep"))  # fmt: skip
    assert code == 0, out
    assert "COMPLIANT" in out and (tmp_path / "rep" / "compliance.html").exists()
    # a stray original file in the folder makes it fail
    stray = env.dest / "stray.dcm"
    with Session(env.db, read_only=True) as s:
        src = s.sql("SELECT file_path FROM instances LIMIT 1").item()
    stray.write_bytes(Path(src).read_bytes())
    try:
        code, out = _run("report", "compliance", str(env.dest), "--db", str(env.db),
                         "--config", str(env.config), "--out", str(tmp_path / "rep2"))  # fmt: skip
    finally:
        stray.unlink()
    assert code == 1 and "NOT COMPLIANT" in out and "identifying-values" in out


def test_cli_audit_manifest_export_table(env: Env, tmp_path: Path) -> None:
    code, out = _run("report", "audit", str(tmp_path / "audit.parquet"), "--db", str(env.db))
    assert code == 0 and pl.read_parquet(tmp_path / "audit.parquet").height == 12
    code, out = _run("report", "manifest", str(env.dest), "--db", str(env.db))
    assert code == 0 and "manifest.html" in out
    code, out = _run("export-table", str(tmp_path / "series.parquet"), "--db", str(env.db),
                     "--level", "series")  # fmt: skip
    assert code == 0 and "wrote 6 series rows" in out
    code, out = _run("export-table", str(tmp_path / "parts"), "--db", str(env.db),
                     "--partition-by", "Modality")  # fmt: skip
    assert code == 0 and (tmp_path / "parts" / "Modality=CT").is_dir()
    code, out = _run("report", "audit", str(tmp_path / "a.csv"), "--db", str(tmp_path / "no.db"))
    assert code == 2 and "error:" in out
