"""The compliance checks: what each written file must (not) hold, judged from its bytes.

The written files are read back with the ingest reader into an ``elements``
frame (same paths and value texts as the session index), so every header check
is a join of that frame with the profile and with the *original* elements of
the source instance.  Only the byte scan and the pixel check touch files one at
a time.  Nothing here trusts the plan for what was done; the plan is read only
to know which instances were meant to be redacted.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
import polars as pl

from gantry._messages import capture_warnings
from gantry.plan._paths import sequence_ancestors
from gantry.profiles import Profile
from gantry.store import Store

__all__ = [
    "CHECKS",
    "PROBLEM_SCHEMA",
    "Check",
    "check_burned_in",
    "check_markers",
    "check_private",
    "check_redaction",
    "check_removed",
    "check_replaced",
    "check_uids",
    "effective_actions",
    "identifying_tokens",
    "identity_of",
    "original_uids",
    "raw_private_tokens",
    "scan_bytes",
    "tag_actions",
]

WELL_KNOWN_UID_PREFIX: Final = "1.2.840.10008."
_NOT_TOKENS: Final = ("US", "SS", "UL", "SL", "FL", "FD", "IS", "DS", "CS", "TM", "SQ", "AT")
_BULK: Final = ("OB", "OW", "OF", "OD", "OL", "OV", "UN")
_DUMMIES: Final = {"ANONYMIZED", "ANONYMOUS", "19000101", "19000101000000", "000000", "0", "000Y"}
_CHANGED: Final = ("Z", "D", "U", "S", "P", "H", "R")
_MIN_TOKEN: Final = 4
_MIN_NAME_PART: Final = 3


@dataclass(frozen=True)
class Check:
    """One compliance rule: its id, a plain-language title, what it verifies."""

    id: str
    title: str
    description: str
    leak: bool
    """A failure means identifying information may be in the export."""


CHECKS: Final[dict[str, Check]] = {
    c.id: c
    for c in (
        Check(
            "readable",
            "Files are DICOM",
            "Every file in the export folder parses as DICOM.",
            leak=False,
        ),
        Check(
            "provenance",
            "Files are the ones exported",
            "Every file was written by an export recorded in the session (same path, same "
            "SHA-256), and every recorded file is present.",
            leak=False,
        ),
        Check(
            "removed",
            "Removed attributes are absent",
            "No attribute the profile removes (action X) is present, at any depth.",
            leak=True,
        ),
        Check(
            "replaced",
            "Replaced attributes changed",
            "Attributes the profile empties, replaces, shifts or pseudonymises "
            "(Z, D, S, dates under C) no longer hold their original value.",
            leak=True,
        ),
        Check(
            "uids",
            "No original UIDs",
            "No UID anywhere in the file (file meta and sequences included) is an "
            "original UID that the profile remaps.",
            leak=True,
        ),
        Check(
            "private",
            "Private attributes removed",
            "No private attribute is present unless the configuration lists it as safe "
            "under the retain-safe-private option.",
            leak=True,
        ),
        Check(
            "markers",
            "De-identification recorded",
            "PatientIdentityRemoved is YES and DeidentificationMethodCodeSequence holds "
            "the profile's CID 7050 codes.",
            leak=False,
        ),
        Check(
            "identifying-values",
            "No original identifying values",
            "The file's bytes hold none of the source instance's original identifying "
            "values: names, IDs, dates, UIDs and every other value the profile changes.",
            leak=True,
        ),
        Check(
            "redaction",
            "Redaction zones blank",
            "In instances meant to be redacted, every zone of every frame holds the fill "
            "value in the decoded pixels of the written file.",
            leak=True,
        ),
        Check(
            "burned-in",
            "No unredacted burned-in text",
            "Images likely to carry text burned into the pixels (BurnedInAnnotation YES, "
            "ultrasound, secondary or screen capture, judged from the written file) were "
            "redacted with a declared zone.",
            leak=True,
        ),
    )
}

PROBLEM_SCHEMA: Final = pl.Schema(
    {
        "output_path": pl.String(),
        "rule": pl.String(),
        "tag": pl.String(),
        "keyword": pl.String(),
        "path": pl.String(),
        "detail": pl.String(),
    }
)


def _tag_text(tag: str | None) -> str | None:
    return None if tag is None else f"({tag[:4]},{tag[4:]})"


def tag_actions(profile: Profile, tags: pl.Series) -> pl.DataFrame:
    """``tag, action`` for each distinct tag (action null where the profile has no row)."""
    uniq = tags.unique().drop_nulls()
    hits = profile.match(uniq)
    return pl.DataFrame({"tag": uniq, "action": hits["action"]})


def _problems(frame: pl.DataFrame, rule: str, detail: pl.Expr) -> pl.DataFrame:
    return frame.select(
        "output_path",
        pl.lit(rule).alias("rule"),
        pl.col("tag").map_elements(_tag_text, return_dtype=pl.String).alias("tag"),
        pl.coalesce(pl.col("keyword"), pl.lit("(private or unknown)")).alias("keyword"),
        "path",
        detail.alias("detail"),
    ).cast(PROBLEM_SCHEMA)


def _is_private(tag: pl.Expr) -> pl.Expr:
    return tag.str.slice(3, 1).str.to_integer(base=16) % 2 == 1


def check_removed(out: pl.DataFrame, actions: pl.DataFrame, profile: Profile) -> pl.DataFrame:
    """Public attributes the profile removes (X) that are present in a written file.

    Gantry's identifier-issuer supplement (``gantry.plan._builder.SUPPLEMENT``) counts
    as removed too, unless ``retain-institution-identity`` is in effect.
    """
    supplement = _supplement(profile)
    hits = out.join(actions, on="tag", how="left").filter(
        ((pl.col("action") == "X") | (pl.col("action").is_null() & pl.col("tag").is_in(supplement)))
        & ~_is_private(pl.col("tag"))
    )
    return _problems(
        hits,
        "removed",
        pl.when(pl.col("action") == "X")
        .then(pl.lit("present, but the profile removes it (X)"))
        .otherwise(pl.lit("present, but Gantry removes identifier issuers (not in Table E.1-1)")),
    )


def check_replaced(out: pl.DataFrame, source: pl.DataFrame, actions: pl.DataFrame) -> pl.DataFrame:
    """Elements the profile changes (Z/D/S/…, dates under C) that kept their original value."""
    changed = out.join(actions, on="tag", how="inner").filter(
        (
            pl.col("action").is_in(_CHANGED)
            | ((pl.col("action") == "C") & pl.col("vr").is_in(["DA", "DT"]))
        )
        & ~pl.col("vr").is_in(["SQ", "UI", *_BULK])
        & ~_is_private(pl.col("tag"))
    )
    orig = source.select(
        pl.col("file_id").alias("source_id"), "path", pl.col("value").alias("_orig")
    )
    same = changed.join(orig, on=["source_id", "path"], how="inner").filter(
        (pl.col("_orig") == pl.col("value"))
        & (pl.col("_orig").str.strip_chars() != "")
        & ~pl.col("_orig").is_in(list(_DUMMIES))
    )
    words = {"Z": "empty it", "D": "replace it with a dummy value", "S": "shift it",
             "C": "shift it", "P": "pseudonymise it", "H": "hash it", "R": "replace it"}  # fmt: skip
    return _problems(
        same,
        "replaced",
        pl.format(
            "still holds its original value; the profile says to {} ({})",
            pl.col("action").replace_strict(words, default="change it"),
            pl.col("action"),
        ),
    )


def original_uids(store: Store, profile: Profile) -> pl.DataFrame:
    """``uid`` (unique): every original UID in the index held by an element the profile remaps.

    Well-known UIDs (``1.2.840.10008.*``) are never remapped and not listed.
    """
    ui = store.scan("elements").filter(pl.col("vr") == "UI").select("tag", "value")
    tags = ui.select(pl.col("tag").unique()).collect()["tag"]
    remapped = tag_actions(profile, tags).filter(pl.col("action") == "U")["tag"]
    return (
        ui.filter(pl.col("tag").is_in(remapped.implode()))
        .select(pl.col("value").str.split("\\").alias("uid"))
        .explode("uid")
        .with_columns(pl.col("uid").str.strip_chars(" \x00"))
        .filter(
            (pl.col("uid").str.len_bytes() > 0)
            & ~pl.col("uid").str.starts_with(WELL_KNOWN_UID_PREFIX)
        )
        .unique()
        .collect()
    )


def check_uids(out: pl.DataFrame, uids: pl.DataFrame) -> pl.DataFrame:
    """UI elements (any depth, file meta too) holding an original, remapped UID."""
    values = (
        out.filter(pl.col("vr") == "UI")
        .with_columns(pl.col("value").str.split("\\").alias("uid"))
        .explode("uid")
        .with_columns(pl.col("uid").str.strip_chars(" \x00"))
    )
    hits = values.join(uids, on="uid", how="semi").unique(["output_path", "path"])
    return _problems(hits, "uids", pl.lit("holds an original UID that the profile remaps"))


def _safe_private(config: Any, profile: Profile) -> pl.Expr:
    """True for private elements the configuration lists as safe (and their creators)."""
    remove = bool(getattr(config, "remove_private_tags", True))
    rules = list(getattr(config, "safe_private_tags", ()) or ())
    if not remove:
        return pl.lit(False)  # keeping every private element is never "safe"
    if str(profile.private_action(safe=True)) != "K" or not rules:
        return pl.lit(False)
    safe: pl.Expr = pl.lit(False)
    creators: pl.Expr = pl.lit(False)
    group = pl.col("tag").str.slice(0, 4)
    elem = pl.col("tag").str.slice(6, 2)
    for rule in rules:
        creator = str(getattr(rule, "creator", "")).strip()
        elements = [str(e) for e in (getattr(rule, "elements", ()) or ())]
        by_creator = pl.col("private_creator").str.strip_chars() == creator
        creators = creators | (pl.col("value").fill_null("").str.strip_chars() == creator)
        if not elements or elements == ["all"]:
            safe = safe | by_creator
            continue
        for e in elements:
            text = e.replace(",", "").replace("(", "").replace(")", "").upper()
            safe = safe | (by_creator & (group == text[:4]) & (elem == text[6:8]))
    is_creator = pl.col("tag").str.slice(4, 2) == "00"
    return pl.when(is_creator).then(creators).otherwise(safe)


def check_private(out: pl.DataFrame, config: Any, profile: Profile) -> pl.DataFrame:
    """Private elements present that are not listed as safe."""
    private = out.filter(_is_private(pl.col("tag")))
    if private.height == 0:
        return pl.DataFrame(schema=PROBLEM_SCHEMA)
    bad = private.filter(~_safe_private(config, profile))
    return _problems(bad, "private", pl.lit("private element present and not listed as safe"))


def check_markers(
    out: pl.DataFrame, files: pl.DataFrame, profile: Profile, redacted: set[int]
) -> pl.DataFrame:
    """PatientIdentityRemoved = YES and the expected CID 7050 codes, per readable file.

    ``files`` has ``output_path`` and ``source_id`` of every readable file.
    """
    removed = out.filter(pl.col("path") == "00120062").select(
        "output_path", pl.col("value").alias("_pir")
    )
    codes = (
        out.filter(pl.col("path").str.contains(r"^00120064\[\d+\]\.00080100$"))
        .group_by("output_path")
        .agg(pl.col("value").alias("_codes"))
    )
    base = {c for c, _ in profile.deidentification_codes_for()}
    cleaned = {c for c, _ in profile.deidentification_codes_for(pixel_data_cleaned=True)}
    rows: list[dict[str, Any]] = []
    joined = files.join(removed, on="output_path", how="left").join(
        codes, on="output_path", how="left"
    )
    for output_path, source_id, pir, got in joined.select(
        "output_path", "source_id", "_pir", "_codes"
    ).iter_rows():
        if (pir or "").strip() != "YES":
            rows.append(
                {
                    "output_path": output_path,
                    "rule": "markers",
                    "tag": "(0012,0062)",
                    "keyword": "PatientIdentityRemoved",
                    "path": "00120062",
                    "detail": "missing" if pir is None else "is not YES",
                }
            )
        want = cleaned if source_id in redacted else base
        missing = sorted(want - {str(c).strip() for c in (got or [])})
        if missing:
            rows.append(
                {
                    "output_path": output_path,
                    "rule": "markers",
                    "tag": "(0012,0064)",
                    "keyword": "DeidentificationMethodCodeSequence",
                    "path": "00120064",
                    "detail": "missing CID 7050 codes " + ", ".join(missing),
                }
            )
    return pl.DataFrame(rows, schema=PROBLEM_SCHEMA)


def _supplement(profile: Profile) -> list[str]:
    """Gantry's identifier-issuer supplement to Table E.1-1 (removed unless the option says keep)."""
    from gantry.plan._builder import SUPPLEMENT

    if any(str(getattr(o, "value", o)) == "retain-institution-identity" for o in profile.options):
        return []
    return list(SUPPLEMENT)


