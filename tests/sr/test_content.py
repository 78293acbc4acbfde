"""``sr_content``: one typed row per content item, checked against a pydicom walk."""

from __future__ import annotations

import datetime
from pathlib import Path
from typing import Any

import polars as pl
import pydicom
import pytest
from pydicom.dataset import Dataset

from gantry import Session
from gantry.sr import SR_CONTENT_SCHEMA, content_table
from gantry.testing import make_dose_sr, make_instance, make_text_sr

SAMPLES = Path(pydicom.__file__).parent / "data" / "test_files"
PYDICOM_SRS = ["test-SR.dcm", "reportsi.dcm", "reportsi_with_empty_number_tags.dcm"]


def _first(item: Dataset, keyword: str, sub: str) -> Any:
    seq = item.get(keyword)
    return seq[0].get(sub) if seq else None


def _walk(item: Dataset, tree: str, out: dict[str, dict[str, Any]]) -> None:
    """The oracle: every content item by its tree path, read with pydicom."""
    number = None
    measured = item.get("MeasuredValueSequence")
    if measured and "NumericValue" in measured[0]:
        number = float(measured[0].NumericValue)
    out[tree] = {
        "value_type": item.get("ValueType"),
        "relationship_type": item.get("RelationshipType"),
        "concept_meaning": _first(item, "ConceptNameCodeSequence", "CodeMeaning"),
        "code_meaning": _first(item, "ConceptCodeSequence", "CodeMeaning"),
        "text_value": item.get("TextValue"),
        "person_name": str(item.PersonName) if "PersonName" in item else None,
        "uid_value": item.get("UID"),
        "numeric_value": number,
    }
    for index, child in enumerate(item.get("ContentSequence") or [], start=1):
        _walk(child, f"{tree}.{index}", out)


def _ingest(tmp_path: Path, files: list[Path]) -> pl.DataFrame:
    with Session(tmp_path / "s.db") as s:
        s.ingest(files, workers=1, progress=False)
        return s.sql("SELECT * FROM sr_content ORDER BY file_id, tree_path")


@pytest.mark.parametrize("name", PYDICOM_SRS)
def test_pydicom_sample_reports_match_a_pydicom_walk(name: str, tmp_path: Path) -> None:
    path = SAMPLES / name
    expected: dict[str, dict[str, Any]] = {}
    _walk(pydicom.dcmread(path), "1", expected)
    rows = _ingest(tmp_path, [path])
    assert rows.height == len(expected) > 3
    for row in rows.iter_rows(named=True):
        want = expected[row["tree_path"]]
        got = {key: row[key] for key in want}
        assert got == want, row["tree_path"]
        parent = row["tree_path"].rpartition(".")[0] or None
        assert row["parent_path"] == parent
        assert row["depth"] == row["tree_path"].count(".")


def test_dose_report_gives_ctdivol_and_dlp_in_one_query(tmp_path: Path) -> None:
    make_dose_sr(tmp_path / "dose.dcm", ctdi_vol=(12.5, 8.25), dlp=(310.0, 190.5))
    make_instance(tmp_path / "ct.dcm")
    with Session(tmp_path / "s.db") as s:
        s.ingest(tmp_path, workers=1, progress=False)
        dose = s.sql(
            """
            SELECT parent_path, concept_meaning, numeric_value, unit_code
            FROM sr_content
            WHERE template_id = '10011' AND concept_code IN ('113830', '113838')
            ORDER BY parent_path, concept_code
            """
        )
    assert dose.rows() == [
        ("1.6.3", "Mean CTDIvol", 12.5, "mGy"),
        ("1.6.3", "DLP", 310.0, "mGy.cm"),
        ("1.7.3", "Mean CTDIvol", 8.25, "mGy"),
        ("1.7.3", "DLP", 190.5, "mGy.cm"),
    ]


