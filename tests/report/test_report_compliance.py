"""The compliance report: clean exports pass, every planted leak is found and named."""

from __future__ import annotations

import csv
import io
import json
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path

import polars as pl
import pydicom
import pytest
from pydicom.tag import Tag
from pydicom.uid import (
    DeflatedExplicitVRLittleEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
)

from gantry import Session
from gantry.export import ExportResult
from gantry.pixels import apply_encoded, decode, encode
from gantry.report import CHECKS, ComplianceReport
from gantry.report._checks import tag_actions
from gantry.report._compliance import _verification_rules
from gantry.testing import Corpus, find_canaries, make_corpus

ZONE = [0, 12, 0, 40]
_NATIVE = (ExplicitVRLittleEndian, ImplicitVRLittleEndian)
CONFIG = {
    "machines": [
        {"name": "sonoria", "match": {"manufacturer": "Sonoria"}, "redaction_zones": [ZONE]}
    ]
}


@dataclass
class Env:
    session: Session
    corpus: Corpus
    root: Path
    clean: ExportResult
    report: ComplianceReport


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    root = tmp_path_factory.mktemp("compliance")
    # 6 series: CT MR US CR SC CT; US is redacted, SC has burned-in text and no zone
    corpus = make_corpus(root / "dicom", patients=2, studies_per_patient=1, series_per_study=3,
                         instances_per_series=2, canaries=True, rows=48, columns=64)  # fmt: skip
    with Session(root / "s.db") as s:
        s.ingest(root / "dicom", workers=1, progress=False)
        s.anonymize(CONFIG)
        clean = s.export(root / "clean", config=CONFIG, workers=1, progress=False)
        assert clean.ok and clean.excluded.height == 2
        report = s.compliance_report(clean, profile=CONFIG, out=root / "clean")
        yield Env(s, corpus, root, clean, report)


def _files(dest: Path) -> list[Path]:
    return sorted(dest.rglob("*.dcm"))


# -- a clean export ---------------------------------------------------------------------------


def test_clean_export_passes_every_check(env: Env) -> None:
    r = env.report
    assert r.compliant, str(r)
    assert r.problems.height == 0 and r.leaks.height == 0
    assert r.summary["files_checked"] == env.clean.exported == 10
    assert set(r.rules["status"]) <= {"pass", "n/a"}
    rules = dict(r.rules.select("rule", "files_checked").iter_rows())
    assert rules["redaction"] == 2  # the two US instances were checked pixel by pixel
    assert rules["identifying-values"] == 10
    assert r.files["status"].to_list() == ["pass"] * 10
    assert r.codecs["files"].sum() == 10
    assert r.profile == "basic" and r.edition
    assert r.settings["safe"] is True


def test_excluded_instances_and_why(env: Env) -> None:
    ex = env.report.excluded
    assert ex.height == 2 and set(ex["status"]) == {"excluded"}
    assert set(ex["Modality"]) == {"OT"}  # secondary capture with burned-in text, no zone
    assert ex["reason"].str.contains("burned-in").all()
    # from the folder alone (no ExportResult) the same instances and reasons are found
    again = env.session.compliance_report(env.root / "clean", profile=CONFIG)
    assert again.compliant
    assert again.excluded.sort("file_id").equals(ex.sort("file_id"))