def _added_text() -> str:
    """Text every de-identified file may hold whatever its source: CID 7050 meanings,
    the de-identification method, dummies, the flags the export sets (upper-case)."""
    from gantry.profiles import CID7050, ProfileOption

    words = [*CID7050.values(), *(o.value for o in ProfileOption), *_DUMMIES]
    words += ["Gantry", "basic", "comprehensive", "research", "YES", "MODIFIED", "UNMODIFIED",
              "REMOVED", "GANTRY", "ISO_IR 100", "ISO_IR 192"]  # fmt: skip
    return "\n".join(words).upper()


def _in_added_text(token: pl.Expr) -> pl.Expr:
    return pl.lit(_added_text()).str.contains(token.str.to_uppercase(), literal=True)


def effective_actions(
    elements: pl.DataFrame, actions: pl.DataFrame, config: Any, profile: Profile
) -> pl.DataFrame:
    """``elements`` with ``eff``: what must happen to each element, ancestors included.

    The profile's action (``K`` where it has none); Gantry's identifier-issuer
    supplement ``X``; private elements ``X`` unless listed as safe; and ``X`` for
    everything inside a sequence that is removed, emptied or dummied.
    """
    supplement = _supplement(profile)
    el = elements.join(actions, on="tag", how="left").with_columns(
        pl.when(_is_private(pl.col("tag")))
        .then(pl.when(_safe_private(config, profile)).then(pl.lit("K")).otherwise(pl.lit("X")))
        .when(pl.col("action").is_null() & pl.col("tag").is_in(supplement))
        .then(pl.lit("X"))
        .otherwise(pl.col("action").fill_null("K"))
        .alias("eff")
    )
    gone = el.filter((pl.col("vr") == "SQ") & pl.col("eff").is_in(["X", "Z", "D"])).select(
        "file_id", pl.col("path").alias("_anc")
    )
    nested = el.filter(pl.col("path").str.contains(".", literal=True)).select("file_id", "path")
    if gone.height == 0 or nested.height == 0:
        return el
    # the ancestors of "A[0].B[1].C" are the sequences "A" and "A[0].B"
    covered = (
        sequence_ancestors(nested)
        .join(gone, on=["file_id", "_anc"], how="semi")
        .select("file_id", "path")
        .unique()
        .with_columns(pl.lit(True).alias("_covered"))
    )
    return (
        el.join(covered, on=["file_id", "path"], how="left")
        .with_columns(
            pl.when(pl.col("_covered")).then(pl.lit("X")).otherwise(pl.col("eff")).alias("eff")
        )
        .drop("_covered")
    )


