"""match_machines: config machines → the instances they made, vectorised."""

from __future__ import annotations

from typing import Any

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gantry.audit import match_machines
from gantry.config import load_config

INSTANCES = pl.LazyFrame(
    {
        "file_id": [1, 2, 3, 4, 5],
        "Manufacturer": ["Sonoria", "SONORIA ", "RadiCorp", "RadiCorp", None],
        "ManufacturerModelName": ["Sonoria S8", "sonoria s8", "CR-Reader 900", "DX Flat 43", None],
        "DeviceSerialNumber": ["US-1", "US-2", "SN77", "SN78", "SN77"],
        "Rows": [480, 600, 2500, 3000, 10],
        "Columns": [640, 800, 2048, 2500, 10],
    }
)


def matched(machines: Any, instances: pl.LazyFrame = INSTANCES) -> dict[int, str]:
    out = match_machines(instances, machines).collect()
    assert out.columns == ["file_id", "machine_name", "zones", "fill"]
    return dict(out.select("file_id", "machine_name").iter_rows())


@pytest.mark.parametrize(
    ("match", "expected"),
    [
        ({"manufacturer": "sonoria", "model": "SONORIA S8"}, {1: "m", 2: "m"}),
        ({"manufacturer": "sonoria", "model": "s8"}, {}),  # equals is the default
        ({"manufacturer": "sonor", "model": "s8", "mode": "contains"}, {1: "m", 2: "m"}),
        ({"manufacturer": "sonoria", "model": "sonoria s8", "rows": 480}, {1: "m"}),
        ({"manufacturer": "sonoria", "rows": 600, "columns": 800}, {2: "m"}),
        ({"serial_number": "sn77"}, {3: "m", 5: "m"}),
        ({"serial_number": "77", "mode": "contains"}, {3: "m", 5: "m"}),
        # every given field must match (one unit of one model)
        ({"serial_number": "SN77", "manufacturer": "radicorp"}, {3: "m"}),
        ({"serial_number": "US-1", "manufacturer": "radicorp"}, {}),
    ],
)
def test_match_modes(match: dict[str, Any], expected: dict[int, str]) -> None:
    machines = [{"name": "m", "match": match, "redaction_zones": [[0, 10, 0, 10]]}]
    assert matched(machines) == expected


def test_first_matching_entry_wins_and_zones_come_along() -> None:
    machines = [
        {"name": "by-serial", "match": {"serial_number": "SN77"}, "redaction_zones": [[0, 50, 0, 300]], "fill": 0},
        {"name": "all-radicorp", "match": {"manufacturer": "radicorp", "mode": "contains"},
         "redaction_zones": [[0, 20, 0, 20], [30, 40, 0, 20]]},
    ]  # fmt: skip
    out = match_machines(INSTANCES, machines).collect().sort("file_id")
    assert out["machine_name"].to_list() == ["by-serial", "all-radicorp", "by-serial"]
    assert out["zones"].to_list() == [
        [[0, 50, 0, 300]],
        [[0, 20, 0, 20], [30, 40, 0, 20]],
        [[0, 50, 0, 300]],
    ]
    assert out["fill"].to_list() == [0, None, 0]


def test_config_objects_and_missing_columns() -> None:
    cfg = load_config(
        {
            "machines": [
                {
                    "name": "us-room-2",
                    "match": {"manufacturer": "Sonoria", "model": "Sonoria S8"},
                    "redaction_zones": [[0, 40, 0, 640]],
                    "fill": 0,
                }
            ]
        }
    )
    assert matched(cfg.machines) == {1: "us-room-2", 2: "us-room-2"}
    bare = pl.LazyFrame({"file_id": [1], "Manufacturer": ["Sonoria"]})
    assert matched(cfg.machines, bare) == {}


def test_same_answer_as_the_config_expression() -> None:
    cfg = load_config(
        {
            "machines": [
                {
                    "name": "a",
                    "match": {"manufacturer": "radicorp", "mode": "contains", "rows": 2500},
                },
                {"name": "b", "match": {"serial_number": "us-2", "manufacturer": "sonoria"}},
                {"name": "c", "match": {"model": "SONORIA S8"}},
            ]
        }
    )
    df = INSTANCES.collect()
    for machine in cfg.machines:
        expected = set(df.filter(machine.match.expr())["file_id"])
        assert set(match_machines(INSTANCES, [machine]).collect()["file_id"]) == expected