class _Sections(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.ids: set[str] = set()
        self.tags: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.ids.update(v for k, v in attrs if k == "id" and v)

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def _parse(html: str) -> _Sections:
    p = _Sections()
    p.feed(html)
    p.close()
    return p


def test_outputs_parse_and_agree(env: Env) -> None:
    paths = env.report.outputs
    assert set(paths) == {"html", "json", "csv"}
    page = _parse(paths["html"].read_text())
    assert {"verdict", "summary", "rules", "leaks", "excluded", "codecs", "files", "profile"} <= (
        page.ids
    )
    assert "svg" in page.tags and "script" not in page.tags
    text = " ".join(page.text)
    assert "COMPLIANT" in text and "NOT COMPLIANT" not in text
    assert 'src="http' not in paths["html"].read_text()
    doc = json.loads(paths["json"].read_text())
    rows = list(csv.DictReader(io.StringIO(paths["csv"].read_text())))
    assert doc["verdict"] == "COMPLIANT" and doc["compliant"] is True
    assert len(rows) == len(doc["files"]) == doc["summary"]["files_checked"]
    assert {r["output_path"]: r["status"] for r in rows} == {
        f["output_path"]: f["status"] for f in doc["files"]
    }
    assert [c["rule"] for c in doc["checks"]] == list(CHECKS)
    assert doc["profile"]["name"] == "basic" and doc["profile"]["edition"]
    assert len(doc["excluded"]) == 2
    # the report files are not taken for exported data on the next run
    assert env.session.compliance_report(env.root / "clean", profile=CONFIG).compliant


def test_every_canary_is_searched_for(env: Env) -> None:
    """The byte scan looks for every value holding a canary planted in an exported instance."""
    s = env.session
    rows = s.sql(
        "SELECT e.file_id, i.file_path FROM exports e JOIN instances i USING (file_id) "
        "WHERE e.dest = ? AND e.status = 'ok'",
        [str(env.root / "clean")],
    )
    ids = rows["file_id"]
    source = s.table("elements").filter(pl.col("file_id").is_in(ids.implode())).collect()
    from gantry.config import load_config

    cfg = load_config(CONFIG)
    profile = cfg.profile()
    rules = _verification_rules(
        s.store, source, ids, tag_actions(profile, source["tag"]), cfg, profile
    )
    from gantry.plan._match import contains

    for fid, path in rows.iter_rows():
        wanted = [t.text for t in rules.tokens[fid]]
        planted = {c.upper() for c in find_canaries(pydicom.dcmread(path))}
        # values are searched whole (a canary inside free text, with its text)
        unsearched = {c for c in planted if not any(contains(w, c) for w in wanted)}
        assert planted and not unsearched, unsearched


# -- planted leaks ----------------------------------------------------------------------------


def _source_of(s: Session, dest: Path) -> dict[str, int]:
    rows = s.sql("SELECT output_path, file_id FROM exports WHERE dest = ?", [str(dest)])
    return dict(rows.iter_rows())


def test_config_that_keeps_phi_is_caught(env: Env, tmp_path: Path) -> None:
    s = env.session
    leaky = {**CONFIG, "phi_tags": {"0010,0010": {"action": "keep"}}}
    s.anonymize(leaky)
    try:
        # safe=False: under safe=True the audit keeps every instance naming its patient out
        r = s.export(
            tmp_path / "out", config=leaky, safe=False, verify=False, workers=1, progress=False
        )
        report = s.compliance_report(r, profile=leaky, out=tmp_path / "report")
    finally:
        s.anonymize(CONFIG)
    assert not report.compliant
    by_rule = report.leaks.group_by("rule").agg(pl.col("keyword").unique())
    named = {rule: set(kws) for rule, kws in by_rule.iter_rows()}
    # the profile's check names the kept name; the byte scan, which applies export
    # verification's rules to the plan (that keeps the name on purpose), does not
    assert named == {
        "replaced": {"PatientName"},
        # safe=False let the secondary captures out with no redaction zone
        "burned-in": {"PixelData"},
    }
    burned = report.leaks.filter(pl.col("rule") == "burned-in")
    assert burned.height == 2 and burned["detail"].str.contains("BurnedInAnnotation is YES").all()
    assert report.summary["files_failed"] == report.summary["files_checked"] == 12
    # the verdict is at the top of the page, and no value is ever written
    html = report.outputs["html"].read_text()
    assert html.index("NOT COMPLIANT") < html.index('id="summary"')
    names = {p.name for p in env.corpus.patients}
    parts = {x for n in names for x in n.split("^") if len(x) >= 3}
    for path in report.outputs.values():
        text = path.read_text()
        assert not [c for c in env.corpus.canaries if c in text]
        assert not [p for p in parts if p in text]


def _tamper(path: Path, **changes: object) -> None:
    ds = pydicom.dcmread(path)
    for keyword, value in changes.items():
        if value is None:
            del ds[keyword]
        else:
            setattr(ds, keyword, value)
    ds.save_as(path, enforce_file_format=True)


def test_hand_planted_leaks_are_each_found(env: Env, tmp_path: Path) -> None:
    s = env.session
    dest = tmp_path / "out"
    r = s.export(dest, config=CONFIG, workers=1, progress=False)
    assert r.ok
    src = _source_of(s, dest)
    inst = s.sql(
        "SELECT file_id, file_path, PatientID, StudyDate, SeriesInstanceUID, Modality "
        "FROM instances"
    )
    by_id = {row["file_id"]: row for row in inst.iter_rows(named=True)}
    files = _files(dest)
    rel = {f: f.relative_to(dest).as_posix() for f in files}
    us = [f for f in files if by_id[src[rel[f]]]["Modality"] == "US"]
    other = [f for f in files if f not in us]
    native = [f for f in other if pydicom.dcmread(f).file_meta.TransferSyntaxUID in _NATIVE]
    h = native[-1]
    a, b, c, d, e, gone, g = [f for f in other if f != h]
    expected: dict[str, set[str]] = {}

    # a: the original PatientID copied into an attribute the profile keeps
    _tamper(a, SoftwareVersions="v1 " + by_id[src[rel[a]]]["PatientID"])
    expected[rel[a]] = {"provenance", "identifying-values"}
    # b: a private block
    ds = pydicom.dcmread(b)
    ds.private_block(0x0009, "ACME 1.0", create=True).add_new(0x10, "LO", "harmless")
    ds.save_as(b, enforce_file_format=True)
    expected[rel[b]] = {"provenance", "private"}
    # c: de-identification markers gone
    _tamper(c, PatientIdentityRemoved=None, DeidentificationMethodCodeSequence=None)
    expected[rel[c]] = {"provenance", "markers"}
    # d: the original study date put back
    _tamper(d, StudyDate=by_id[src[rel[d]]]["StudyDate"].strftime("%Y%m%d"))
    expected[rel[d]] = {"provenance", "replaced", "identifying-values"}
    # e: the original series UID put back
    _tamper(e, SeriesInstanceUID=by_id[src[rel[e]]]["SeriesInstanceUID"])
    expected[rel[e]] = {"provenance", "uids", "identifying-values"}
    # f: a pixel inside the redaction zone repainted
    f = us[0]
    ds = pydicom.dcmread(f)
    arr = decode(ds).copy()
    arr[..., 2, 3, :] = 255
    apply_encoded(ds, encode(arr, ds, "none"))
    ds.save_as(f, enforce_file_format=True)
    expected[rel[f]] = {"provenance", "redaction"}
    # g: a copy filed under the patient's original ID
    named = dest / by_id[src[rel[g]]]["PatientID"] / "copy.dcm"
    named.parent.mkdir()
    shutil.copy(g, named)
    expected[named.relative_to(dest).as_posix()] = {"provenance", "identifying-values"}
    # h: an original ID hidden in a deflated data set (invisible to a plain byte search)
    ds = pydicom.dcmread(h)
    ds.SoftwareVersions = "v1 " + by_id[src[rel[h]]]["PatientID"]
    ds.file_meta.TransferSyntaxUID = DeflatedExplicitVRLittleEndian
    ds.save_as(h, enforce_file_format=True)
    assert by_id[src[rel[h]]]["PatientID"].encode() not in h.read_bytes()
    expected[rel[h]] = {"provenance", "identifying-values"}
    # a recorded file deleted, a stray original and a text file added
    gone.unlink()
    expected[rel[gone]] = {"provenance"}
    stray = dest / "extra" / "stray.dcm"
    stray.parent.mkdir()
    shutil.copy(by_id[src[rel[a]]]["file_path"], stray)
    (dest / "notes.txt").write_text("nothing to see")
    expected["notes.txt"] = {"readable", "provenance"}

    report = s.compliance_report(dest, profile=CONFIG)
    assert not report.compliant
    failing = report.problems.group_by("output_path").agg(pl.col("rule").unique())
    found = {path: set(rules) for path, rules in failing.iter_rows()}
    stray_rules = found.pop("extra/stray.dcm")
    assert found == expected
    assert {"provenance", "removed", "replaced", "uids", "private", "markers",
            "identifying-values"} <= stray_rules  # fmt: skip
    # the leak is named by the attribute it came from, never by its value
    leak_a = report.problems.filter(
        (pl.col("output_path") == rel[a]) & (pl.col("rule") == "identifying-values")
    )
    assert leak_a["keyword"].to_list() == ["PatientID"] and leak_a["path"].to_list() == ["00181020"]
    assert by_id[src[rel[a]]]["PatientID"] not in json.dumps(report.to_dict(), default=str)
    stray_note = report.problems.filter(
        (pl.col("output_path") == "extra/stray.dcm") & (pl.col("rule") == "provenance")
    )["detail"].item()
    assert "original SOP Instance UID" in stray_note
    in_path = report.problems.filter(
        (pl.col("rule") == "identifying-values") & pl.col("detail").str.contains("path")
    )
    assert in_path["output_path"].to_list() == [named.relative_to(dest).as_posix()]
    assert in_path["keyword"].to_list() == ["PatientID"]
    statuses = dict(report.files.select("output_path", "status").iter_rows())
    assert statuses[rel[gone]] == "missing"
    assert sum(v == "pass" for v in statuses.values()) == 10 - 8


def test_private_tags_pass_when_listed_as_safe(env: Env, tmp_path: Path) -> None:
    s = env.session
    safe = {
        **CONFIG,
        "options": ["retain-longitudinal-modified-dates", "retain-safe-private"],
        "safe_private_tags": [{"creator": "ACME 1.0", "elements": ["0009,xx10"]}],
    }
    dest = tmp_path / "out"
    s.anonymize(safe)
    try:
        s.export(dest, config=safe, workers=1, progress=False)
    finally:
        s.anonymize(CONFIG)
    f = _files(dest)[0]
    ds = pydicom.dcmread(f)
    ds.private_block(0x0009, "ACME 1.0", create=True).add_new(0x10, "LO", "harmless")
    ds.save_as(f, enforce_file_format=True)
    report = s.compliance_report(dest, profile=safe)
    assert set(report.problems["rule"]) == {"provenance"}  # the edit, not the private tag
    assert Tag(0x0009, 0x1010) in pydicom.dcmread(f)
    # checked against the stricter default, the same element fails
    strict = s.compliance_report(dest, profile=CONFIG)
    assert "private" in set(strict.problems["rule"])


def test_empty_folder_is_not_compliant(env: Env, tmp_path: Path) -> None:
    report = env.session.compliance_report(tmp_path, profile=CONFIG)
    assert not report.compliant and report.summary["files_checked"] == 0
    assert "NOT COMPLIANT" in str(report)