_WORD: Final = r"[A-Za-z0-9][A-Za-z0-9._\-]*[0-9][A-Za-z0-9._\-]*|[0-9][A-Za-z0-9._\-]*"


def identifying_tokens(
    source: pl.DataFrame,
    actions: pl.DataFrame,
    identity: pl.DataFrame,
    *,
    config: Any = None,
    profile: Profile | None = None,
) -> pl.DataFrame:
    """``source_id, token, keyword, tag``: original values that must not reach the output.

    Every text value of an element that is not kept (see :func:`effective_actions`),
    split at ``\\`` (and at the name separators for PN), plus the identifier-like
    words of free text (with a digit, 6+ characters; 8+ when only digits), at least 4
    bytes long, minus values that the same instance legitimately keeps elsewhere;
    plus the patient's identity (``identity``), always.
    """
    if profile is None:
        el = source.join(actions, on="tag", how="left").with_columns(
            pl.col("action").fill_null("K").alias("eff")
        )
    else:
        el = effective_actions(source, actions, config, profile)
    changed = (pl.col("eff") != "K") & ((pl.col("eff") != "C") | pl.col("vr").is_in(["DA", "DT"]))
    usable = pl.col("value").is_not_null() & ~pl.col("vr").is_in([*_NOT_TOKENS, *_BULK])
    gone = el.filter(changed & usable).select(
        pl.col("file_id").alias("source_id"), "value", "vr", "keyword", "tag"
    )
    whole = (
        gone.with_columns(pl.col("value").str.split("\\").alias("token"))
        .explode("token")
        .with_columns(
            pl.when(pl.col("vr") == "PN")
            .then(pl.concat_list(pl.col("token"), pl.col("token").str.split("^")))
            .otherwise(pl.concat_list(pl.col("token")))
            .alias("token")
        )
        .explode("token")
    )
    words = (
        gone.filter(pl.col("vr").is_in(["LO", "LT", "SH", "ST", "UT", "UC", "PN"]))
        .with_columns(pl.col("value").str.extract_all(_WORD).alias("token"))
        .explode("token")
        .with_columns(pl.col("token").str.strip_chars("._-"))
        .filter(
            (pl.col("token").str.len_chars() >= 8)
            | ((pl.col("token").str.len_chars() >= 6) & pl.col("token").str.contains("[A-Za-z]"))
        )
    )
    parts = (
        pl.concat([whole.select(words.columns), words])
        .with_columns(pl.col("token").str.strip_chars(" \x00^="))
        .filter(
            (pl.col("token").str.len_bytes() >= _MIN_TOKEN)
            & ~pl.col("token").str.starts_with(WELL_KNOWN_UID_PREFIX)
            & ~pl.col("token").is_in(list(_DUMMIES))
        )
    )
    kept = el.filter(~changed & pl.col("value").is_not_null() & ~pl.col("vr").is_in(_BULK)).select(
        pl.col("file_id").alias("source_id"), pl.col("value").alias("_kept")
    )
    shadowed = (
        parts.select("source_id", "token")
        .unique()
        .join(kept, on="source_id")
        .filter(pl.col("_kept").str.contains(pl.col("token"), literal=True))
        .select("source_id", "token")
        .unique()
    )
    parts = parts.join(shadowed, on=["source_id", "token"], how="anti")
    frames = [parts.select("source_id", "token", "keyword", "tag"), identity]
    frames = [f.filter(~_in_added_text(pl.col("token"))) for f in frames]
    return pl.concat(
        [f.cast({"source_id": pl.Int64}) for f in frames], how="vertical_relaxed"
    ).unique(["source_id", "token"], keep="first", maintain_order=True)