@pytest.mark.parametrize("machines", [None, [], ()])
def test_no_machines(machines: Any) -> None:
    out = match_machines(INSTANCES, machines).collect()
    assert out.is_empty()
    assert out.schema["zones"] == pl.List(pl.List(pl.Int64))


_TEXT = st.sampled_from(
    ["Sonoria", "SONORIA ", "sonoria s8", "RadiCorp", "CR-Reader 900", "", None]
)


@settings(max_examples=60, deadline=None)
@given(
    rows=st.lists(
        st.tuples(_TEXT, _TEXT, _TEXT, st.sampled_from([480, 2500, None])), min_size=1, max_size=8
    ),
    match=st.fixed_dictionaries(
        {},
        optional={
            "serial_number": st.sampled_from(["sonoria", "900", "S8"]),
            "manufacturer": st.sampled_from(["sonoria", "radicorp", "corp"]),
            "model": st.sampled_from(["sonoria s8", "s8", "cr-reader 900"]),
            "rows": st.sampled_from([480, 2500]),
            "mode": st.sampled_from(["equals", "contains"]),
        },
    ),
)
def test_property_agrees_with_the_config_expression(
    rows: list[tuple[str | None, str | None, str | None, int | None]], match: dict[str, Any]
) -> None:
    """Whatever the instances and the entry, the same instances match as in the config."""
    if not set(match) - {"mode"}:
        return  # the config refuses an entry that matches on nothing
    cfg = load_config({"machines": [{"name": "m", "match": match}]})
    df = (
        pl.DataFrame(
            rows,
            schema={
                "Manufacturer": pl.String,
                "ManufacturerModelName": pl.String,
                "DeviceSerialNumber": pl.String,
                "Rows": pl.Int64,
            },
            orient="row",
        )
        .with_row_index("file_id")
        .with_columns(pl.col("file_id").cast(pl.Int64), pl.lit(640).alias("Columns"))
    )
    expected = set(df.filter(cfg.machines[0].match.expr())["file_id"])
    assert set(match_machines(df.lazy(), cfg.machines).collect()["file_id"]) == expected


def test_conditions_drive_audit_plan_and_export(tmp_path: Any) -> None:
    """A `conditions` entry resolves burned-in text, plans REDACT and blanks the zone."""
    import pydicom

    from gantry import Session
    from gantry.testing import decode_pixels, make_instance

    for i, desc in enumerate(["Dose Report", "Abdomen"]):
        make_instance(
            tmp_path / "dicom" / f"{i}.dcm",
            modality="SC",
            rows=64,
            columns=64,
            seed=i,
            SeriesDescription=desc,
            BurnedInAnnotation="YES",
        )
    cfg = load_config(
        {
            "machines": [
                {
                    "name": "dose screens",
                    "match": {
                        "conditions": 'SeriesDescription.containsIgnoreCase("dose") * '
                        '!Modality.equals("US") * BurnedInAnnotation.equals("YES")'
                    },
                    "redaction_zones": [[0, 16, 0, 64]],
                }
            ]
        }
    )
    with pytest.raises(ValueError, match="elements table"):
        cfg.machines[0].match.expr()
    with Session(tmp_path / "s.db") as s:
        s.ingest(tmp_path / "dicom", workers=1, progress=False)
        s.anonymize(cfg)
        redact = s.sql(
            "SELECT i.SeriesDescription FROM plan p JOIN instances i USING (file_id) "
            "WHERE p.action = 'REDACT'"
        )
        assert redact["SeriesDescription"].to_list() == ["Dose Report"]
        result = s.export(tmp_path / "out", config=cfg, workers=1, progress=False)
    assert (result.exported, result.excluded.height) == (1, 1)  # the other: no zone
    (written,) = (tmp_path / "out").rglob("*.dcm")
    pixels = decode_pixels(pydicom.dcmread(written))
    assert not pixels[:16].any() and pixels[16:].any()
