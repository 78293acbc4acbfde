"""Flat tables: to_parquet / to_polars per level, the schema file, partitions; charts and PNG."""

from __future__ import annotations

import json
import struct
import subprocess
import sys
import zlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from gantry import Session
from gantry.errors import ConfigError
from gantry.report import LEVELS, bar_chart, histogram, pass_fail_bar, text_bars
from gantry.report._png import png_bytes, thumbnail
from gantry.testing import make_corpus

VIEWS = {"instance": "instances", "series": "series", "study": "studies", "patient": "patients"}


@pytest.fixture(scope="module")
def session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Session]:
    root = tmp_path_factory.mktemp("tables")
    make_corpus(root / "dicom", patients=3, studies_per_patient=2, series_per_study=2,
                instances_per_series=2)  # fmt: skip
    with Session(root / "s.db") as s:
        s.ingest(root / "dicom", workers=1, progress=False)
        yield s


@pytest.mark.parametrize("level", LEVELS)
def test_round_trip_per_level(session: Session, level: str, tmp_path: Path) -> None:
    out = session.to_parquet(tmp_path / f"{level}.parquet", level=level)
    back = pl.read_parquet(out)
    n = session.sql(f"SELECT count(*) FROM {VIEWS[level]}").item()
    assert back.height == n
    mem = session.to_polars(level)
    assert mem.columns == back.columns and mem.height == n
    key = {"instance": "file_id", "series": "SeriesInstanceUID", "study": "StudyInstanceUID",
           "patient": "PatientID"}[level]  # fmt: skip
    assert mem.sort(key).equals(back.sort(key))
    doc = json.loads(out.with_name(out.name + ".schema.json").read_text())
    assert doc["level"] == level and doc["rows"] == n
    assert [c["name"] for c in doc["columns"]] == back.columns
    assert all(c["type"] and c["source"] for c in doc["columns"])


def test_instance_level_carries_every_attribute_and_aggregates(
    session: Session, tmp_path: Path
) -> None:
    out = session.to_parquet(tmp_path / "cohort.parquet")
    back = pl.read_parquet(out)
    instance_cols = session.sql("SELECT * FROM instances LIMIT 0").columns
    assert back.columns[: len(instance_cols)] == instance_cols
    for col in ("series_n_instances", "series_is_homogeneous", "study_n_series",
                "patient_n_studies", "patient_first_study_date"):  # fmt: skip
        assert col in back.columns
    # the aggregates agree with the rows they summarise
    check = back.group_by("SeriesInstanceUID").agg(
        pl.len().alias("n"), pl.col("series_n_instances").first()
    )
    assert (check["n"] == check["series_n_instances"]).all()
    per_patient = back.group_by("PatientID").agg(
        pl.col("StudyInstanceUID").n_unique().alias("n"), pl.col("patient_n_studies").first()
    )
    assert (per_patient["n"] == per_patient["patient_n_studies"]).all()
    # schema: DICOM columns named by pydicom's dictionary, derived ones by their source
    doc = json.loads((tmp_path / "cohort.parquet.schema.json").read_text())
    cols = {c["name"]: c for c in doc["columns"]}
    want = {"tag": "(0010,0020)", "vr": "LO", "keyword": "PatientID", "source": "instances"}
    assert want.items() <= cols["PatientID"].items()
    assert cols["PixelSpacing"]["vm"] == "2" and cols["PixelSpacing"]["type"] == "DOUBLE[]"
    assert cols["series_n_instances"]["source"] == "series" and "tag" not in cols["file_id"]
    assert "n_distinct_Rows" not in cols and cols["series_n_distinct_Rows"]["keyword"] == "Rows"


@pytest.mark.parametrize("by", ["Modality", "PatientID"])
def test_partitioned_folder(session: Session, by: str, tmp_path: Path) -> None:
    dest = tmp_path / "parts"
    for _ in range(2):  # a second write replaces the folder
        out = session.to_parquet(dest, partition_by=by)
    assert out.is_dir()
    values = session.sql(f"SELECT DISTINCT {by} FROM instances")[by].to_list()
    assert sorted(p.name for p in out.iterdir()) == sorted(f"{by}={v}" for v in values)
    back = pl.read_parquet(out / "**/*.parquet")  # the column is in the files, typed
    assert back.columns == session.to_polars().columns
    assert back.height == session.sql("SELECT count(*) FROM instances").item()
    assert sorted(back[by].unique().to_list()) == sorted(values)
    assert json.loads((tmp_path / "parts.schema.json").read_text())["partition_by"] == by