def raw_private_tokens(wanted: dict[int, tuple[str, set[str]]]) -> pl.DataFrame:
    """``source_id, token, keyword, tag`` from private elements the index holds no text for.

    Private elements of implicit-VR files are ``UN`` in the index (bytes hashed, not
    kept); their text is read from the original files (headers only) so the byte scan
    can look for it too.  ``wanted`` maps a source to its path and the tags to read.
    """
    import pydicom

    rows: list[tuple[int, str, None, str]] = []
    for sid, (path, tags) in wanted.items():
        try:
            ds = pydicom.dcmread(path, stop_before_pixels=True, force=True)
        except Exception:  # an unreadable original adds no token; the index still has the rest
            continue
        with capture_warnings():  # pydicom's value warnings quote the originals
            elements = [(f"{e.tag:08X}", e.value) for e in ds.iterall()]
        for tag, value in elements:
            if tag not in tags or not isinstance(value, bytes):
                continue
            for part in value.replace(b"\x00", b"\\").split(b"\\"):
                text = part.decode("latin-1").strip()
                if len(text) >= _MIN_TOKEN and text.isprintable():
                    rows.append((sid, text, None, tag))
    return pl.DataFrame(
        rows,
        schema={"source_id": pl.Int64, "token": pl.String, "keyword": pl.String, "tag": pl.String},
        orient="row",
    )


