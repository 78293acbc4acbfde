"""The compliance checks: what each written file must (not) hold, judged from its bytes.

The written files are read back with the ingest reader into an ``elements``
frame (same paths and value texts as the session index), so every header check
is a join of that frame with the profile and with the *original* elements of
the source instance.  Only the byte scan and the pixel check touch files one at
a time.  The header checks trust no plan for what was done; the byte scan
(``identifying-values``) applies export verification's own rules
(:mod:`gantry.export._verification`), which are stated in terms of the plan:
what it keeps, what it writes.
"""

from __future__ import annotations

import io
import json
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
    "original_uids",
    "raw_private_tokens",
    "tag_actions",
]

WELL_KNOWN_UID_PREFIX: Final = "1.2.840.10008."
_BULK: Final = ("OB", "OW", "OF", "OD", "OL", "OV", "UN")
_DUMMIES: Final = {"ANONYMIZED", "ANONYMOUS", "19000101", "19000101000000", "000000", "0", "000Y"}
_CHANGED: Final = ("Z", "D", "U", "S", "P", "H", "R")
_MIN_TOKEN: Final = 4


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
            "Export verification's rules, applied to the file's bytes and path: the "
            "source instance's identity values (names, IDs, birth date, address, "
            "pseudonymised values) occur nowhere; every other original value the plan "
            "removes, empties or replaces occurs only inside elements the plan keeps.",
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


_SR_CONTENT: Final = r"^(?:0040A730|00400555)\["  # Content / Acquisition Context Sequence


def check_replaced(
    out: pl.DataFrame, source: pl.DataFrame, actions: pl.DataFrame, *, structured: bool = False
) -> pl.DataFrame:
    """Elements the profile changes (Z/D/S/…, dates under C) that kept their original value.

    With ``structured`` (``clean-structured-content``) a time inside SR content is kept,
    as the plan keeps it (a shift by whole days leaves a time of day as it is).
    """
    if structured:
        out = out.filter(~((pl.col("vr") == "TM") & pl.col("path").str.contains(_SR_CONTENT)))
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
                standard = text.startswith(WELL_KNOWN_UID_PREFIX)  # a SOP class: no one
                if len(text) >= _MIN_TOKEN and text.isprintable() and not standard:
                    rows.append((sid, text, None, tag))
    return pl.DataFrame(
        rows,
        schema={"source_id": pl.Int64, "token": pl.String, "keyword": pl.String, "tag": pl.String},
        orient="row",
    )


def check_burned_in(
    out_inst: pl.DataFrame, files: pl.DataFrame, redacted: set[int], config: Any
) -> pl.DataFrame:
    """Written files whose pixels likely carry burned-in text and that were not redacted.

    The risk is the audit's burned-in rule applied to the written file's own header;
    ``files`` maps the written files' ``file_id`` to ``output_path`` and ``source_id``;
    ``redacted`` holds the source instances that were redacted or that a complete OCR
    scan cleared (no text found).
    """
    from gantry.audit._burned import burned_in_findings
    from gantry.audit._rules import AuditContext

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