@pytest.mark.parametrize("by", ["Modality", "PatientID"])
def test_partitions_written_a_few_at_a_time_give_the_same_folder(
    session: Session, by: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    whole = session.to_parquet(tmp_path / "whole", partition_by=by)
    monkeypatch.setattr("gantry.report._tables.PARTITION_ROWS", 3)  # several COPYs
    parts = session.to_parquet(tmp_path / "parts", partition_by=by)

    def files(root: Path) -> list[str]:
        return sorted(p.relative_to(root).as_posix() for p in root.rglob("*.parquet"))

    assert files(parts) == files(whole) and all(f.endswith("/data_0.parquet") for f in files(parts))
    key = "file_id"
    back = pl.read_parquet(parts / "**/*.parquet").sort(key)
    assert back.equals(pl.read_parquet(whole / "**/*.parquet").sort(key))
    assert back.equals(session.to_polars().sort(key))
    doc = json.loads((tmp_path / "parts.schema.json").read_text())
    assert doc["rows"] == back.height


def test_bad_arguments(session: Session, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="`level` must be one of"):
        session.to_parquet(tmp_path / "x.parquet", level="frame")
    with pytest.raises(ConfigError, match="partition_by"):
        session.to_parquet(tmp_path / "x", level="study", partition_by="Modality")
    with pytest.raises(ConfigError, match="partition_by"):
        session.to_parquet(tmp_path / "x", partition_by="Manufacturer")
    assert not list(tmp_path.iterdir())  # nothing half-written


def test_charts_are_self_contained_svg() -> None:
    for svg in (
        bar_chart(["CT", "MR"], [3, 1], title="a <b>"),
        histogram([1.0, None, 2.0, float("nan"), 2.5], bins=3),
        pass_fail_bar(0, 0),
        bar_chart([], []),
    ):
        assert svg.startswith("<svg") and svg.endswith("</svg>")
        assert "<script" not in svg and "href" not in svg
    assert "a &lt;b&gt;" in bar_chart(["x"], [1], title="a <b>")
    assert text_bars(["a"], [0]) == "a   0"


def _read_png(data: bytes) -> tuple[int, int, int, bytes]:
    pos, chunks = 8, {}
    while pos < len(data):
        (n,) = struct.unpack(">I", data[pos : pos + 4])
        kind = data[pos + 4 : pos + 8]
        body = data[pos + 8 : pos + 8 + n]
        assert struct.unpack(">I", data[pos + 8 + n : pos + 12 + n])[0] == zlib.crc32(kind + body)
        chunks[kind] = chunks.get(kind, b"") + body
        pos += 12 + n
    w, h, _, color, *_ = struct.unpack(">IIBBBBB", chunks[b"IHDR"])
    return w, h, color, zlib.decompress(chunks[b"IDAT"])


@pytest.mark.parametrize("shape", [(5, 7), (4, 3, 3)])
def test_png_round_trip(shape: tuple[int, ...]) -> None:
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, shape, dtype=np.uint8)
    w, h, color, raw = _read_png(png_bytes(img))
    assert (w, h, color) == (shape[1], shape[0], 0 if len(shape) == 2 else 2)
    rows = np.frombuffer(raw, np.uint8).reshape(h, -1)
    assert (rows[:, 0] == 0).all() and np.array_equal(rows[:, 1:].reshape(img.shape), img)
    small, k = thumbnail(img, 2)
    assert max(small.shape[:2]) <= 2 and k > 1


def test_flat_tables_do_not_load_the_reports() -> None:
    """``to_parquet`` needs ``_tables`` only: the checks, the plan and jinja2 load on first use."""
    probe = (
        "import sys, gantry.report as r\n"
        "print(sorted(m for m in ('jinja2', 'gantry.plan', 'gantry.report._checks') "
        "if m in sys.modules))\n"
        "r.CHECKS, r.write_manifest_html\n"
        "print('jinja2' in sys.modules and 'gantry.report._checks' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert out.stdout.split("\n")[:2] == ["[]", "True"]


def test_report_public_api() -> None:
    import gantry.report

    assert gantry.report.__all__ == [
        "ACTION_NAMES",
        "CHECKS",
        "LEVELS",
        "REPORT_FILES",
        "Chart",
        "Check",
        "ComplianceReport",
        "audit_table",
        "bar_chart",
        "compliance_report",
        "histogram",
        "pass_fail_bar",
        "schema_of_level",
        "text_bars",
        "to_parquet",
        "to_polars",
        "write_audit_report",
        "write_manifest_html",
    ]
    assert list(gantry.report.CHECKS) == [
        "readable", "provenance", "removed", "replaced", "uids", "private", "markers",
        "identifying-values", "redaction", "burned-in",
    ]  # fmt: skip