def identity_of(store: Store, source_ids: pl.Series) -> pl.DataFrame:
    """``source_id, token, keyword, tag``: each instance's patient identity, as searched for.

    Name components of at least 3 characters (and the whole name), PatientID,
    OtherPatientIDs, IssuerOfPatientID, AccessionNumber, the birth date.
    """
    lf = store.scan("instances").filter(pl.col("file_id").is_in(source_ids.implode()))
    schema = lf.collect_schema()
    frames = []
    for name, tag in (
        ("PatientName", "00100010"),
        ("PatientID", "00100020"),
        ("OtherPatientIDs", "00101000"),
        ("AccessionNumber", "00080050"),
        ("PatientBirthDate", "00100030"),
    ):
        if name not in schema:
            continue
        dtype = schema[name]
        col = pl.col(name)
        if isinstance(dtype, pl.List):
            expr = col.cast(pl.List(pl.String))
        elif dtype == pl.Date:
            expr = pl.concat_list(col.dt.strftime("%Y%m%d"))
        elif name == "PatientName":
            text = col.cast(pl.String)
            expr = pl.concat_list(text, text.str.replace_all("[=^]", " ").str.split(" "))
        else:
            expr = pl.concat_list(col.cast(pl.String))
        frames.append(
            lf.select(
                pl.col("file_id").alias("source_id"),
                expr.alias("token"),
                pl.lit(name).alias("keyword"),
                pl.lit(tag).alias("tag"),
            ).explode("token")
        )
    if not frames:
        return pl.DataFrame(
            schema={
                "source_id": pl.Int64,
                "token": pl.String,
                "keyword": pl.String,
                "tag": pl.String,
            }
        )
    return (
        pl.concat(frames)
        .with_columns(pl.col("token").str.strip_chars(" \x00^="))
        .filter(pl.col("token").str.len_chars() >= _MIN_NAME_PART)
        .collect()
    )