def test_typed_values_of_every_kind_six_levels_deep(tmp_path: Path) -> None:
    ds = make_text_sr(tmp_path / "sr.dcm", depth=6)
    rows = _ingest(tmp_path, [tmp_path / "sr.dcm"])
    leaf = rows.filter(pl.col("depth") == 7)
    by_type = {r["value_type"]: r for r in leaf.iter_rows(named=True)}
    assert set(by_type) >= {"TEXT", "PNAME", "DATE", "TIME", "DATETIME", "UIDREF", "IMAGE"}
    assert by_type["DATE"]["date_value"] == datetime.date(2019, 3, 1)
    assert by_type["TIME"]["time_value"] == "093000"
    assert by_type["DATETIME"]["datetime_value"] == "20190301093000"
    assert by_type["UIDREF"]["uid_value"] == ds.StudyInstanceUID
    assert by_type["PNAME"]["person_name"] == "Reiter^Rolf"
    assert by_type["CODE"]["code_value"] == "27925004"
    assert by_type["CODE"]["code_scheme"] == "SCT"
    assert (by_type["NUM"]["numeric_value"], by_type["NUM"]["unit_code"]) == (7.5, "mm")
    assert by_type["SCOORD"]["graphic_type"] == "POINT"
    assert by_type["SCOORD"]["graphic_data"] == [10.5, 20.25]
    assert by_type["IMAGE"]["referenced_sop_class"] == "1.2.840.10008.5.1.4.1.1.2"
    # the root's template is inherited by every item below it
    assert set(rows["template_id"].to_list()) == {"2000"}
    # item_path addresses the item's elements in `elements` (and in the plan)
    text = by_type["TEXT"]
    with Session(tmp_path / "s.db") as s:
        value = s.sql(
            "SELECT value FROM elements WHERE path = ?", [text["item_path"] + "0040A160"]
        )["value"]
    assert value.to_list() == [text["text_value"]]


def test_non_sr_files_add_no_rows_and_the_empty_view_has_the_schema(tmp_path: Path) -> None:
    make_instance(tmp_path / "ct.dcm")
    rows = _ingest(tmp_path, [tmp_path / "ct.dcm"])
    assert rows.height == 0
    assert rows.columns == SR_CONTENT_SCHEMA.names
    (tmp_path / "nothing").mkdir()
    with Session(tmp_path / "empty.db") as s:
        s.ingest(tmp_path / "nothing", workers=1, progress=False)  # only ingest creates one
        assert s.sql("SELECT * FROM sr_content").columns == SR_CONTENT_SCHEMA.names


@pytest.mark.filterwarnings("ignore:Invalid value for VR DS")  # pydicom reading the odd file
def test_bad_values_are_null_and_a_broken_report_does_not_sink_its_batch(tmp_path: Path) -> None:
    src = tmp_path / "dicom"
    ds = make_dose_sr(src / "odd.dcm", ctdi_vol=(12.5, 8.25))
    raw = (src / "odd.dcm").read_bytes()
    assert raw.count(b"12.5") == 1
    (src / "odd.dcm").write_bytes(raw.replace(b"12.5", b"x2.5"))  # an invalid DS
    good = make_dose_sr(src / "good.dcm", seed=1)
    raw = (src / "good.dcm").read_bytes()
    (src / "cut.dcm").write_bytes(raw[: len(raw) // 2])  # truncated mid content tree
    with Session(tmp_path / "s.db") as s:
        s.ingest(src, workers=1, progress=False)
        counts = s.sql(
            "SELECT i.SOPInstanceUID AS sop, count(*) AS n, count(numeric_value) AS nums "
            "FROM sr_content JOIN instances i USING (file_id) GROUP BY 1 ORDER BY 1"
        )
        skipped = s.sql("SELECT reason FROM skipped")["reason"].to_list()
    assert skipped == ["truncated"]
    per_sop = {r[0]: (r[1], r[2]) for r in counts.rows()}
    assert per_sop[good.SOPInstanceUID] == (20, 6)
    # the unparseable number is a null value, the rest of the report is intact
    assert per_sop[ds.SOPInstanceUID] == (20, 5)


def test_content_table_isolates_a_file_that_cannot_be_converted() -> None:
    rows = pl.DataFrame(
        {
            "file_id": [1, 1, 2, 2],
            "path": ["0040A040", "0040A730[0].0040A040", "0040A040", "0040A730[0].0040A040"],
            "depth": [0, 1, 0, 1],
            "value": ["CONTAINER", "TEXT", "CONTAINER", "TEXT"],
        }
    )
    table = content_table(rows)
    assert table.schema == SR_CONTENT_SCHEMA
    assert table.column("tree_path").to_pylist() == ["1", "1.1", "1", "1.1"]
    assert content_table(rows.head(0)).num_rows == 0


def test_public_names_are_frozen() -> None:
    import gantry.sr

    assert gantry.sr.__all__ == [
        "DOCUMENTS_TABLE",
        "REDACTED",
        "SR_CONTENT_SCHEMA",
        "clean_text",
        "content_table",
        "document_exclusions",
        "document_text",
    ]
