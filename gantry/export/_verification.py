"""The one set of verification rules, shared by export, ``preview`` and the compliance report.

* :func:`instance_tokens` — which original values each instance's output is
  searched for, from the index, the plan and the config's acknowledged false
  alarms (:mod:`gantry.plan._tokens`);
* :func:`written_paths` — the output elements the plan writes: every value
  outside them is one the plan keeps;
* :func:`file_leak` — the first leak in a written file (:mod:`gantry.export._leaks`
  does the precise matching);
* :func:`predict_failures` — the same rules applied to the index and a plan
  before any file is written, so a config that would make export fail an
  instance can be fixed first.

Export verification calls :func:`file_leak` on every file it writes; the
compliance report calls it on every file it reads back, with the tokens of the
same plan, so both give the same verdict and the same reason.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any, Final

import polars as pl
from pydicom.uid import DeflatedExplicitVRLittleEndian, ExplicitVRBigEndian, ImplicitVRLittleEndian

from gantry.export._leaks import Leak, Token, first_leak, plan_tree

if TYPE_CHECKING:
    from gantry.store import Store

__all__ = [
    "FAILURE_SCHEMA",
    "acknowledged",
    "dataset_start",
    "file_leak",
    "instance_tokens",
    "predict_failures",
    "token_frame",
    "written_paths",
    "written_text",
]

FAILURE_SCHEMA: Final = pl.Schema(
    {
        "file_id": pl.Int64(),
        "path": pl.String(),
        "tag": pl.String(),
        "keyword": pl.String(),
        "identity": pl.Boolean(),
        "value_hash": pl.String(),
        "reason": pl.String(),
    }
)
"""Columns of :func:`predict_failures`: the instance, the output element path (None: the
file's path), the source attribute, whether its value is an identity value, the keyed
hash an acknowledgement names, and the reason export would record (the same text)."""


def acknowledged(config: Any) -> list[tuple[str, str]]:
    """``(tag, value hash)`` pairs the config acknowledges as false alarms.

    Examples
    --------
    >>> from gantry.config import load_config
    >>> cfg = load_config({"acknowledged": [{"attribute": "ProtocolName",
    ...                                      "value_hash": "0123456789abcdef"}]})
    >>> acknowledged(cfg)
    [('00181030', '0123456789abcdef')]
    """
    return [(a.tag, a.value_hash) for a in (getattr(config, "acknowledged", ()) or ())]


def written_text() -> pl.Expr:
    """What a plan row writes as text (the meanings of an added code sequence too)."""
    return (
        pl.when(pl.col("vr") == "SQ")
        .then(pl.col("new_value").str.extract_all(r'"meaning": "[^"]*"').list.join(" "))
        .when(pl.col("action").is_in(["REDACT", "DEFACE"]))
        .then(pl.lit(None, pl.String))
        .otherwise(pl.col("new_value"))
        .alias("new_value")
    )


def token_frame(
    store: Store,
    plan: pl.DataFrame,
    config: Any,
    *,
    elements: pl.LazyFrame | None = None,
    identity_only: bool = False,
) -> pl.DataFrame:
    """The tokens of every instance ``plan`` covers (schema ``gantry.plan._tokens.TOKEN_SCHEMA``).

    ``elements`` defaults to the index's elements of those instances;
    ``identity_only`` keeps only the identity values.
    """
    from gantry.plan._tokens import verification_tokens, with_effective_actions

    files = plan.select("file_id").unique().lazy()
    if elements is None:
        elements = store.scan("elements")
    from gantry.plan._tokens import TEXT_FILTER

    # only text values can be tokens (a sequence's action reaches its items through
    # the plan's rows, not through the sequence's own element)
    elements = (
        elements.select("file_id", "path", "tag", "keyword", "vr", "value")
        .filter(TEXT_FILTER)
        .join(files, on="file_id", how="semi")
    )
    return verification_tokens(
        with_effective_actions(elements, plan.lazy()),
        secret=store.secret,
        acknowledged=acknowledged(config),
        written=plan.lazy().select("file_id", written_text()),
        identity_only=identity_only,
    )


def instance_tokens(store: Store, plan: pl.DataFrame, config: Any) -> dict[int, list[Token]]:
    """The original values verification searches each instance's output for.

    Stored with the plan by ``anonymize`` where still valid, else gathered
    (:func:`gantry.plan._token_table.tokens_for`).
    """
    from gantry.plan._token_table import tokens_for

    frame = tokens_for(store, plan, config)
    cols = ["text", "identity", "tag", "keyword", "digest"]
    # one Token object per distinct value: the lists of a series share them, and so
    # does the pickle that carries a chunk of items to a worker
    frame = frame.with_columns((pl.struct(cols).rank("dense").cast(pl.Int64) - 1).alias("_tid"))
    firsts = frame.unique("_tid").sort("_tid")
    shared = [Token(*row) for row in firsts.select(cols).iter_rows()]
    per_file = frame.group_by("file_id").agg("_tid")
    return {
        fid: [shared[i] for i in tids]
        for fid, tids in zip(per_file["file_id"].to_list(), per_file["_tid"].to_list(), strict=True)
    }


def written_paths(
    actions: Iterable[tuple[str, str, str, str | None]], edits: Iterable[Sequence[Any]] = ()
) -> list[str]:
    """Output element paths the plan (``path, vr, action, new_value`` rows) and edits write.

    A redaction writes pixels, not text; a dummy sequence keeps its first item,
    whose elements have rows of their own.
    """
    return [
        path
        for path, vr, action, _nv in actions
        if action not in ("REDACT", "DEFACE") and not (action == "D" and vr == "SQ")
    ] + [e[0] for e in edits]


def dataset_start(data: bytes) -> int:
    """Where the data set of a written Part 10 file begins (after its file meta).

    0 when ``data`` has no preamble and ``DICM`` prefix (nothing is then file meta).
    """
    if data[128:132] != b"DICM":
        return 0
    try:
        return min(len(data), 144 + int(struct.unpack_from("<L", data, 140)[0]))
    except struct.error:
        return 0


def file_leak(
    data: bytes,
    tokens: Sequence[Token],
    paths: Iterable[str],
    *,
    transfer_syntax: str,
    out_rel: str = "",
) -> Leak | None:
    """The first original value in a written file where the rules forbid it, or None.

    ``paths`` are the output elements the plan writes (:func:`written_paths`):
    identity values may occur nowhere (nor in ``out_rel``), other original
    values only outside ``paths``.  A deflated data set is inflated first.
    """
    if not tokens:
        return None
    start = dataset_start(data)
    if transfer_syntax == DeflatedExplicitVRLittleEndian and start:
        try:
            data = data[:start] + zlib.decompressobj(-zlib.MAX_WBITS).decompress(data[start:])
        except zlib.error:
            pass  # searched as written; the structure checks judge the file
    return first_leak(
        data,
        start,
        plan_tree(paths),
        tokens,
        implicit=transfer_syntax == ImplicitVRLittleEndian,
        big=transfer_syntax == ExplicitVRBigEndian,
        out_rel=out_rel,
    )


# ---------------------------------------------------------------- before any file is written
def predict_failures(
    store: Store, config: Any, *, plan: pl.DataFrame | None = None
) -> pl.DataFrame:
    """Instances export verification would fail, with the reason it would give.

    The rules of :func:`file_leak` applied to the index and the plan (built in
    memory from ``config`` when ``plan`` is None; nothing is written): an
    identity value inside a value the plan keeps (a coded string, or a number
    equal to an all-digit identity value, is no hit), inside a value the plan
    or a saved edit writes, or in the output file's path; another original
    value inside a value a saved edit writes.  One row per hit (schema
    :data:`FAILURE_SCHEMA`); the value itself is never shown.

    What cannot be foreseen from the tables (bytes of private elements the
    index holds no text for, values in the file meta) is still caught by
    export verification.
    """
    from gantry.export._session_inputs import _name_suffixes, _out_paths, _session_edits
    from gantry.plan._match import contains
    from gantry.plan._tokens import identity_in_kept, with_effective_actions

    if plan is None:
        from gantry.plan import build_plan

        plan = build_plan(store, config, persist=False)
    if plan.height == 0:
        return pl.DataFrame(schema=FAILURE_SCHEMA)
    files = plan.select("file_id").unique().lazy()
    elements = (
        store.scan("elements")
        .select("file_id", "path", "tag", "keyword", "vr", "value")
        .join(files, on="file_id", how="semi")
    )
    tokens = token_frame(store, plan, config, elements=elements)
    if tokens.height == 0:
        return pl.DataFrame(schema=FAILURE_SCHEMA)
    tok_of = {
        (f, t): Token(t, i, g, k, d)
        for f, t, i, g, k, d in tokens.select(
            "file_id", "text", "identity", "tag", "keyword", "digest"
        ).iter_rows()
    }
    hits: list[tuple[int, str | None, Token]] = []
    # identity values in elements the plan keeps
    kept = identity_in_kept(with_effective_actions(elements, plan.lazy()), tokens)
    kept = kept.filter(~pl.col("path").str.starts_with("04000500"))  # encrypted: ciphertext
    kept_hits = (
        kept.join(
            elements.select("file_id", "path", pl.col("value").str.to_uppercase().alias("_v"))
            .join(kept.lazy().select("file_id", "path"), on=["file_id", "path"], how="semi")
            .collect(),
            on=["file_id", "path"],
        )
        .join(
            tokens.filter(pl.col("identity")).select("file_id", "text", pl.col("tag").alias("_t")),
            on="file_id",
        )
        .filter(
            (pl.col("_t") == pl.col("tag"))
            & pl.col("_v").str.contains(pl.col("text"), literal=True)
        )
    )
    for fid, path, v, text in kept_hits.select("file_id", "path", "_v", "text").iter_rows():
        if contains(v, text):
            hits.append((fid, path, tok_of[(fid, text)]))
    # identity values inside what the plan writes; any value inside what an edit writes
    edits, _ = _session_edits(store)
    written = plan.select("file_id", "path", "tag", written_text()).filter(
        pl.col("new_value").is_not_null() & (pl.col("new_value") != "")
    )
    edit_rows = [
        (fid, tag, tag, value)
        for fid, rows in edits.items()
        for tag, op, value, _vr in rows
        if op == "set" and value
    ]
    edit_frame = pl.DataFrame(
        edit_rows,
        schema={"file_id": pl.Int64, "path": pl.String, "tag": pl.String, "new_value": pl.String},
        orient="row",
    )
    for frame, identity_only in ((written, True), (edit_frame, False)):
        cand = (
            frame.select("file_id", "path", pl.col("new_value").str.to_uppercase().alias("_w"))
            .join(tokens.select("file_id", "text", "identity"), on="file_id")
            .filter(pl.col("_w").str.contains(pl.col("text"), literal=True))
        )
        if identity_only:
            cand = cand.filter(pl.col("identity"))
        for fid, path, w, text in cand.select("file_id", "path", "_w", "text").iter_rows():
            if contains(w, text):
                hits.append((fid, path, tok_of[(fid, text)]))
    # identity values in the output file's path
    inst = (
        store.scan("instances")
        .join(files, on="file_id", how="semi")
        .select("file_id", "StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID")
        .collect()
    )
    rels = dict(_out_paths(plan, inst, _name_suffixes(store)).iter_rows())
    for (fid, text), tok in tok_of.items():
        if tok.identity and fid in rels and contains(rels[fid].upper(), text):
            hits.append((fid, None, tok))
    rows = [
        (fid, path, t.tag, t.keyword, t.identity, t.digest, f"VerificationError: {t.reason(path)}")
        for fid, path, t in hits
    ]
    return (
        pl.DataFrame(rows, schema=FAILURE_SCHEMA, orient="row")
        .unique(["file_id", "path", "tag", "value_hash"], maintain_order=True)
        .sort("file_id", "path", nulls_last=True)
    )