def _encodings(token: str) -> list[bytes]:
    out = [token.encode("utf-8", "ignore")]
    try:
        latin = token.encode("latin-1")
    except UnicodeEncodeError:
        latin = b""
    if latin and latin not in out:
        out.append(latin)
    upper = token.upper().encode("utf-8", "ignore")
    if upper not in out:
        out.append(upper)
    return out


def scan_bytes(
    data: bytes,
    header: bytes,
    tokens: Iterable[tuple[str, str | None, str | None]],
    text_values: list[tuple[str, str]],
) -> list[dict[str, Any]]:
    """Search ``data`` for each ``(token, keyword, tag)``; return one hit per token.

    Tokens shorter than 4 bytes are only searched in ``header`` (the bytes outside
    the pixel data) where a chance match is unlikely.  Each hit names the output
    element paths whose text holds the token (``text_values``: ``(path, value)``)
    or says it lies outside any text element.  The token itself is never returned.
    """
    hits = []
    for token, keyword, tag in tokens:
        haystack = data if len(token.encode("utf-8", "ignore")) >= _MIN_TOKEN else header
        if not any(enc and enc in haystack for enc in _encodings(token)):
            continue
        upper = token.upper()
        where = [p for p, v in text_values if upper in v.upper()][:3]
        hits.append(
            {
                "rule": "identifying-values",
                "tag": _tag_text(tag),
                "keyword": keyword or "(private or unknown)",
                "path": ", ".join(where) if where else None,
                "detail": (
                    f"an original value of {keyword or 'a private element'} is in the file ("
                    + (f"in {', '.join(where)}" if where else "outside any text element")
                    + ")"
                ),
            }
        )
    return hits


