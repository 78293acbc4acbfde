"""Every example of docs/queries.md runs, and its SQL and Polars versions agree."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import polars as pl
import pydicom
import pytest

from gantry import Session
from gantry.testing import make_corpus, make_dose_sr

DOC = Path(__file__).parents[2] / "docs" / "queries.md"


def _examples() -> dict[str, tuple[str, str]]:
    text = DOC.read_text()
    out = {}
    for section in re.split(r"^## ", text, flags=re.M)[1:]:
        title = section.splitlines()[0].strip()
        sql = re.findall(r"```sql\n(.*?)```", section, flags=re.S)
        py = re.findall(r"```python\n(.*?)```", section, flags=re.S)
        assert len(sql) == 1 and len(py) == 1, f"{title!r} needs one sql and one python block"
        out[title] = (sql[0], py[0])
    return out


EXAMPLES = _examples()


@pytest.fixture(scope="module")
def session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Session]:
    root = tmp_path_factory.mktemp("queries")
    make_corpus(root / "dicom", patients=2, studies_per_patient=2, series_per_study=3,
                instances_per_series=2)  # fmt: skip
    # a dose report in one of the corpus's studies, for the sr_content examples
    ct = pydicom.dcmread(next((root / "dicom").rglob("*.dcm")), stop_before_pixels=True)
    same = ("PatientID", "PatientName", "StudyInstanceUID", "StudyDate", "AccessionNumber")
    make_dose_sr(root / "dicom" / "sr" / "dose.dcm", **{k: ct.get(k) for k in same})
    with Session(root / "s.db") as s:
        s.ingest(root / "dicom", workers=1, progress=False)
        s.save_analysis(s.audit())
        s.anonymize()
        yield s


def _run(s: Session, title: str) -> tuple[pl.DataFrame, pl.DataFrame]:
    sql, py = EXAMPLES[title]
    scope: dict[str, object] = {"s": s, "pl": pl}
    exec(compile(py, f"queries.md: {title}", "exec"), scope)  # noqa: S102 - our own docs
    df = scope["df"]
    assert isinstance(df, pl.DataFrame)
    return s.sql(sql), df


def _same(a: pl.DataFrame, b: pl.DataFrame) -> None:
    assert a.columns == b.columns
    norm = [
        pl.col(c).cast(pl.Int64)
        if dt.is_integer()
        else pl.col(c).cast(pl.String)
        if dt in (pl.Categorical, pl.Enum) or isinstance(dt, pl.Enum)
        else pl.col(c)
        for c, dt in a.schema.items()
    ]
    left = a.select(norm)
    right = b.select(
        [pl.col(c).cast(left.schema[c]) if c in left.columns else pl.col(c) for c in b.columns]
    )
    assert left.equals(right), f"\n{left}\n{right}"


def test_docs_have_the_required_examples() -> None:
    assert {
        "Counts by modality and manufacturer",
        "Slice thickness distribution",
        "Heterogeneous series",
        "Studies per patient over time",
        "PHI findings by device",
    } <= set(EXAMPLES)


@pytest.mark.parametrize("title", list(EXAMPLES))
def test_sql_and_polars_agree(session: Session, title: str) -> None:
    sql, polars = _run(session, title)
    assert sql.height > 0
    _same(sql, polars)


def test_counts_add_up(session: Session) -> None:
    df, _ = _run(session, "Counts by modality and manufacturer")
    assert df["instances"].sum() == session.sql("SELECT count(*) FROM instances").item()


def test_slice_thickness_only_ct_mr(session: Session) -> None:
    df, _ = _run(session, "Slice thickness distribution")
    assert set(df["Modality"]) <= {"CT", "MR"}
    assert df.filter(pl.col("Modality") == "CT")["SliceThickness"].drop_nulls().len() > 0


def test_heterogeneous_series_found(session: Session) -> None:
    df, _ = _run(session, "Heterogeneous series")
    # the corpus's SC series mix a 2-frame and single-frame SOP classes
    assert df.height >= 1 and (df["n_distinct_SOPClassUID"] > 1).all()
    view = session.sql("SELECT count(*) FROM series WHERE NOT is_homogeneous").item()
    assert df.height == view


def test_studies_per_patient(session: Session) -> None:
    df, _ = _run(session, "Studies per patient over time")
    assert df["studies"].sum() == 4 and df["PatientID"].n_unique() == 2


def test_findings_by_device(session: Session) -> None:
    df, _ = _run(session, "PHI findings by device")
    assert df["findings"].sum() == session.sql("SELECT count(*) FROM findings").item()
    burned = df.filter(pl.col("rule").str.starts_with("burned-in"))
    assert set(burned["Manufacturer"]) <= {"Sonoria", "GANTRY Workstation"}
    assert (burned["unresolved"] > 0).all()  # no redaction zones in the default config
