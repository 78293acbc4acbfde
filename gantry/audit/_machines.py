"""Match instances to the config's ``machines`` (devices with known burned-in text zones).

A machine entry of the config names a device and where it burns text into the
pixels::

    machines:
      - name: sonoria-s8
        match: {manufacturer: Sonoria, model: "S8", mode: contains}
        redaction_zones: [[0, 40, 0, 640]]     # [row1, row2, col1, col2]
        fill: 0
      - name: er-xray
        match: {serial_number: SN1234567}
        redaction_zones: [[0, 60, 0, 300]]

An instance matches a machine when every field of the entry's ``match``
matches: ``DeviceSerialNumber`` against ``serial_number`` (one unit),
``Manufacturer`` and ``ManufacturerModelName`` against ``manufacturer`` and
``model`` (every unit of a model), ``Rows`` and ``Columns`` equal to ``rows``
and ``columns`` — the rule ``docs/config.md`` documents.  Text comparisons
ignore case and surrounding blanks; ``mode`` is ``equals`` (default) or
``contains`` (the configured text occurs in the instance's value).  A missing
or null attribute never matches.  The first matching entry wins.

The matching is one Polars expression (a ``when/then`` chain over the
machines), never a loop over instances; the plan stage reuses it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

import polars as pl

from gantry.config._conditions import compile_condition, condition_paths, parse_condition

if TYPE_CHECKING:
    from polars._typing import PolarsDataType

__all__ = ["MATCH_SCHEMA", "Machine", "match_machines", "normalise_machines"]

#: Schema of the frame :func:`match_machines` returns.
_MATCH_COLUMNS: dict[str, PolarsDataType] = {
    "file_id": pl.Int64,
    "machine_name": pl.String,
    "zones": pl.List(pl.List(pl.Int64)),
    "fill": pl.Int64,
}
MATCH_SCHEMA: Final = pl.Schema(_MATCH_COLUMNS)


@dataclass(frozen=True, slots=True)
class Machine:
    """One ``machines`` entry, normalised (attribute and dict configs alike).

    Attributes
    ----------
    name : str
        The entry's name.
    serial_number, manufacturer, model : str or None
        What to match (as written in the config).
    rows, columns : int or None
        Image size the entry applies to (manufacturer + model matches only).
    mode : {"equals", "contains"}
        How text values are compared (case-insensitive either way).
    zones : tuple of (r1, r2, c1, c2)
        Redaction rectangles, rows ``r1:r2`` and columns ``c1:c2``.
    fill : int or None
        Pixel value the zones are filled with (None: the plan's default).
    conditions : str or None
        Tests of element values (``match.conditions``, docs/config.md), read from
        the ``elements`` table.
    """

    name: str
    serial_number: str | None = None
    manufacturer: str | None = None
    model: str | None = None
    rows: int | None = None
    columns: int | None = None
    mode: str = "equals"
    zones: tuple[tuple[int, int, int, int], ...] = ()
    fill: int | None = None
    conditions: str | None = None


def _get(obj: Any, key: str, default: Any = None) -> Any:
    """Read ``key`` from a mapping or an attribute of an object."""
    if obj is None:
        return default
    if isinstance(obj, Mapping):
        return obj.get(key, default)
    return getattr(obj, key, default)


def _text(value: Any) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    return text or None


def _int(value: Any) -> int | None:
    return None if value is None else int(value)


def _fill(value: Any) -> int | None:
    if value is None or isinstance(value, str):
        return None  # named fills ("black", "mean") are the plan's business
    if isinstance(value, Sequence):
        return int(value[0]) if value else None
    return int(value)


def normalise_machines(machines: Any) -> list[Machine]:
    """Turn the config's ``machines`` (objects or dicts) into :class:`Machine` entries.

    Examples
    --------
    >>> [m.name for m in normalise_machines([{"name": "a", "match": {"serial_number": "X1"}}])]
    ['a']
    >>> normalise_machines(None)
    []
    """
    if not machines:
        return []
    if isinstance(machines, Mapping):  # {name: entry}
        machines = [
            {"name": k, **dict(v)} if isinstance(v, Mapping) else v for k, v in machines.items()
        ]
    out: list[Machine] = []
    for i, entry in enumerate(machines):
        if isinstance(entry, Machine):
            out.append(entry)
            continue
        match = _get(entry, "match", None) or entry
        zones_raw = _get(entry, "redaction_zones", None) or _get(entry, "zones", None) or ()
        zones = tuple(tuple(int(v) for v in zone) for zone in zones_raw)
        out.append(
            Machine(
                name=str(_get(entry, "name", None) or f"machine-{i + 1}"),
                serial_number=_text(_get(match, "serial_number")),
                manufacturer=_text(_get(match, "manufacturer")),
                model=_text(_get(match, "model")),
                rows=_int(_get(match, "rows")),
                columns=_int(_get(match, "columns")),
                mode=str(_get(match, "mode", None) or "equals").lower(),
                zones=zones,  # type: ignore[arg-type]
                fill=_fill(_get(entry, "fill")),
                conditions=_text(_get(match, "conditions")),
            )
        )
    return out


def _optional(schema: pl.Schema, name: str, dtype: PolarsDataType) -> pl.Expr:
    """``pl.col(name)`` when the frame has it, else a typed null."""
    if name in schema:
        return pl.col(name).cast(dtype, strict=False)
    return pl.lit(None, dtype=dtype)


def _text_match(column: pl.Expr, wanted: str, mode: str) -> pl.Expr:
    """Case-insensitive ``equals`` or ``contains`` of one configured text."""
    value = column.str.strip_chars().str.to_uppercase()
    target = wanted.strip().upper()
    if mode == "contains":
        return value.str.contains(target, literal=True).fill_null(False)
    return (value == target).fill_null(False)


def _condition(m: Machine) -> pl.Expr | None:
    """The boolean expression that says an instance is made by machine ``m``.

    Every field the entry gives must match (as ``MachineMatch.expr()`` of the
    config does): a serial number names one unit; manufacturer + model (and
    image size) name every unit of a model; an entry giving both narrows to
    that unit of that model.
    """
    parts: list[pl.Expr] = []
    if m.serial_number is not None:
        parts.append(_text_match(pl.col("_serial"), m.serial_number, m.mode))
    if m.manufacturer is not None:
        parts.append(_text_match(pl.col("_manufacturer"), m.manufacturer, m.mode))
    if m.model is not None:
        parts.append(_text_match(pl.col("_model"), m.model, m.mode))
    if m.rows is not None:
        parts.append((pl.col("_rows") == m.rows).fill_null(False))
    if m.columns is not None:
        parts.append((pl.col("_columns") == m.columns).fill_null(False))
    if m.conditions is not None:
        node = parse_condition(m.conditions, key=f"machines[{m.name!r}].match.conditions")
        parts.append(compile_condition(node, _element_text))
    if not parts:
        return None  # an entry that matches nothing (the config validator refuses these)
    return pl.all_horizontal(parts)


def _element_text(path: str) -> pl.Expr:
    """The text of the element at ``path`` (the empty text when the file lacks it)."""
    return pl.col(f"_element:{path}").fill_null("")


def _element_columns(elements: pl.LazyFrame, paths: list[str]) -> pl.LazyFrame:
    """``file_id`` and one text column per element path (only files holding one)."""
    return (
        elements.filter(pl.col("path").is_in(paths))
        .select("file_id", "path", pl.col("value").cast(pl.String))
        .group_by("file_id")
        .agg(
            pl.col("value").filter(pl.col("path") == p).first().alias(f"_element:{p}")
            for p in paths
        )
    )


def match_machines(
    instances: pl.LazyFrame, machines: Any, *, elements: pl.LazyFrame | None = None
) -> pl.LazyFrame:
    """Which configured machine made each instance, and its redaction zones.

    Parameters
    ----------
    instances : LazyFrame
        The ``instances`` table (``file_id``, ``DeviceSerialNumber``,
        ``Manufacturer``, ``ManufacturerModelName``, ``Rows``, ``Columns``;
        missing columns count as null).
    machines : sequence
        The config's ``machines`` entries (objects, dicts or :class:`Machine`).
    elements : LazyFrame, optional
        The ``elements`` table, read by entries with ``conditions`` (required then).

    Returns
    -------
    LazyFrame
        ``file_id, machine_name, zones, fill`` for the instances that match an
        entry (the first entry that matches wins); ``zones`` is a list of
        ``[r1, r2, c1, c2]``.

    Examples
    --------
    >>> inst = pl.LazyFrame({
    ...     "file_id": [1, 2, 3],
    ...     "Manufacturer": ["Sonoria", "RadiCorp", "sonoria "],
    ...     "ManufacturerModelName": ["Sonoria S8", "CR-Reader 900", "SONORIA S8"],
    ...     "DeviceSerialNumber": ["A", "SN77", "B"],
    ... })
    >>> machines = [
    ...     {"name": "us", "match": {"manufacturer": "sonoria", "model": "s8", "mode": "contains"},
    ...      "redaction_zones": [[0, 40, 0, 64]]},
    ...     {"name": "cr", "match": {"serial_number": "sn77"}, "redaction_zones": [[0, 8, 0, 8]], "fill": 0},
    ... ]
    >>> match_machines(inst, machines).collect()
    shape: (3, 4)
    ┌─────────┬──────────────┬─────────────────┬──────┐
    │ file_id ┆ machine_name ┆ zones           ┆ fill │
    │ ---     ┆ ---          ┆ ---             ┆ ---  │
    │ i64     ┆ str          ┆ list[list[i64]] ┆ i64  │
    ╞═════════╪══════════════╪═════════════════╪══════╡
    │ 1       ┆ us           ┆ [[0, 40, … 64]] ┆ null │
    │ 2       ┆ cr           ┆ [[0, 8, … 8]]   ┆ 0    │
    │ 3       ┆ us           ┆ [[0, 40, … 64]] ┆ null │
    └─────────┴──────────────┴─────────────────┴──────┘
    """
    entries = normalise_machines(machines)
    schema = instances.collect_schema()
    conditions = [(i, c) for i, m in enumerate(entries) if (c := _condition(m)) is not None]
    if not conditions:
        return pl.LazyFrame(schema=MATCH_SCHEMA)
    index: pl.Expr = pl.lit(None, dtype=pl.Int32)
    for i, cond in reversed(conditions):
        index = pl.when(cond).then(pl.lit(i, dtype=pl.Int32)).otherwise(index)
    table = pl.LazyFrame(
        {
            "_machine": list(range(len(entries))),
            "machine_name": [m.name for m in entries],
            "zones": [[list(z) for z in m.zones] for m in entries],
            "fill": [m.fill for m in entries],
        },
        schema={"_machine": pl.Int32, **{k: v for k, v in MATCH_SCHEMA.items() if k != "file_id"}},
    )
    frame = instances.select(
        pl.col("file_id"),
        _optional(schema, "DeviceSerialNumber", pl.String).alias("_serial"),
        _optional(schema, "Manufacturer", pl.String).alias("_manufacturer"),
        _optional(schema, "ManufacturerModelName", pl.String).alias("_model"),
        _optional(schema, "Rows", pl.Int64).alias("_rows"),
        _optional(schema, "Columns", pl.Int64).alias("_columns"),
    )
    paths = sorted(
        {
            p
            for m in entries
            if m.conditions is not None
            for p in condition_paths(parse_condition(m.conditions))
        }
    )
    if paths:
        if elements is None:
            raise ValueError("machines with `conditions` need the `elements` table")
        frame = frame.join(
            _element_columns(elements, paths), on="file_id", how="left", maintain_order="left"
        )
    return (
        frame.select("file_id", index.alias("_machine"))
        .filter(pl.col("_machine").is_not_null())
        .join(table, on="_machine", how="inner", maintain_order="left")
        .select(list(MATCH_SCHEMA))
    )