def check_burned_in(
    out_inst: pl.DataFrame, files: pl.DataFrame, redacted: set[int], config: Any
) -> pl.DataFrame:
    """Written files whose pixels likely carry burned-in text and that were not redacted.

    The risk is the audit's burned-in rule applied to the written file's own header;
    ``files`` maps the written files' ``file_id`` to ``output_path`` and ``source_id``.
    """
    from gantry.audit._rules import AuditContext, burned_in_findings

    if out_inst.height == 0:
        return pl.DataFrame(schema=PROBLEM_SCHEMA)
    ctx = AuditContext.from_config(config)
    none_matched = pl.LazyFrame(schema={"file_id": pl.Int64, "zones": pl.List(pl.List(pl.Int64))})
    risky = (
        burned_in_findings(out_inst.lazy(), none_matched, ctx)
        .select(
            "file_id",
            pl.col("message").cast(pl.String).str.extract(r"\(([^)]*)\)", 1).alias("_why"),
        )
        .collect()
    )
    hits = risky.join(files, on="file_id", how="inner").filter(
        ~pl.col("source_id").is_in(list(redacted)) | pl.col("source_id").is_null()
    )
    return hits.select(
        "output_path",
        pl.lit("burned-in").alias("rule"),
        pl.lit("(7FE0,0010)").alias("tag"),
        pl.lit("PixelData").alias("keyword"),
        pl.lit("7FE00010").alias("path"),
        pl.format(
            "pixels may carry burned-in text ({}) and no redaction zone was applied",
            pl.col("_why").fill_null("risk"),
        ).alias("detail"),
    ).cast(PROBLEM_SCHEMA)


def check_redaction(data: bytes, plan_value: str) -> str | None:
    """Decode the written file and check every zone of every frame holds the fill value.

    Returns None when clean, else a description (zone and frame, no pixel values).
    """
    import pydicom

    from gantry.pixels import decode

    spec = json.loads(plan_value)
    zones = [tuple(int(v) for v in z) for z in spec.get("zones", [])]
    fill = spec.get("fill")
    fill = 0 if fill is None else fill
    try:
        with capture_warnings():
            ds = pydicom.dcmread(io.BytesIO(data), force=True)
            arr = decode(ds)
    except Exception as exc:  # undecodable pixels cannot be verified clean
        return f"pixels cannot be decoded ({type(exc).__name__})"
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    samples = int(ds.get("SamplesPerPixel", 1) or 1)
    stack = arr if frames > 1 else arr[None, ...]
    rows, cols = stack.shape[1], stack.shape[2]
    for r0, r1, c0, c1 in zones:
        r0, r1, c0, c1 = max(0, r0), min(rows, r1), max(0, c0), min(cols, c1)
        if r0 >= r1 or c0 >= c1:
            continue
        region = stack[:, r0:r1, c0:c1, ...] if samples > 1 else stack[:, r0:r1, c0:c1]
        bad = np.flatnonzero((region != fill).reshape(region.shape[0], -1).any(axis=1))
        if bad.size:
            return (
                f"zone rows {r0}-{r1}, columns {c0}-{c1} is not blank in "
                f"{bad.size} of {stack.shape[0]} frame(s)"
            )
    return None
