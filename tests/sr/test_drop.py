"""Whole SR content items removed (sr_drop, uncleanable dates, dangling references)."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import polars as pl
import pydicom
import pytest
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from gantry import Session
from gantry.errors import ConfigError
from gantry.plan import remap_uid
from gantry.testing import make_text_sr
from gantry.testing._canaries import CANARY_BYTES_RE

CONFIG = {
    "options": ["retain-longitudinal-modified-dates", "clean-structured-content"],
    "sr_drop": ["PNAME"],
}


def _by_reference(*ordinals: int) -> Dataset:
    item = Dataset()
    item.RelationshipType = "CONTAINS"
    item.ReferencedContentItemIdentifier = list(ordinals)
    return item


def _source(path: Path) -> Dataset:
    """A canary SR whose tree has every reason to remove an item.

    Root: 1.1 observer type (CODE), 1.2 observer name (PNAME), 1.3 findings
    (CONTAINER: 1.3.1 a comment TEXT, 1.3.2 the leaves, whose DATE is no date),
    then 1.4 a reference to the observer name and 1.5 one to the comment.
    """
    ds = make_text_sr(seed=7, canaries=True, depth=2)
    leaves = ds.ContentSequence[2].ContentSequence[1].ContentSequence
    (date,) = [item for item in leaves if item.ValueType == "DATE"]
    ds.ContentSequence.append(_by_reference(1, 2))
    ds.ContentSequence.append(_by_reference(1, 3, 1))
    path.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():  # pydicom warns of the invalid date, on purpose here
        warnings.simplefilter("ignore")
        date.Date = "20191399"  # the shift cannot move it: the item goes, not its Type 1 value
        ds.save_as(path, enforce_file_format=True)
    return ds


def _items(ds: Dataset, tree: str = "1") -> dict[str, Dataset]:
    out = {tree: ds}
    for index, child in enumerate(ds.get("ContentSequence") or [], start=1):
        out.update(_items(child, f"{tree}.{index}"))
    return out


@pytest.fixture(scope="module")
def dropped(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Dataset, Dataset, Path]:
    root = tmp_path_factory.mktemp("sr-drop")
    source = _source(root / "dicom" / "sr.dcm")
    db = root / "s.db"
    with Session(db) as s:
        s.ingest(root / "dicom", workers=1, progress=False)
        s.anonymize(CONFIG)
        result = s.export(root / "out", safe=False, workers=1, progress=False)
        assert result.ok, result.failed
        secret = s.store.secret
    (out,) = (root / "out").rglob("*.dcm")
    written = pydicom.dcmread(out)
    assert written.SOPInstanceUID == remap_uid(secret, source.SOPInstanceUID)
    return db, source, written, out


def test_named_uncleanable_and_dangling_items_are_removed_whole(dropped) -> None:
    db, source, written, _ = dropped
    before, after = _items(source), _items(written)
    kinds = [i.get("ValueType") for i in after.values()]
    assert "PNAME" not in kinds and "DATE" not in kinds
    assert sum(1 for i in before.values() if i.get("ValueType") == "PNAME") == 2
    # the rest of the tree is all there, in order: one item fewer at the root and in the leaves
    assert len(after) == len(before) - 4
    assert [i.get("ValueType") for i in written.ContentSequence] == ["CODE", "CONTAINER", None]
    leaves = [i.ValueType for i in written.ContentSequence[1].ContentSequence[1].ContentSequence]
    assert leaves == ["TEXT", "TIME", "DATETIME", "UIDREF", "IMAGE", "CODE", "NUM", "SCOORD"]
    with Session(db) as s:
        rows = s.sql("SELECT path, rule FROM plan WHERE rule LIKE 'sr-%' ORDER BY path")
        inside = s.sql("SELECT count(*) AS n FROM plan WHERE starts_with(path, '0040A730[1].')")
    assert rows.rows() == [
        ("0040A730[1]", "sr-drop"),
        ("0040A730[2].0040A730[1].0040A730[1]", "sr-drop"),
        ("0040A730[2].0040A730[1].0040A730[2]", "sr-uncleanable"),
        ("0040A730[3]", "sr-by-reference"),
    ]
    assert inside["n"].item() == 0  # nothing planned inside a removed item


def test_references_are_renumbered_to_the_same_target(dropped) -> None:
    _, source, written, _ = dropped
    (ref,) = [i for i in written.ContentSequence if "ReferencedContentItemIdentifier" in i]
    assert list(ref.ReferencedContentItemIdentifier) == [1, 2, 1]
    target = written.ContentSequence[1].ContentSequence[0]
    original = source.ContentSequence[2].ContentSequence[0]
    assert target.ConceptNameCodeSequence[0].CodeValue == "121106"
    assert target.ConceptNameCodeSequence == original.ConceptNameCodeSequence


def test_no_canary_and_no_new_dciodvfy_error(dropped, tmp_path: Path) -> None:
    _, source, _, out = dropped
    assert CANARY_BYTES_RE.findall(source.ContentSequence[1].PersonName.original_string)
    assert CANARY_BYTES_RE.findall(out.read_bytes()) == []
    tool = shutil.which("dciodvfy") or str(Path(sys.executable).parent / "dciodvfy")

    def errors(path: Path) -> set[str]:
        proc = subprocess.run([tool, str(path)], capture_output=True, text=True, timeout=60)
        lines = (proc.stdout + proc.stderr).splitlines()
        found = {ln.split(" - ", 1)[-1].strip() for ln in lines if ln.startswith("Error")}
        return {re.sub(r"[0-9]+(?:\.[0-9]+)+", "<uid>", e) for e in found}

    shutil.copy(dropped[0].parent / "dicom" / "sr.dcm", tmp_path / "before.dcm")
    assert errors(out) <= errors(tmp_path / "before.dcm")


def test_compliance_report_finds_nothing(dropped) -> None:
    db = dropped[0]
    with Session(db) as s:
        report = s.compliance_report(db.parent / "out", profile=CONFIG)
    assert report.problems.filter(pl.col("keyword") != "PatientName").height == 0, report.problems


def test_without_clean_content_sr_drop_leaves_the_profile_dummy_alone(tmp_path: Path) -> None:
    _source(tmp_path / "dicom" / "sr.dcm")
    with Session(tmp_path / "s.db") as s:
        s.ingest(tmp_path / "dicom", workers=1, progress=False)
        s.anonymize(
            {"options": ["retain-longitudinal-modified-dates"], "sr_drop": ["PNAME", "CODE"]}
        )
        assert s.sql("SELECT count(*) AS n FROM plan WHERE rule LIKE 'sr-%'")["n"].item() == 0
        assert s.export(tmp_path / "out", safe=False, workers=1, progress=False).ok
    (out,) = (tmp_path / "out").rglob("*.dcm")
    # the basic profile's dummy keeps the first item (a CODE): nothing was renumbered there
    assert [i.ValueType for i in pydicom.dcmread(out).ContentSequence] == ["CODE"]


def test_sr_drop_names_are_checked(tmp_path: Path) -> None:
    with Session(tmp_path / "s.db") as s:
        with pytest.raises(ConfigError, match=r"sr_drop\[0\].*PNAME"):
            s.anonymize({"sr_drop": ["PNAM"]})


def test_an_emptied_content_sequence_is_removed() -> None:
    from gantry.export._items import drop_items

    ds = Dataset()
    child = Dataset()
    child.ValueType = "TEXT"
    parent = Dataset()
    parent.ValueType = "CONTAINER"
    parent.ContentSequence = Sequence([child])
    ds.ContentSequence = Sequence([parent])
    rest = drop_items(ds, [("0040A730[0].0040A730[0]", "SQ", "X", None),
                           ("0040A730[0].0040A040", "CS", "K", None)])  # fmt: skip
    assert "ContentSequence" not in ds.ContentSequence[0]
    assert rest == [("0040A730[0].0040A040", "CS", "K", None)]
