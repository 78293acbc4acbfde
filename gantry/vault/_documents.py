"""Identity documents: one JSON text per patient, built with joins and a ``group_by``.

A document holds what re-identifies a pseudonymised patient::

    {"format": "gantry-identity/1", "pseudonym": "ANON_0001", "PatientID": "…",
     "PatientName": ["…"], "PatientBirthDate": ["19600101"], "PatientSex": ["F"],
     "OtherPatientIDs": [], "AccessionNumber": ["…", "…"],
     "instances": 12,
     "StudyInstanceUID": {"old": ["<original>", …], "new": ["<remapped>", …]},
     "SeriesInstanceUID": {"old": […], "new": […]},
     "SOPInstanceUID": {"old": […], "new": […]}}

Attribute values are the distinct non-empty values over the patient's instances,
sorted; each UID level holds two parallel lists, the distinct original UIDs and
their new UIDs from the plan (the original itself when the plan keeps it).

Everything is computed over whole columns: one scan of ``instances``, one filtered
scan of ``plan`` whose values are found by binary search on ``file_id``, then the
instances grouped in runs, one per patient (their order within a patient kept).
Each UID level's arrays are slices of one quoted-text buffer, one slice per run (UIDs
need no JSON escaping; values that would are written by Polars' JSON encoder instead).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl
import pyarrow as pa

from gantry.errors import VaultError
from gantry.store import Store

DOCUMENT_FORMAT = "gantry-identity/1"
IDENTITY_ATTRIBUTES = (
    "PatientName",
    "PatientBirthDate",
    "PatientSex",
    "OtherPatientIDs",
    "AccessionNumber",
)
"""Attributes copied (distinct values) into each identity document, besides PatientID."""
UID_TAGS = {
    "StudyInstanceUID": "0020000D",
    "SeriesInstanceUID": "0020000E",
    "SOPInstanceUID": "00080018",
}
"""The UIDs whose original → new mapping each document records, with their plan paths."""
PATIENT_ID_PATH = "00100020"


@dataclass(frozen=True)
class Documents:
    """What :func:`identity_documents` built.

    ``frame`` has ``pseudonym, document`` (JSON text), sorted by pseudonym; ``uids``
    has ``row, new_uid``: the patient's new UIDs (the input of the lookup tags, maybe
    repeated), ``row`` being the patient's row in ``frame``.
    """

    frame: pl.DataFrame
    uids: pl.DataFrame
    instances: int
    skipped: int = 0
    """Instances left out: they have no PatientID element, hence no pseudonym."""


def _as_text(name: str, dtype: pl.DataType, names: set[str]) -> pl.Expr:
    """Column ``name`` as String (List(String) when multi-valued), keeping unparsed text."""
    col = pl.col(name)
    if isinstance(dtype, pl.List):
        inner = dtype.inner
        if inner == pl.Date:
            expr = col.list.eval(pl.element().dt.strftime("%Y%m%d"))
        else:
            expr = col.cast(pl.List(pl.String))
    elif dtype == pl.Date:
        expr = col.dt.strftime("%Y%m%d")
    else:
        expr = col.cast(pl.String)
    raw = f"{name}__raw"
    if raw in names and not isinstance(dtype, pl.List):
        expr = pl.coalesce(expr, pl.col(raw).cast(pl.String))
    return expr.alias(name)


def patient_selection(store: Store, patients: list[str] | None, query: str | None) -> pl.Expr:
    """An expression over ``PatientID`` selecting the patients to lock."""
    if patients is not None and query is not None:
        raise VaultError("pass `patients` or `query`, not both")
    if query is not None:
        chosen = store.sql(
            f"SELECT DISTINCT coalesce(CAST(PatientID AS VARCHAR), '') AS pid "
            f"FROM instances WHERE {query}"
        )["pid"]
        return pl.col("PatientID").is_in(chosen.implode())
    if patients is not None:
        wanted = pl.Series("pid", [str(p) for p in patients], dtype=pl.String)
        return pl.col("PatientID").is_in(wanted.implode())
    return pl.lit(True)


def identity_documents(
    store: Store, *, patients: list[str] | None = None, query: str | None = None
) -> Documents:
    """Build the identity document of each selected patient (all, by ID, or by query).

    A patient selected by ``query`` is locked whole (every instance), so a later
    lock with another selection never drops UIDs from an earlier document.
    """
    tables = set(store.table_names())
    if "plan" not in tables:
        raise VaultError("no plan in this session: run `anonymize` first, then lock identities")
    lf = store.scan("instances")
    schema = lf.collect_schema()
    names = set(schema.names())
    wanted = ["PatientID", *IDENTITY_ATTRIBUTES, *UID_TAGS]
    cols = [
        _as_text(n, schema[n], names) if n in names else pl.lit(None, pl.String).alias(n)
        for n in wanted
    ]
    inst = (
        lf.select("file_id", *cols)
        .with_columns(pl.col("PatientID").fill_null(""))
        .filter(patient_selection(store, patients, query))
        .collect()
    )
    if patients is not None:
        missing = len(set(patients) - set(inst["PatientID"].unique().to_list()))
        if missing:
            raise VaultError(f"{missing} of the given `patients` are not in the index")
    if inst.height == 0:
        empty = pl.DataFrame(schema={"pseudonym": pl.String, "document": pl.String})
        return Documents(empty, pl.DataFrame(schema={"row": pl.UInt32, "new_uid": pl.String}), 0)

    inst_count = inst.height
    paths = [PATIENT_ID_PATH, *UID_TAGS.values()]
    plan = (
        store.scan("plan")
        .filter(pl.col("path").is_in(paths) & pl.col("action").is_in(["P", "R", "U"]))
        .select("file_id", pl.col("path").cast(pl.Enum(paths)), "new_value")
        .collect(engine="streaming")  # a third of the in-memory engine's time here
    )
    # one column of new values per planned path, looked up by binary search of the
    # path's sorted file_ids (no hash join; the first planned row of a file wins). Only
    # integers are sorted: the plan's text is gathered once, for the instances
    codes = plan["path"].to_physical()
    fids = inst["file_id"]
    looked_up = []
    for i, path in enumerate(paths):
        rows = (codes == i).arg_true()
        keys = pl.DataFrame({"k": plan["file_id"].gather(rows)})
        rows = rows.gather(keys.select(pl.arg_sort_by("k", maintain_order=True)).to_series())
        looked_up.append(_lookup(plan, rows, fids).alias(f"_new_{path}"))
    del plan, codes
    inst = inst.with_columns(looked_up)
    # patients get a dense integer key: every group_by and join below hashes integers
    patients_frame = inst.group_by("PatientID").agg(
        pl.col(f"_new_{PATIENT_ID_PATH}").drop_nulls().first().alias("pseudonym")
    )
    # instances without a PatientID element get no pseudonym (nothing to put it in):
    # there is no identity to lock for them
    no_id = patients_frame.filter((pl.col("PatientID") == "") & pl.col("pseudonym").is_null())
    patients_frame = patients_frame.filter(
        pl.col("pseudonym").is_not_null() | (pl.col("PatientID") != "")
    )
    unplanned = patients_frame["pseudonym"].null_count()
    if unplanned:
        raise VaultError(
            f"{unplanned} selected patients have no pseudonym in the plan: PatientID must "
            "be pseudonymised or replaced (action P or R), and the plan must be newer than the index "
            "(run `anonymize` again)"
        )
    late = inst.filter((pl.col("PatientID") != "") & pl.col(f"_new_{PATIENT_ID_PATH}").is_null())
    if late.height:
        raise VaultError(
            f"{late.height} instances of the selected patients are not in the plan "
            "(ingested after it was built): run `anonymize` again"
        )
    # patients get a dense integer key ``_p`` and the instances are grouped by it (their
    # order within a patient kept): each per-patient list below is then a run of rows
    inst, patients_frame = _patient_runs(inst, patients_frame)
    n = patients_frame.height
    skipped = inst_count - inst.height if no_id.height else 0

    # the attributes hardly vary within a patient: drop repeated rows (first the ones
    # equal to the row before, a cheap comparison) before the per-patient distinct lists
    attrs = inst.select("_p", *IDENTITY_ATTRIBUTES)
    attrs = attrs.filter(_new_run(*attrs.columns)).unique()
    docs = (
        inst.group_by("_p")
        .agg(pl.col("PatientID").first(), pl.len().alias("instances"))
        .join(
            attrs.group_by("_p").agg(*(_distinct(n, attrs.schema[n]) for n in IDENTITY_ATTRIBUTES)),
            on="_p",
        )
        .join(patients_frame.select("_p", "pseudonym"), on="_p")
        .sort("_p")
        .select("_p", "pseudonym", "PatientID", *IDENTITY_ATTRIBUTES, "instances")
    )
    flat = []
    levels = {}
    for kw, tag in UID_TAGS.items():
        # original → new pairs, distinct per patient (first seen kept, in instance order);
        # a UID the plan keeps maps to itself
        pairs = inst.select(
            "_p", pl.col(kw).alias("old"), pl.coalesce(f"_new_{tag}", kw).alias("new")
        ).filter(pl.col("old").is_not_null() & (pl.col("old") != ""))
        pairs = pairs.filter(_new_run("_p", "old"))  # a series' instances usually follow
        # SOP UIDs are usually all distinct already: distinct hashes prove it (cheaper
        # than counting distinct text); any repeated hash falls back to the exact unique
        if pairs["old"].hash().n_unique() < pairs.height:
            pairs = pairs.unique(["_p", "old"], keep="first", maintain_order=True)
        flat.append(pairs.select("_p", pl.col("new").alias("new_uid")))
        for side in ("old", "new"):
            levels[f"_{kw}_{side}"] = _joined_runs(pairs[side], pairs["_p"], n)
    docs = docs.with_columns(**levels)
    head = pl.struct(
        pl.lit(DOCUMENT_FORMAT).alias("format"),
        "pseudonym",
        "PatientID",
        *IDENTITY_ATTRIBUTES,
        "instances",
    ).struct.json_encode()
    # splice the UID arrays (``,"a","b"`` without the first comma) into the JSON object
    document = pl.concat_str(
        head.str.strip_suffix("}"),
        *(
            pl.concat_str(
                pl.lit(f',"{kw}":{{"old":['),
                pl.col(f"_{kw}_old").str.slice(1),
                pl.lit('],"new":['),
                pl.col(f"_{kw}_new").str.slice(1),
                pl.lit("]}"),
            )
            for kw in UID_TAGS
        ),
        pl.lit("}"),
    )
    frame = (
        docs.select("_p", "pseudonym", document.alias("document"))
        .sort("pseudonym")
        .with_row_index("row")
    )
    # each patient's row in ``frame``, looked up by its ``_p`` (no join)
    row_of = frame.select(pl.col("row").sort_by("_p"))["row"].to_numpy()
    flat_uids = pl.concat(flat)
    new_uids = pl.DataFrame(
        {"row": row_of[flat_uids["_p"].to_numpy()], "new_uid": flat_uids["new_uid"]},
        schema={"row": pl.UInt32, "new_uid": pl.String},
    )
    return Documents(frame.select("pseudonym", "document"), new_uids, inst.height, skipped)


def _new_run(*names: str) -> pl.Expr:
    """True on each row that differs from the row before in one of ``names`` (nulls equal)."""
    differs = pl.any_horizontal(pl.col(n).ne_missing(pl.col(n).shift()) for n in names)
    return differs.fill_null(True) | (pl.int_range(pl.len()) == 0)


def _patient_runs(inst: pl.DataFrame, patients: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    """``inst`` with ``_p`` (0..n-1) grouped in runs, and ``patients`` with its ``_p``.

    The index usually holds a patient's instances together: then ``_p`` is the run
    number (no string join, no sort). Otherwise each patient's row numbers give the
    key, and the instances are sorted by it (stably: their order within a patient is kept).
    """
    runs = inst.select(pl.col("PatientID").rle_id().alias("_p"))["_p"]
    heads = inst["PatientID"].filter(_first_of_runs(runs))
    if heads.len() == patients.height and heads.n_unique() == heads.len():
        inst = inst.with_columns(runs)
        order = pl.DataFrame({"PatientID": heads}).with_row_index("_p")
        patients = order.join(patients, on="PatientID").sort("_p")
        return inst, patients.with_columns(pl.col("_p").cast(pl.UInt32))
    # one pass over the text: each patient's row numbers, then one integer sort
    groups = (
        inst.select("PatientID")
        .with_row_index("i")
        .group_by("PatientID")
        .agg("i")
        .join(patients, on="PatientID")  # per patient: drops those without a pseudonym
        .with_row_index("_p")
    )
    dropped = np.iinfo(np.uint32).max
    p_of_row = np.full(inst.height, dropped, dtype=np.uint32)
    sizes = groups["i"].list.len().to_numpy()
    p_of_row[groups["i"].explode().to_numpy()] = np.repeat(np.arange(groups.height), sizes)
    inst = inst.with_columns(pl.Series("_p", p_of_row)).filter(pl.col("_p") != dropped)
    inst = inst.sort("_p", maintain_order=True)
    return inst, groups.drop("i").with_columns(pl.col("_p").cast(pl.UInt32))


def _first_of_runs(runs: pl.Series) -> pl.Series:
    """True on the first row of each run of equal values of the sorted ``runs``."""
    return (runs != runs.shift(1)).fill_null(True)


def _lookup(plan: pl.DataFrame, rows: pl.Series, file_ids: pl.Series) -> pl.Series:
    """``plan``'s ``new_value`` for each of ``file_ids`` (null where it has no row), from
    the plan ``rows`` of one path, sorted by ``file_id``."""
    if rows.is_empty():
        return pl.Series(None, [None] * len(file_ids), dtype=pl.String)
    keys = plan["file_id"].gather(rows)
    at = keys.search_sorted(file_ids, side="left").clip(0, len(keys) - 1)
    found = keys.gather(at) == file_ids
    if found.all():
        return plan["new_value"].gather(rows.gather(at))
    return pl.select(
        pl.when(found)
        .then(plan["new_value"].gather(rows.gather(at)))
        .otherwise(pl.lit(None, pl.String))
    ).to_series()


def _joined_runs(values: pl.Series, runs: pl.Series, n: int) -> pl.Series:
    """Per run, its values as JSON strings each led by a comma (``,"a","b"``; ``""``
    when the run has none): ``n`` texts, the ``i``-th of the ``values`` whose
    (sorted, ``0 <= runs < n``) run number is ``i``.

    Each value is written with its comma and quotes, then the rows of a run are one
    slice of that text's buffer: the texts are new offsets into it, no copy per run.
    UIDs only hold digits and dots, so they are first quoted as they are; when the
    text then holds a character JSON must escape (a quote beyond the two per value,
    a backslash, a control character) Polars' JSON encoder writes them instead.

    Examples
    --------
    >>> values = pl.Series(["1.2", "3.4", 'a"b'])
    >>> for text in _joined_runs(values, pl.Series([0, 0, 2]), 3):
    ...     print(repr(text))
    ',"1.2","3.4"'
    ''
    ',"a\\\\"b"'
    """
    frame = pl.DataFrame({"v": values})
    arr = _one_chunk(frame.select(pl.concat_str(pl.lit(',"'), "v", pl.lit('"'))).to_series())
    if not _plain(arr, quotes=2 * len(arr)):
        encoded = pl.struct("v").struct.json_encode().str.strip_prefix('{"v":')
        text = frame.select(pl.concat_str(pl.lit(","), encoded.str.strip_suffix("}")))
        arr = _one_chunk(text.to_series())
    offsets = np.frombuffer(arr.buffers()[1], dtype=np.int64)[
        arr.offset : arr.offset + len(arr) + 1
    ]
    counts = np.bincount(runs.to_numpy(), minlength=n)[:n]
    bounds = np.concatenate([[0], np.cumsum(counts)])
    joined = pa.LargeStringArray.from_buffers(
        n, pa.py_buffer(np.ascontiguousarray(offsets[bounds])), arr.buffers()[2]
    )
    return pl.Series(values.name, joined).cast(pl.String)


def _one_chunk(text: pl.Series) -> pa.LargeStringArray:
    arr = text.to_arrow()
    arr = pa.concat_arrays(arr.chunks) if isinstance(arr, pa.ChunkedArray) else arr
    return arr.cast(pa.large_string())


def _plain(arr: pa.LargeStringArray, *, quotes: int) -> bool:
    """True when ``arr``'s text holds ``quotes`` quotes, no backslash, no control character."""
    if len(arr) == 0:
        return True
    offsets = np.frombuffer(arr.buffers()[1], dtype=np.int64)
    lo, hi = int(offsets[arr.offset]), int(offsets[arr.offset + len(arr)])
    data = np.frombuffer(arr.buffers()[2], dtype=np.uint8)[lo:hi]
    return (
        int(data.min(initial=0x20)) >= 0x20
        and np.count_nonzero(data == 0x22) == quotes
        and not np.count_nonzero(data == 0x5C)
    )


def _distinct(name: str, dtype: pl.DataType) -> pl.Expr:
    """Aggregation: the distinct non-empty values of ``name`` in the group, sorted."""
    col = pl.col(name)
    if isinstance(dtype, pl.List):
        col = col.list.explode(keep_nulls=False, empty_as_null=False)
    return col.filter(col.is_not_null() & (col != "")).unique().sort().alias(name)
