"""Which original values verification searches a written file for, per instance.

:func:`verification_tokens` turns the elements of the index and the action the
plan gives each one into tokens (see :mod:`gantry.export._leaks` for how they
are matched):

* *identity* tokens: values of the patient-identity attributes in
  :data:`IDENTITY_TAGS` (at any depth) that the plan does not keep — name
  parts, IDs, issuers, accession number, birth date, address, phone numbers —
  and every value the plan pseudonymises;
* *value* tokens: every other text value of an element the plan removes,
  empties or replaces (elements inside a removed sequence included).

A token equal to the text that replaced it is dropped (an original name
``ANONYMIZED`` is no leak), and so is a value token the plan itself writes
elsewhere in the same instance.  Tokens the config acknowledges (attribute and
keyed value hash) are dropped too.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

import polars as pl

from gantry.plan._keys import keyed_hex
from gantry.plan._match import joined_names, long_enough
from gantry.plan._paths import sequence_ancestors

__all__ = [
    "IDENTITY_TAGS",
    "TEXT_FILTER",
    "TOKEN_SCHEMA",
    "identity_in_kept",
    "value_hash",
    "verification_tokens",
    "with_effective_actions",
]

IDENTITY_TAGS: Final = {
    "00100010": "PatientName",
    "00100020": "PatientID",
    "00100021": "IssuerOfPatientID",
    "00101000": "OtherPatientIDs",
    "00101001": "OtherPatientNames",
    "00101005": "PatientBirthName",
    "00101060": "PatientMotherBirthName",
    "00100030": "PatientBirthDate",
    "00101040": "PatientAddress",
    "00102154": "PatientTelephoneNumbers",
    "00102155": "PatientTelecomInformation",
    "00080050": "AccessionNumber",
    "00101090": "MedicalRecordLocator",
    "00380010": "AdmissionID",
    "00400031": "LocalNamespaceEntityID",
    "00400032": "UniversalEntityID",
}
"""Attributes whose values identify the patient: they must occur nowhere in the output."""

TOKEN_SCHEMA: Final = pl.Schema(
    {
        "file_id": pl.Int64(),
        "text": pl.String(),
        "identity": pl.Boolean(),
        "tag": pl.String(),
        "keyword": pl.String(),
        "digest": pl.String(),
    }
)

_NOT_TEXT: Final = (
    "US", "SS", "UL", "SL", "FL", "FD", "SV", "UV", "AT", "SQ",
    "OB", "OW", "OF", "OD", "OL", "OV", "UN",
)  # fmt: skip
TEXT_FILTER: Final = pl.col("value").is_not_null() & ~pl.col("vr").is_in(_NOT_TEXT)
"""Elements whose value can be a token (text, not numbers, sequences or bulk data)."""
_DUMMIES: Final = ("ANONYMIZED", "ANONYMOUS", "19000101", "19000101000000", "000000", "000Y")
_MIN_VALUE: Final = 4  # bytes: shorter values are too common to mean anything
_WELL_KNOWN: Final = "1.2.840.10008."


def value_hash(secret: bytes, text: str) -> str:
    """The keyed hash that names a value in a verification failure and an acknowledgement.

    Keyed with the session secret, so a short value (a birth date) cannot be
    recovered from it by trying candidates without the secret.

    Examples
    --------
    >>> value_hash(b"k", "STANDARD") == value_hash(b"k", "standard")
    True
    >>> len(value_hash(b"k", "STANDARD"))
    16
    """
    return keyed_hex(secret, "verification", text.upper(), 16)


def with_effective_actions(elements: pl.LazyFrame, plan: pl.LazyFrame) -> pl.LazyFrame:
    """``elements`` with ``action`` and ``new_value`` from the plan (``K``: no row).

    An element inside a sequence the plan removes, empties or replaces takes
    that sequence's action (the plan has no row for it).
    """
    rows = plan.filter(~pl.col("action").is_in(["A", "REDACT", "DEFACE"])).select(
        "file_id", "path", "action", "new_value"
    )
    el = elements.join(rows, on=["file_id", "path"], how="left")
    gone = rows.filter(pl.col("action").is_in(["X", "Z", "D"])).select(
        "file_id", pl.col("path").alias("_anc"), pl.col("action").alias("_anc_action")
    )  # (a dummy sequence keeps its first item: only the others are gone)
    # a row on an item path (``A[1]``, a removed SR content item) removes that item only
    item = pl.col("_anc").str.extract(r"\[(\d+)\]$", 1).cast(pl.Int64)
    gone = gone.with_columns(item.alias("_only"), pl.col("_anc").str.replace(r"\[\d+\]$", ""))
    inside = el.filter(
        pl.col("action").is_null() & pl.col("path").str.contains(".", literal=True)
    ).select("file_id", "path")
    # the ancestors of each distinct path, not of every element (instances share paths)
    ancestors = inside.select("path").unique().pipe(sequence_ancestors)
    nested = (
        inside.join(ancestors, on="path", how="inner")
        .join(gone, on=["file_id", "_anc"], how="inner")
        .filter((pl.col("_anc_action") != "D") | (pl.col("_item") > 0))
        .filter(pl.col("_only").is_null() | (pl.col("_only") == pl.col("_item")))
        .group_by("file_id", "path")
        .agg(pl.col("_anc_action").first().alias("_inherited"))
    )
    return (
        el.join(nested, on=["file_id", "path"], how="left")
        .with_columns(
            pl.coalesce("action", pl.when(pl.col("_inherited").is_not_null()).then(pl.lit("X")))
            .fill_null("K")
            .alias("action")
        )
        .drop("_inherited")
    )


def _split(values: pl.LazyFrame) -> pl.LazyFrame:
    """One row per multi-value item, plus name parts for PN; upper-case, trimmed."""
    items = (
        values.with_columns(pl.col("value").str.split("\\").alias("text"))
        .explode("text")
        .with_columns(pl.col("text").str.strip_chars(" \x00").str.to_uppercase())
    )
    parts = (
        items.filter(pl.col("vr") == "PN")
        .with_columns(
            pl.concat_list(
                pl.col("text").str.replace_all(r"[=^]", " ").str.split(" "),
                joined_names(pl.col("text")),
            ).alias("text")
        )
        .explode("text")
        .filter(long_enough(pl.col("text")))
    )
    whole = items.with_columns(pl.col("text").str.strip_chars("^= "))
    return pl.concat([whole, parts], how="vertical_relaxed").filter(
        (pl.col("text") != "")
        & ~pl.col("text").str.starts_with(_WELL_KNOWN)
        & ~pl.col("text").is_in(list(_DUMMIES))
    )


def verification_tokens(
    elements: pl.LazyFrame,
    *,
    secret: bytes,
    acknowledged: Iterable[tuple[str, str]] = (),
    written: pl.LazyFrame | None = None,
    identity_only: bool = False,
) -> pl.DataFrame:
    """The tokens to search each instance's output for (schema :data:`TOKEN_SCHEMA`).

    Parameters
    ----------
    elements : LazyFrame
        ``file_id, path, tag, keyword, vr, value, action, new_value`` for every
        element (``action`` ``K`` when kept; see :func:`with_effective_actions`).
    secret : bytes
        The session secret (keys :func:`value_hash`).
    acknowledged : iterable of (tag, value hash)
        Known false alarms from the config: dropped.
    written : LazyFrame, optional
        ``file_id, new_value``: every text the plan writes in each instance (a
        value token found there is dropped).
    identity_only : bool
        Only the identity tokens.
    """
    from gantry.plan._match import contains

    changed = elements.filter(
        (pl.col("action") != "K") & pl.col("value").is_not_null() & ~pl.col("vr").is_in(_NOT_TEXT)
    ).with_columns(
        (pl.col("tag").is_in(list(IDENTITY_TAGS)) | (pl.col("action") == "P")).alias("identity"),
        pl.col("new_value").fill_null("").str.to_uppercase().alias("_own"),
    )
    if identity_only:
        changed = changed.filter(pl.col("identity"))
    toks = (
        _split(changed)
        .filter(pl.col("identity") | (pl.col("text").str.len_bytes() >= _MIN_VALUE))
        .filter(  # identity numbers below 4 digits match too much to mean anything
            ~(
                pl.col("text").str.contains(r"^[0-9]+$")
                & (pl.col("text").str.len_bytes() < _MIN_VALUE)
            )
        )
    )
    cols = ["file_id", "text", "identity", "tag", "keyword", "_own"]
    frame = toks.select(cols).unique(["file_id", "text", "identity", "tag"]).collect()
    if frame.height == 0:
        return pl.DataFrame(schema=TOKEN_SCHEMA)
    # a value equal to (or inside) the text that replaced it is no leak
    own = frame.filter(pl.col("_own").str.contains(pl.col("text"), literal=True))
    drop = [
        (f, t, g)
        for f, t, g, o in own.select("file_id", "text", "tag", "_own").iter_rows()
        if contains(o, t)
    ]
    if written is not None:
        plan_text = (
            written.select("file_id", pl.col("new_value").str.to_uppercase().alias("_w"))
            .filter(pl.col("_w").is_not_null() & (pl.col("_w") != ""))
            .unique()
            .collect()
        )
        values = frame.filter(~pl.col("identity")).select("file_id", "text", "tag")
        patterns = values["text"].unique().to_list()
        if patterns and plan_text.height:
            # candidates from one Aho-Corasick pass over the written texts
            cand = (
                plan_text.with_columns(
                    pl.col("_w").str.extract_many(patterns, overlapping=True).alias("text")
                )
                .filter(pl.col("text").list.len() > 0)
                .explode("text")
                .unique(["file_id", "_w", "text"])
                .join(values, on=["file_id", "text"])
            )
            drop += [
                (f, t, g)
                for f, w, t, g in cand.select("file_id", "_w", "text", "tag").iter_rows()
                if contains(w, t)
            ]
    if drop:
        frame = frame.join(
            pl.DataFrame(drop, schema=["file_id", "text", "tag"], orient="row").unique(),
            on=["file_id", "text", "tag"],
            how="anti",
        )
    texts = frame["text"].unique().to_list()
    digests = pl.DataFrame(
        {"text": texts, "digest": [value_hash(secret, t) for t in texts]},
        schema={"text": pl.String, "digest": pl.String},
    )
    frame = frame.join(digests, on="text", how="left").with_columns(pl.col("keyword").fill_null(""))
    ack = list(acknowledged)
    if ack:
        frame = frame.join(
            pl.DataFrame(ack, schema=["tag", "digest"], orient="row"),
            on=["tag", "digest"],
            how="anti",
        )
    # an identity value wins over the same text as an ordinary value; otherwise the
    # lowest tag names it (the same choice in every run, so preview and export agree)
    frame = frame.sort(
        ["file_id", "text", "identity", "tag"], descending=[False, False, True, False]
    ).unique(["file_id", "text"], keep="first", maintain_order=True)
    return frame.select(list(TOKEN_SCHEMA)).cast(TOKEN_SCHEMA)


# coded strings (CS) hold defined terms, not identity: a patient named Perfusion does not
# make Image Type ORIGINAL\\PRIMARY\\PERFUSION a leak
_KEPT_TEXT: Final = ("AE", "AS", "DA", "DT", "LO", "LT", "PN", "SH", "ST", "TM", "UC", "UR", "UT")
_NUMBER_VRS: Final = ("DS", "IS")


def identity_in_kept(elements: pl.LazyFrame, tokens: pl.DataFrame) -> pl.DataFrame:
    """``file_id, path, vr, tag, keyword``: identity tokens inside values the plan keeps.

    ``tag, keyword`` name the identity attribute.  A number equal to an all-digit
    identity value inside a numeric element (``DS``, ``IS``) is a coincidence, not
    a hit.  Candidates come from one Aho-Corasick pass over the kept values, then
    the precise match decides.
    """
    from gantry.plan._match import contains

    schema = {
        "file_id": pl.Int64,
        "path": pl.String,
        "vr": pl.String,
        "tag": pl.String,
        "keyword": pl.String,
    }
    ident = tokens.filter(pl.col("identity")).select("file_id", "text", "tag", "keyword")
    if ident.height == 0:
        return pl.DataFrame(schema=schema)
    patterns = ident["text"].unique().to_list()
    cand = (
        elements.filter(
            (pl.col("action") == "K")
            & pl.col("value").is_not_null()
            & pl.col("vr").is_in([*_KEPT_TEXT, *_NUMBER_VRS])
        )
        .select("file_id", "path", "vr", pl.col("value").str.to_uppercase().alias("_v"))
        .with_columns(pl.col("_v").str.extract_many(patterns, overlapping=True).alias("text"))
        .filter(pl.col("text").list.len() > 0)
        .explode("text")
        .join(ident.lazy(), on=["file_id", "text"])
        .filter(~(pl.col("vr").is_in(_NUMBER_VRS) & pl.col("text").str.contains(r"^[0-9]+$")))
        .collect()
    )
    rows = [
        (f, p, vr, g, k)
        for f, p, vr, v, t, g, k in cand.select(
            "file_id", "path", "vr", "_v", "text", "tag", "keyword"
        ).iter_rows()
        if contains(v, t)
    ]
    return pl.DataFrame(rows, schema=schema, orient="row").unique(
        ["file_id", "path"], maintain_order=True
    )
