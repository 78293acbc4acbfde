"""Build the remediation plan: one row per action, computed over whole columns.

Order of precedence for an element (the first rule that applies wins):

1. it sits inside a sequence that is removed or emptied → covered by that row;
2. ``phi_tags`` override in the config (rule ``config``);
3. the config ``keep`` list (rule ``keep``);
4. PatientID / PatientName at top level → pseudonym per config (rule ``pseudonym``);
5. private elements → removed unless safe (rule ``private``);
6. the profile, exact tags before repeating-group patterns (rule = profile source);
7. a UI element holding a UID that is being remapped elsewhere (rule ``uid-reference``);
8. a kept text value holding the patient's identity gets a dummy (rule ``identity-in-kept``);
9. otherwise kept (no row).

Well-known UIDs (the PS3.6 registry, ``1.2.840.10008.*``: SOP classes, transfer
syntaxes, coding schemes, standard frames of reference) are never remapped; every
other UI value is, wherever it sits (rule ``uid``), unless ``retain-uids`` is set.
File meta (group 0002) is rebuilt at export and not planned.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Final, cast

import polars as pl

from gantry._version import __version__
from gantry.plan._dates import shift_dates
from gantry.plan._edited import with_edits
from gantry.plan._keys import date_offset, keyed_hex, remap_uid, uid_map
from gantry.plan._match import joined_names, long_enough
from gantry.plan._paths import sequence_ancestors
from gantry.plan._pseudonyms import assign_pseudonyms, render_template
from gantry.sr._clean import content_actions, text_rows
from gantry.sr._documents import document_actions
from gantry.sr._drop import drop_rows
from gantry.store import Store

PLAN_SCHEMA = {
    "file_id": pl.Int64,
    "path": pl.String,
    "tag": pl.String,
    "keyword": pl.String,
    "vr": pl.String,
    "action": pl.String,
    "new_value": pl.String,
    "rule": pl.String,
}

CONFIG_ACTIONS = {
    "REMOVE": "X",
    "EMPTY": "Z",
    "DUMMY": "D",
    "KEEP": "K",
    "CLEAN": "C",
    "REMAP": "U",
    "SHIFT": "S",
    "REPLACE": "R",
    "HASH": "H",
    "PSEUDONYM": "P",
}

DUMMY_BY_VR = {
    "AE": "ANONYMOUS",
    "AS": "000Y",
    "CS": "ANONYMOUS",
    "DA": "19000101",
    "DS": "0",
    "DT": "19000101000000",
    "IS": "0",
    "LO": "ANONYMIZED",
    "LT": "ANONYMIZED",
    "PN": "ANONYMIZED",
    "SH": "ANONYMIZED",
    "ST": "ANONYMIZED",
    "TM": "000000",
    "UC": "ANONYMIZED",
    "UT": "ANONYMIZED",
    "UR": "",
    "FL": "0",
    "FD": "0",
    "SL": "0",
    "SS": "0",
    "UL": "0",
    "US": "0",
    "SV": "0",
    "UV": "0",
}

WELL_KNOWN_UID_PREFIX = "1.2.840.10008."
DEFINITION_UID_KEYWORDS = (
    r"SOPClass|TransferSyntax|CodingScheme|MappingResource|ContextGroupExtensionCreator"
    r"|^ContextUID$"
)
"""UI attributes that name a definition (a SOP class, a transfer syntax, a coding
scheme or context group), not an instance: a vendor's private value is kept, as a
well-known one is, or the file would no longer say what it is."""


def definition_uid_tags() -> list[str]:
    """Tags (``GGGGEEEE``) of the UI attributes matching :data:`DEFINITION_UID_KEYWORDS`.

    Examples
    --------
    >>> tags = definition_uid_tags()
    >>> "00080016" in tags and "0008010C" in tags and "00020010" in tags
    True
    >>> "00089123" in tags  # Creator-Version UID names an instance of software: remapped
    False
    """
    import re

    from pydicom.datadict import DicomDictionary

    pattern = re.compile(DEFINITION_UID_KEYWORDS)
    return sorted(
        f"{tag:08X}"
        for tag, entry in DicomDictionary.items()
        if entry[0] == "UI" and pattern.search(entry[4])
    )


SUPPLEMENT = {
    "00080051": "IssuerOfAccessionNumberSequence",
    "00100024": "IssuerOfPatientIDQualifiersSequence",
    "00400026": "OrderPlacerIdentifierSequence",
    "00400027": "OrderFillerIdentifierSequence",
    "00400031": "LocalNamespaceEntityID",
    "00400032": "UniversalEntityID",
    "00400033": "UniversalEntityIDType",
    "00400036": "AssigningFacilitySequence",
}
"""Identifier-issuer attributes (HL7 v2 HD) that Table E.1-1 does not list but that name
the issuing institution or carry identifiers: removed (rule ``gantry-supplement``) unless
``retain-institution-identity`` is in effect."""
TEXT_VRS = ("LO", "LT", "SH", "ST", "UT", "UC", "PN")

TYPE2_SEQUENCES = ["00081111", "00400555"]
"""Referenced Performed Procedure Step Sequence (SR Document Series) and Acquisition
Context Sequence: Type 2 where they occur, so emptied rather than removed.

Kept by hand: an attribute's type depends on the IOD module it sits in (PS3.3), and
neither the repository nor a dependency ships PS3.3's module tables in a form to
read (pydicom's dictionary has VR and VM only; dciodvfy compiles them into its
binary).  These are the sequences that Table E.1-1 removes with a compound X/Z
code and that are Type 2 in the IODs Gantry writes; the dciodvfy tests
(``tests/export/test_bundled.py``, ``tests/sr``) fail if a written file lacks a
Type 2 attribute, which is how a missing entry shows."""

BULK_VRS = ("OB", "OW", "OF", "OD", "OL", "OV", "UN")
_VR_FITS: dict[str, str] = {
    "AE": r"^[^\\]{0,16}$",
    "AS": r"^[0-9]{3}[DWMY]$",
    "CS": r"^[A-Z0-9 _]{0,16}$",
    "DA": r"^[0-9]{8}$",
    "DS": r"^ *[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)? *$",
    "DT": r"^[0-9]{4,14}(\.[0-9]{1,6})?([+-][0-9]{4})?$",
    "IS": r"^ *[+-]?[0-9]{1,11} *$",
    "SH": r"^[^\\]{0,16}$",
    "LO": r"^[^\\]{0,64}$",
    "TM": r"^[0-9]{2,6}(\.[0-9]{1,6})?$",
    "UI": r"^[0-9.]{0,64}$",
    "US": r"^[0-9]+$",
    "UL": r"^[0-9]+$",
    "UV": r"^[0-9]+$",
    "SS": r"^-?[0-9]+$",
    "SL": r"^-?[0-9]+$",
    "SV": r"^-?[0-9]+$",
    "FL": r"^-?[0-9]+(\.[0-9]*)?([eE][+-]?[0-9]+)?$",
    "FD": r"^-?[0-9]+(\.[0-9]*)?([eE][+-]?[0-9]+)?$",
}
"""What a single value of each VR may look like (length limits included); a pseudonym
or template value that does not fit is replaced by the VR's dummy (or removed)."""

# (0012,0064) codes: CID 7050
_DEID_SCHEME = "DCM"


@dataclass(frozen=True)
class PlanSummary:
    """What :func:`build_plan` produced."""

    rows: int
    instances: int
    patients: int
    by_action: pl.DataFrame
    seconds: float


def _config_value(obj: Any, name: str, default: Any = None) -> Any:
    return getattr(obj, name, default) if obj is not None else default


def _enum_text(value: Any) -> str:
    return str(getattr(value, "value", value))


def build_plan(
    store: Store, config: Any, *, persist: bool = True, chunk_rows: int | None = None
) -> pl.DataFrame:
    """Compute the remediation plan for every indexed instance (writes no DICOM).

    Returns the plan frame (schema :data:`PLAN_SCHEMA`); the caller persists it.
    New patients' pseudonym numbers and the documents' checks are recorded in
    the store unless ``persist`` is False (a dry run: nothing is written).
    The plan is built ``chunk_rows`` instances at a time (:func:`plan_parts`);
    the result is the same whatever the chunk size.
    """
    parts = list(plan_parts(store, config, persist=persist, chunk_rows=chunk_rows))
    if not parts:
        return pl.DataFrame(schema=PLAN_SCHEMA)
    return pl.concat(parts).sort("file_id", "path")


@dataclass(frozen=True)
class _Globals:
    """What the plan decides over every instance before the chunks."""

    secret: bytes
    profile: Any
    uid_root: str
    option_names: frozenset[str]
    per_file: pl.DataFrame
    documents: pl.DataFrame
    redaction: pl.DataFrame
    deface: pl.DataFrame


def plan_parts(
    store: Store, config: Any, *, persist: bool = True, chunk_rows: int | None = None
) -> Iterator[pl.DataFrame]:
    """The plan as parts of at most about ``chunk_rows`` instances each (bounded memory);
    see :func:`scoped_plan_parts`."""
    for part, _ in scoped_plan_parts(store, config, persist=persist, chunk_rows=chunk_rows):
        yield part


def scoped_plan_parts(
    store: Store, config: Any, *, persist: bool = True, chunk_rows: int | None = None
) -> Iterator[tuple[pl.DataFrame, Store]]:
    """The plan as parts of at most about ``chunk_rows`` instances each (bounded memory),
    each with the store its chunk was planned from (its batch tables hold only the
    chunk's rows: the whole store when there is one chunk).

    Each part is sorted by ``file_id, path`` and holds every row of its instances;
    together the parts are the plan :func:`build_plan` returns.  Pseudonyms, date
    offsets, the document checks, the redaction zones, the defacing planes (a
    series is fitted whole) and the set of UIDs remapped anywhere are decided
    over the whole index first, so a patient, a study, a series or a UID met in
    several chunks is treated the same in each.
    """
    from gantry.plan._chunks import PLAN_CHUNK_ROWS, ChunkStore, plan_chunks
    from gantry.profiles import load_profile
    from gantry.sr._documents import check_documents

    secret = store.secret
    profile = load_profile(config.privacy_profile, config.options)
    uid_root = str(_config_value(config, "uid_root", "2.25") or "2.25")

    instances = store.scan("instances")
    icols = set(instances.collect_schema().names())
    if "PatientID" not in icols:
        instances = instances.with_columns(pl.lit(None, pl.String).alias("PatientID"))
    inst = instances.select(
        "file_id", pl.col("PatientID").cast(pl.String).fill_null("").alias("PatientID")
    ).collect()
    if inst.height == 0:
        return

    # -- per patient: pseudonym, date offset ---------------------------------------------
    pseudo_cfg = _config_value(config, "pseudonym")
    template = str(_config_value(pseudo_cfg, "template", "ANON_{id}"))
    method = _enum_text(_config_value(pseudo_cfg, "method", "counter"))
    width = int(_config_value(pseudo_cfg, "width", 4) or 4)
    patients = assign_pseudonyms(
        store,
        inst["PatientID"].unique().to_list(),
        template=template,
        method=method,
        width=width,
        persist=persist,
    )
    jitter = _config_value(config, "date_jitter")
    lo = int(_config_value(jitter, "min_days", -365))
    hi = int(_config_value(jitter, "max_days", -1))
    patients = patients.with_columns(
        pl.Series(
            "days",
            [date_offset(secret, k, lo, hi) for k in patients["patient_key"].to_list()],
            dtype=pl.Int64,
        )
    )
    per_file = inst.join(
        patients.select("PatientID", "number", "patient_key", "pseudonym", "days"),
        on="PatientID",
        how="left",
    )
    option_names = frozenset(_enum_text(o) for o in profile.options)
    g = _Globals(
        secret=secret,
        profile=profile,
        uid_root=uid_root,
        option_names=option_names,
        per_file=per_file,
        documents=check_documents(
            store, check="clean-structured-content" in option_names, persist=persist
        ),
        redaction=_redaction_rows(store, config),
        deface=_deface_rows(store, config),  # a series is fitted whole, once
    )
    chunks = plan_chunks(store, inst, chunk_rows or PLAN_CHUNK_ROWS)
    del inst, patients
    if len(chunks) == 1:
        yield _plan_chunk(store, config, g, None, None), store
        return
    views = [ChunkStore(store, c) for c in chunks]
    remapped = _remapped_everywhere(store, config, g, views)
    for view in views:
        # the view stands for the store: same methods, its batch tables one chunk's rows
        scope = cast(Store, view)
        yield _plan_chunk(scope, config, g, view.chunk, remapped), scope


def _remapped_everywhere(store: Store, config: Any, g: _Globals, views: list[Any]) -> pl.Series:
    """The UIDs remapped in some chunk that a kept UI value of some chunk holds.

    Only UI rows decide it (their actions do not depend on other rows): each
    chunk's remapped UIDs are spilled to a temporary Parquet file, and only those
    equal to a kept UI value anywhere are kept in memory.
    """
    import shutil

    spill = store.layout.new_tmp_dir("plan-uids")
    try:
        kept: list[pl.Series] = []
        for i, view in enumerate(views):
            el = _element_actions(view, config, g, ui_only=True)
            el.filter(pl.col("action") == "U").select(
                pl.col("value").str.split("\\").explode().alias("uid")
            ).unique().write_parquet(spill / f"{i:06d}.parquet")
            kept.append(
                el.filter((pl.col("action") == "K") & (pl.col("vr") == "UI"))["value"].unique()
            )
        candidates = pl.concat(kept).unique()
        return (
            pl.scan_parquet(str(spill / "*.parquet"))
            .filter(pl.col("uid").is_in(candidates.implode()))
            .unique()
            .collect()["uid"]
        )
    finally:
        shutil.rmtree(spill, ignore_errors=True)


def _element_actions(
    store: Store, config: Any, g: _Globals, *, ui_only: bool = False
) -> pl.DataFrame:
    """The element frame with each row's action and rule, up to the remapping of UIDs
    (steps 2–7 of the module docstring, but ``uid-reference``)."""
    profile = g.profile
    option_names = g.option_names
    chunk = getattr(store, "chunk", None)
    # -- elements with their candidate actions -------------------------------------------
    el = with_edits(
        store,
        store.scan("elements")
        .select("file_id", "path", "tag", "depth", "keyword", "vr", "private_creator", "value")
        .filter(
            ~pl.col("tag").str.starts_with("0002") & (pl.lit(not ui_only) | (pl.col("vr") == "UI"))
        )
        .collect(),
        owns=chunk.owns(pl.col("file_id")) if chunk is not None else None,
    )
    if ui_only:
        el = el.filter(pl.col("vr") == "UI")
    el = el.with_columns(pl.col("tag").str.to_integer(base=16).cast(pl.UInt32).alias("_tag"))
    hits = profile.match(el["tag"]).join(
        profile.table.select("pattern", pl.col("basic_code").alias("_code")).unique("pattern"),
        on="pattern",
        how="left",
        maintain_order="left",
    )
    el = el.with_columns(hits["action"].alias("_p_action"), hits["source"].alias("_p_rule"))
    # a compound code (X/Z, X/Z/D) on a sequence removes it: an empty sequence is invalid
    # where the attribute is Type 3, which these are in the common IODs
    sq_compound = (
        (pl.col("vr") == "SQ")
        & pl.col("_p_action").is_in(["Z", "D"])
        & hits["_code"].fill_null("").str.starts_with("X/")
    )
    el = el.with_columns(
        pl.when(sq_compound).then(pl.lit("X")).otherwise(pl.col("_p_action")).alias("_p_action")
    )
    # ... except sequences that are Type 2 where they occur: emptied (their content goes all
    # the same), so the written file keeps the attribute its IOD requires
    el = el.with_columns(
        pl.when(
            (pl.col("_p_action") == "X")
            & (pl.col("vr") == "SQ")
            & pl.col("tag").is_in(TYPE2_SEQUENCES)
        )
        .then(pl.lit("Z"))
        .otherwise(pl.col("_p_action"))
        .alias("_p_action")
    )
    if not any(_enum_text(o) == "retain-institution-identity" for o in profile.options):
        supplement = pl.col("_p_action").is_null() & pl.col("tag").is_in(list(SUPPLEMENT))
        el = el.with_columns(
            pl.when(supplement).then(pl.lit("X")).otherwise(pl.col("_p_action")).alias("_p_action"),
            pl.when(supplement)
            .then(pl.lit("gantry-supplement"))
            .otherwise(pl.col("_p_rule"))
            .alias("_p_rule"),
        )
    is_private = (pl.col("_tag") // 65536) % 2 == 1

    # config overrides and keep list
    overrides = _config_overrides(config)
    el = el.join(overrides, left_on="tag", right_on="_o_tag", how="left")
    keep = [str(t).replace(",", "").upper() for t in (_config_value(config, "keep", ()) or ())]

    # private elements
    el = el.with_columns(_private_action(config, profile).alias("_priv_action"))

    patient_name_mode = _enum_text(_config_value(config, "patient_name", "pseudonym"))
    name_action = {"pseudonym": "P", "empty": "Z", "remove": "X", "keep": "K"}.get(
        patient_name_mode, "P"
    )
    top = pl.col("depth") == 0
    action = (
        pl.when(pl.col("_o_action").is_not_null())
        .then(pl.col("_o_action"))
        .when(pl.col("tag").is_in(keep))
        .then(pl.lit("K"))
        .when(top & (pl.col("tag") == "00100020"))
        .then(pl.lit("P"))
        .when(top & (pl.col("tag") == "00100010"))
        .then(pl.lit(name_action))
        .when(is_private)
        .then(pl.col("_priv_action"))
        .when(pl.col("_p_action").is_not_null())
        .then(pl.col("_p_action"))
        .otherwise(pl.lit("K"))
    )
    rule = (
        pl.when(pl.col("_o_plugin").is_not_null())
        .then(pl.concat_str(pl.lit("plugin:"), pl.col("_o_plugin")))
        .when(pl.col("_o_action").is_not_null())
        .then(pl.lit("config"))
        .when(pl.col("tag").is_in(keep))
        .then(pl.lit("keep"))
        .when(top & pl.col("tag").is_in(["00100020", "00100010"]))
        .then(pl.lit("pseudonym"))
        .when(is_private)
        .then(pl.lit("private"))
        .when(pl.col("_p_action").is_not_null())
        .then(pl.col("_p_rule"))
        .otherwise(pl.lit("default-keep"))
    )
    el = el.with_columns(action.alias("action"), rule.alias("rule"))
    # SR content items and overlay planes (gantry.sr): per-item cleaning under the option
    el = content_actions(
        el,
        clean_content="clean-structured-content" in option_names,
        clean_graphics="clean-graphics" in option_names,
    )
    el = document_actions(el, g.documents)

    # well-known UIDs are never remapped; U on a non-UI element (a sequence) keeps it
    local = _has_local_uid(pl.col("value")) & ~pl.col("tag").is_in(definition_uid_tags())
    el = el.with_columns(
        pl.when((pl.col("action") == "U") & ((pl.col("vr") != "UI") | ~local))
        .then(pl.lit("K"))
        .otherwise(pl.col("action"))
        .alias("action")
    )
    # every other UID is remapped wherever it sits (Table E.1-1 or not, private, nested)
    if "retain-uids" not in option_names:
        other_uid = (
            (pl.col("action") == "K")
            & (pl.col("vr") == "UI")
            & local
            & ~pl.col("rule").is_in(["config", "keep"])  # kept on purpose by the config
        )
        el = el.with_columns(
            pl.when(other_uid).then(pl.lit("U")).otherwise(pl.col("action")).alias("action"),
            pl.when(other_uid).then(pl.lit("uid")).otherwise(pl.col("rule")).alias("rule"),
        )
    return el


def _plan_chunk(
    store: Store, config: Any, g: _Globals, chunk: Any, remapped: pl.Series | None
) -> pl.DataFrame:
    """The plan rows of one chunk (``chunk`` None: the whole store).

    ``remapped``: the UIDs remapped anywhere that a kept UI value holds
    (:func:`_remapped_everywhere`); None to take them from this chunk alone.
    """
    secret, uid_root, profile, option_names = g.secret, g.uid_root, g.profile, g.option_names
    per_file, redaction, deface = g.per_file, g.redaction, g.deface
    if chunk is not None:
        per_file = per_file.filter(chunk.owns(pl.col("file_id")))
        redaction = redaction.filter(chunk.owns(pl.col("file_id")))
        deface = deface.filter(chunk.owns(pl.col("file_id")))
    el = _element_actions(store, config, g)
    # any other UI element holding a UID that is remapped elsewhere is remapped too
    if remapped is None:
        remapped = el.filter(pl.col("action") == "U").select(
            pl.col("value").str.split("\\").explode().alias("uid")
        )["uid"]
    remapped_set = remapped.unique()
    el = el.with_columns(
        pl.when(
            (pl.col("action") == "K")
            & (pl.col("vr") == "UI")
            & pl.col("value").is_in(remapped_set.implode())
        )
        .then(pl.lit("U"))
        .otherwise(pl.col("action"))
        .alias("action"),
        pl.when(
            (pl.col("action") == "K")
            & (pl.col("vr") == "UI")
            & pl.col("value").is_in(remapped_set.implode())
        )
        .then(pl.lit("uid-reference"))
        .otherwise(pl.col("rule"))
        .alias("rule"),
    )

    el = el.join(per_file, on="file_id", how="left")
    el = _resolve_clean(el, store)
    el = _identity_in_kept(el, secret, config)
    # a dummy UID is a remapped one
    el = el.with_columns(
        pl.when((pl.col("action") == "D") & (pl.col("vr") == "UI"))
        .then(pl.lit("U"))
        .otherwise(pl.col("action"))
        .alias("action")
    )
    el = _whole_overlays(el)
    el = _drop_covered_by_parent(el)
    el, sr_text = text_rows(el, store, mode=str(_config_value(config, "sr_text", "clean")))
    el = el.filter(pl.col("action") != "K")

    plan = _new_values(el, secret, uid_root, config)
    added = _added_rows(per_file, profile, config, redaction["file_id"])
    parts = [
        plan,
        sr_text,
        _age_rows(store, config),
        added,
        redaction,
        _missing_sop(store, secret, uid_root),
        deface,
    ]
    plan = pl.concat([p.select(list(PLAN_SCHEMA)).cast(PLAN_SCHEMA) for p in parts])
    plan = drop_rows(
        plan,
        store,
        names=_config_value(config, "sr_drop", ()) or (),
        clean_content="clean-structured-content" in option_names,
    )
    return plan.select(list(PLAN_SCHEMA)).cast(PLAN_SCHEMA).sort("file_id", "path")


def is_well_known_uid(uid: pl.Expr) -> pl.Expr:
    """Whether a UID is one the standard defines (PS3.6 registry): never remapped."""
    from pydicom._uid_dict import UID_dictionary

    return uid.str.starts_with(WELL_KNOWN_UID_PREFIX) | uid.is_in(list(UID_dictionary))


def _has_local_uid(value: pl.Expr) -> pl.Expr:
    """Whether a UI value holds at least one UID that is not well known."""
    part = pl.element().str.strip_chars(" \x00")
    return (
        value.fill_null("")
        .str.split("\\")
        .list.eval((part != "") & ~is_well_known_uid(part))
        .list.any()
    )


def _config_overrides(config: Any) -> pl.DataFrame:
    rows: dict[str, list[Any]] = {"_o_tag": [], "_o_action": [], "_o_value": [], "_o_plugin": []}
    for tag, rule in (_config_value(config, "phi_tags", {}) or {}).items():
        action = _config_value(rule, "action", "REMOVE")
        letter = getattr(action, "plan_action", None) or CONFIG_ACTIONS[_enum_text(action).upper()]
        rows["_o_tag"].append(str(tag).replace(",", "").upper())
        rows["_o_action"].append(letter)
        rows["_o_value"].append(_config_value(rule, "value"))
        rows["_o_plugin"].append(_config_value(rule, "plugin"))
    return pl.DataFrame(rows, schema=dict.fromkeys(rows, pl.String))


def _private_action(config: Any, profile: Any) -> pl.Expr:
    """K for safe private elements (and their creators), X for the rest."""
    remove = bool(_config_value(config, "remove_private_tags", True))
    retain_safe = str(profile.private_action(safe=True)) == "K"
    safe_rules = list(_config_value(config, "safe_private_tags", ()) or ())
    if not remove:
        return pl.lit("K")
    if not (retain_safe and safe_rules):
        return pl.lit("X")
    safe_expr: pl.Expr = pl.lit(False)
    elem_byte = pl.col("tag").str.slice(6, 2)
    group = pl.col("tag").str.slice(0, 4)
    for rule in safe_rules:
        creator = str(_config_value(rule, "creator", ""))
        elements = list(_config_value(rule, "elements", ()) or ())
        cond_creator = pl.col("private_creator").str.strip_chars() == creator.strip()
        if not elements or elements == ["all"]:
            safe_expr = safe_expr | cond_creator
            continue
        for e in elements:
            text = str(e).replace(",", "").replace("(", "").replace(")", "").upper()
            g, b = text[:4], text[6:8]
            safe_expr = safe_expr | (cond_creator & (group == g) & (elem_byte == b))
    # creator elements (gggg,0010-00FF) are kept when the block has safe members;
    # approximated per creator name here, exact enough since blocks of one creator share it
    creators_kept = safe_expr
    is_creator = pl.col("tag").str.slice(4, 2) == "00"
    return (
        pl.when(is_creator & creators_kept)
        .then(pl.lit("K"))
        .when(~is_creator & safe_expr)
        .then(pl.lit("K"))
        .otherwise(pl.lit("X"))
    )


def _resolve_clean(el: pl.DataFrame, store: Store) -> pl.DataFrame:
    """C (clean): dates are shifted; free text is emptied when it names the patient."""
    is_c = pl.col("action") == "C"
    el = el.with_columns(
        pl.when(is_c & pl.col("vr").is_in(["DA", "DT"]))
        .then(pl.lit("S"))
        .when(is_c & (pl.col("vr") == "TM"))
        .then(pl.lit("K"))
        .otherwise(pl.col("action"))
        .alias("action")
    )
    text_c = el.filter((pl.col("action") == "C") & pl.col("vr").is_in(TEXT_VRS))
    if text_c.height == 0:
        return el.with_columns(
            pl.when(pl.col("action") == "C")
            .then(pl.lit("K"))
            .otherwise(pl.col("action"))
            .alias("action")
        )
    tokens = identity_tokens(store).filter(
        pl.col("file_id").is_in(text_c["file_id"].unique().implode())
    )
    hits = (
        text_c.select("file_id", "path", "value")
        .join(tokens, on="file_id")
        .filter(pl.col("value").str.to_uppercase().str.contains(pl.col("token"), literal=True))
        .select("file_id", "path")
        .unique()
        .with_columns(pl.lit(True).alias("_hit"))
    )
    el = el.join(hits, on=["file_id", "path"], how="left")
    return el.with_columns(
        pl.when((pl.col("action") == "C") & pl.col("_hit").fill_null(False))
        .then(pl.lit("Z"))
        .when(pl.col("action") == "C")
        .then(pl.lit("K"))
        .otherwise(pl.col("action"))
        .alias("action")
    ).drop("_hit")


def _identity_in_kept(el: pl.DataFrame, secret: bytes, config: Any) -> pl.DataFrame:
    """A kept text value holding the patient's identity gets the VR's dummy (``D``).

    The identity values are those export verification searches every output byte
    for (:mod:`gantry.plan._tokens`): a kept Coding Scheme Designator ``TEST`` of a
    patient named ``Test`` would make the export fail, so the plan replaces it
    (rule ``identity-in-kept``).  Values the config acknowledges stay.
    """
    from gantry.plan._tokens import identity_in_kept, verification_tokens
    from gantry.sr._clean import content_text

    base = el.lazy().select(
        "file_id", "path", "tag", "keyword", "vr", "value", "action",
        pl.lit(None, pl.String).alias("new_value"),
    )  # fmt: skip
    ack = [(a.tag, a.value_hash) for a in (_config_value(config, "acknowledged", ()) or ())]
    tokens = verification_tokens(base, secret=secret, acknowledged=ack, identity_only=True)
    hits = identity_in_kept(base, tokens)
    hits = hits.filter(pl.col("vr").is_in(list(DUMMY_BY_VR))).select(
        "file_id", "path", pl.lit(True).alias("_ident")
    )
    # what the config keeps on purpose stays: verification then names it; SR content
    # Text Values are cleaned word by word (gantry.sr.text_rows) rather than replaced
    chosen = el.filter(pl.col("rule").is_in(["config", "keep"]) | content_text()).select(
        "file_id", "path"
    )
    hits = hits.join(chosen, on=["file_id", "path"], how="anti")
    if hits.height == 0:
        return el
    el = el.join(hits, on=["file_id", "path"], how="left")
    hit = pl.col("_ident").fill_null(False)
    return el.with_columns(
        pl.when(hit).then(pl.lit("D")).otherwise(pl.col("action")).alias("action"),
        pl.when(hit).then(pl.lit("identity-in-kept")).otherwise(pl.col("rule")).alias("rule"),
    ).drop("_ident")


BIRTH_DATE_FORMS: Final = (
    "%Y%m%d", "%d/%m/%Y", "%m/%d/%Y", "%d.%m.%Y", "%Y-%m-%d", "%d-%m-%Y", "%Y/%m/%d", "%d-%b-%Y",
)  # fmt: skip
"""How a birth date is written in free text ("DOB 12/05/1961", "born 12-May-1961").

No layout with a blank: SR text is cleaned word by word, and "MAY" alone identifies no one.
"""


def identity_tokens(store: Store) -> pl.DataFrame:
    """``file_id, token``: upper-case identifying tokens of each instance's patient.

    Name components of at least 3 characters (2 in Han, Kana or Hangul), PatientID,
    OtherPatientIDs, AccessionNumber, and the birth date (``YYYYMMDD`` and the layouts
    free text writes it in, :data:`BIRTH_DATE_FORMS`). Used to clean free text and to
    verify output.
    """
    lf = store.scan("instances")
    cols = set(lf.collect_schema().names())
    frames = []
    for name in (
        "PatientName",
        "PatientID",
        "AccessionNumber",
        "PatientBirthDate",
        "OtherPatientIDs",
    ):
        if name not in cols:
            continue
        col = pl.col(name)
        dtype = lf.collect_schema()[name]
        if isinstance(dtype, pl.List):
            expr = col.cast(pl.List(pl.String))
        elif dtype == pl.Date:
            expr = pl.concat_list([col.dt.strftime(f) for f in BIRTH_DATE_FORMS])
        elif name == "PatientName":
            text = col.cast(pl.String)
            expr = pl.concat_list(
                text.str.replace_all("[=^]", " ").str.split(" "), joined_names(text)
            )
        else:
            expr = pl.concat_list(col.cast(pl.String))
        frames.append(lf.select("file_id", expr.alias("token")).explode("token"))
    if not frames:
        return pl.DataFrame(schema={"file_id": pl.Int64, "token": pl.String})
    return (
        pl.concat(frames)
        .with_columns(pl.col("token").str.strip_chars().str.to_uppercase())
        .filter(long_enough(pl.col("token")))
        .unique()
        .collect()
    )


def _whole_overlays(el: pl.DataFrame) -> pl.DataFrame:
    """An overlay whose data is removed goes whole: the rest of its group would describe
    an Overlay Plane without data (rule ``overlay``)."""
    gone = el.filter(
        (pl.col("depth") == 0)
        & pl.col("tag").str.contains(r"^60[0-9A-E][02468ACE]3000$")
        & (pl.col("action") == "X")
    ).select("file_id", pl.col("tag").str.slice(0, 4).alias("_group"))
    if gone.height == 0:
        return el
    el = el.with_columns(pl.col("tag").str.slice(0, 4).alias("_group")).join(
        gone.with_columns(pl.lit(True).alias("_overlay")), on=["file_id", "_group"], how="left"
    )
    hit = pl.col("_overlay").fill_null(False) & (pl.col("depth") == 0) & (pl.col("action") != "X")
    return el.with_columns(
        pl.when(hit).then(pl.lit("X")).otherwise(pl.col("action")).alias("action"),
        pl.when(hit).then(pl.lit("overlay")).otherwise(pl.col("rule")).alias("rule"),
    ).drop("_group", "_overlay")


def _drop_covered_by_parent(el: pl.DataFrame) -> pl.DataFrame:
    """Drop rows inside a sequence that is itself removed or emptied.

    A dummy sequence (``D``) keeps its first item, whose elements follow their own
    rules: only the rows of its other items are covered.
    """
    seqs = el.filter((pl.col("vr") == "SQ") & pl.col("action").is_in(["X", "Z", "D"])).select(
        "file_id", pl.col("path").alias("_anc"), pl.col("action").alias("_anc_action")
    )
    if seqs.height == 0:
        return el
    nested = el.filter(pl.col("depth") > 0).select("file_id", "path")
    # ancestors of "A[0].B[1].C" are the sequences "A" and "A[0].B"
    anc = sequence_ancestors(nested).select("file_id", "path", "_anc", "_item")
    covered = (
        anc.join(seqs, on=["file_id", "_anc"], how="inner")
        .filter((pl.col("_anc_action") != "D") | (pl.col("_item") > 0))
        .select("file_id", "path")
        .unique()
    )
    return el.join(covered, on=["file_id", "path"], how="anti")


def _plugin_values(rows: pl.DataFrame) -> pl.DataFrame:
    """``new_value`` of REPLACE rows whose value a plan-action plugin computes.

    Each distinct value is transformed once; ``None`` from the plugin empties
    the element.  A plugin that raises fails the plan with a PluginError naming it.
    """
    from gantry.errors import PluginError
    from gantry.plugins import GROUPS, PluginKind, load_plugin

    if rows.height == 0:
        return rows
    kind = PluginKind.PLAN_ACTION
    pairs = rows.select("_o_plugin", pl.col("value").fill_null("")).unique()
    new = []
    for name, value in pairs.iter_rows():
        action = load_plugin(kind, name)
        try:
            out = action.apply(value)
        except Exception as exc:  # the plugin's own code; never quote the value
            raise PluginError(name, GROUPS[kind], f"`apply` failed ({type(exc).__name__})") from exc
        if out is not None and not isinstance(out, str):
            raise PluginError(
                name, GROUPS[kind], f"`apply` must return str or None, got {type(out).__name__}"
            )
        new.append(out or "")
    mapping = pairs.with_columns(pl.Series("_plugin_value", new, dtype=pl.String))
    return (
        rows.with_columns(pl.col("value").fill_null("").alias("_v"))
        .join(mapping, left_on=["_o_plugin", "_v"], right_on=["_o_plugin", "value"], how="left")
        .with_columns(pl.col("_plugin_value").alias("new_value"))
        .drop("_v", "_plugin_value")
    )


def _new_values(el: pl.DataFrame, secret: bytes, uid_root: str, config: Any) -> pl.DataFrame:
    """Fill ``new_value`` for each action."""
    base = el.with_columns(pl.lit(None, pl.String).alias("new_value"))
    out = []
    # X remove, Z empty
    out.append(base.filter(pl.col("action") == "X"))
    out.append(base.filter(pl.col("action") == "Z").with_columns(pl.lit("").alias("new_value")))
    # D dummy (sequences and bulk data are emptied)
    d = base.filter(pl.col("action") == "D")
    # (a sequence keeps its first item, a bulk element gets a minimal value of its VR: both
    # written at export, new_value null)
    d = d.with_columns(
        pl.col("vr").replace_strict(DUMMY_BY_VR, default=None).alias("new_value")
    ).with_columns(
        pl.when(pl.col("new_value").is_not_null() | pl.col("vr").is_in(["SQ", *BULK_VRS]))
        .then(pl.lit("D"))
        .otherwise(pl.lit("Z"))
        .alias("action"),
        pl.when(pl.col("vr").is_in(["SQ", *BULK_VRS]))
        .then(pl.lit(None, pl.String))
        .otherwise(pl.col("new_value").fill_null(""))
        .alias("new_value"),
    )
    out.append(d)
    # P pseudonym
    out.append(
        base.filter(pl.col("action") == "P").with_columns(pl.col("pseudonym").alias("new_value"))
    )
    # R replace with a template
    r = base.filter((pl.col("action") == "R") & pl.col("_o_plugin").is_null())
    out.append(
        _plugin_values(base.filter((pl.col("action") == "R") & pl.col("_o_plugin").is_not_null()))
    )
    if r.height:
        r = r.with_columns(
            pl.struct("_o_value", "number", "patient_key")
            .map_elements(
                lambda s: render_template(
                    s["_o_value"] or "", number=s["number"] or 0, key=s["patient_key"] or ""
                ),
                return_dtype=pl.String,
            )
            .alias("new_value")
        )
    out.append(r)
    # H keyed hash of the value
    h = base.filter(pl.col("action") == "H")
    if h.height:
        h = h.with_columns(
            pl.col("value")
            .fill_null("")
            .map_elements(lambda v: keyed_hex(secret, "value", v, 16), return_dtype=pl.String)
            .alias("new_value")
        )
    out.append(h)
    # U remap UIDs (multi-valued too)
    u = base.filter(pl.col("action") == "U")
    if u.height:
        parts = u.select(pl.col("value").str.split("\\").explode().alias("id_old"))["id_old"]
        mapping = uid_map(secret, [p for p in parts.to_list() if p], uid_root)
        u = (
            u.drop("new_value")
            .with_row_index("_r")
            .with_columns(pl.col("value").str.split("\\").alias("_parts"))
            .explode("_parts")
            .join(mapping, left_on="_parts", right_on="id_old", how="left")
            .with_columns(
                pl.when(is_well_known_uid(pl.col("_parts")) | (pl.col("_parts") == ""))
                .then(pl.col("_parts"))
                .otherwise(pl.col("id_new"))
                .alias("id_new")
            )
            .group_by("_r", maintain_order=True)
            .agg(
                pl.exclude("id_new", "_parts").first(),
                pl.col("id_new").str.join("\\").alias("new_value"),
            )
            .drop("_r")
        )
        u = u.select([c for c in base.columns if c != "new_value"] + ["new_value"])
    out.append(u)
    # S shift dates; an unparseable date is emptied instead
    s = base.filter(pl.col("action") == "S")
    if s.height:
        s = s.with_columns(shift_dates(s, value="value", vr="vr", days="days").alias("new_value"))
        s = s.with_columns(
            pl.when(
                pl.col("new_value").is_null()
                & pl.col("value").is_not_null()
                & (pl.col("value") != "")
            )
            .then(pl.lit("Z"))
            .otherwise(pl.lit("S"))
            .alias("action"),
            pl.col("new_value").fill_null(""),
        )
    out.append(s)
    cols = base.columns
    return _conform(pl.concat([o.select(cols) for o in out], how="vertical_relaxed"))


def _conform(plan: pl.DataFrame) -> pl.DataFrame:
    """A pseudonym, template or hash the element's VR cannot hold becomes the VR's dummy
    (``ANON_000016`` is no Decimal String), or the element is removed when it has none."""
    fits = pl.lit(True)
    for vr, pattern in _VR_FITS.items():
        fits = pl.when(pl.col("vr") == vr).then(pl.col("_v").str.contains(pattern)).otherwise(fits)
    written = pl.col("action").is_in(["P", "R", "H", "D"]) & pl.col("new_value").is_not_null()
    plan = plan.with_columns(pl.col("new_value").fill_null("").alias("_v")).with_columns(
        (written & ~fits).alias("_bad")
    )
    dummy = pl.col("vr").replace_strict(DUMMY_BY_VR, default=None)
    return plan.with_columns(
        pl.when(pl.col("_bad") & dummy.is_not_null())
        .then(pl.lit("D"))
        .when(pl.col("_bad"))
        .then(pl.lit("X"))
        .otherwise(pl.col("action"))
        .alias("action"),
        pl.when(pl.col("_bad")).then(dummy).otherwise(pl.col("new_value")).alias("new_value"),
    ).drop("_v", "_bad")


def _missing_sop(store: Store, secret: bytes, uid_root: str) -> pl.DataFrame:
    """An instance without SOP Instance UID gets one, keyed on its file (the written file
    must name one in its file meta)."""
    cols = store.scan("instances").collect_schema().names()
    lf = store.scan("instances").select("file_id")
    if "SOPInstanceUID" in cols:
        lf = store.scan("instances").filter(pl.col("SOPInstanceUID").is_null()).select("file_id")
    missing = lf.collect()
    if missing.height == 0:
        return pl.DataFrame(schema=PLAN_SCHEMA)
    uids = [remap_uid(secret, f"gantry-file:{fid}", uid_root) for fid in missing["file_id"]]
    return missing.select(
        "file_id",
        pl.lit("00080018").alias("path"),
        pl.lit("00080018").alias("tag"),
        pl.lit("SOPInstanceUID").alias("keyword"),
        pl.lit("UI").alias("vr"),
        pl.lit("A").alias("action"),
        pl.Series("new_value", uids, dtype=pl.String),
        pl.lit("missing-sop-instance-uid").alias("rule"),
    )


def _age_rows(store: Store, config: Any) -> pl.DataFrame:
    """HIPAA Safe Harbor: a kept PatientAge over the limit becomes ``090Y``."""
    age_cfg = _config_value(config, "age")
    limit = _config_value(age_cfg, "aggregate_over", 89) if age_cfg is not None else 89
    if limit is None:
        return pl.DataFrame(schema=PLAN_SCHEMA)
    ages = (
        store.scan("elements")
        .filter((pl.col("tag") == "00101010") & (pl.col("depth") == 0))
        .select("file_id", "path", "tag", "keyword", "vr", "value")
        .collect()
    )
    n = ages["value"].str.extract(r"^(\d{3})Y$", 1).cast(pl.Int64, strict=False)
    over = ages.filter(n > int(limit))
    return over.select(
        "file_id",
        "path",
        "tag",
        "keyword",
        "vr",
        pl.lit("R").alias("action"),
        pl.lit(f"{int(limit) + 1:03d}Y").alias("new_value"),
        pl.lit("age").alias("rule"),
    )


def _added_rows(
    per_file: pl.DataFrame, profile: Any, config: Any, redacted: pl.Series
) -> pl.DataFrame:
    """PatientIdentityRemoved, DeidentificationMethod (+ code sequence), temporal flag.

    Instances with redaction zones also get 113101 (Clean Pixel Data Option).
    """

    def codes_json(cleaned: bool) -> str:
        codes = profile.deidentification_codes_for(pixel_data_cleaned=cleaned)
        return json.dumps([{"value": v, "scheme": _DEID_SCHEME, "meaning": m} for v, m in codes])

    options = [_enum_text(o) for o in (_config_value(config, "options", ()) or ())]
    method = f"Gantry {__version__}; {profile.name}" + (
        f" + {', '.join(options)}" if options else ""
    )
    shifted = "retain-longitudinal-modified-dates" in options
    full = "retain-longitudinal-full-dates" in options
    temporal = "MODIFIED" if shifted else ("UNMODIFIED" if full else "REMOVED")
    added = [
        ("00120062", "PatientIdentityRemoved", "CS", "YES"),
        ("00120063", "DeidentificationMethod", "LO", method[:64]),
        ("00120064", "DeidentificationMethodCodeSequence", "SQ", None),
        ("00280303", "LongitudinalTemporalInformationModified", "CS", temporal),
    ]
    files = per_file.select("file_id")
    frames = [
        files.with_columns(
            pl.lit(tag).alias("path"),
            pl.lit(tag).alias("tag"),
            pl.lit(kw).alias("keyword"),
            pl.lit(vr).alias("vr"),
            pl.lit("A").alias("action"),
            (
                pl.lit(value)
                if value is not None
                else pl.when(pl.col("file_id").is_in(redacted.implode()))
                .then(pl.lit(codes_json(True)))
                .otherwise(pl.lit(codes_json(False)))
            ).alias("new_value"),
            pl.lit("deidentification").alias("rule"),
        )
        for tag, kw, vr, value in added
    ]
    return pl.concat(frames)


def _deface_rows(store: Store, config: Any) -> pl.DataFrame:
    """One DEFACE row per instance of the series the config's ``deface`` names."""
    if not getattr(getattr(config, "deface", None), "series", ()):
        return pl.DataFrame(schema=PLAN_SCHEMA)
    from gantry.deface._series import deface_plan_rows

    return deface_plan_rows(store, config)


def _redaction_rows(store: Store, config: Any) -> pl.DataFrame:
    """One REDACT row per instance: its device's zones in the config plus the OCR text boxes."""
    from gantry.audit import match_machines
    from gantry.plan._ocr import ZONES_DTYPE, ocr_zones, overlay_burns

    machines = list(_config_value(config, "machines", ()) or ())
    matched = (
        match_machines(store.scan("instances"), machines, elements=store.scan("elements"))
        .collect()
        .select(pl.col("file_id").cast(pl.Int64), "zones", "fill", "machine_name")
        if machines
        else pl.DataFrame(
            schema={
                "file_id": pl.Int64,
                "zones": ZONES_DTYPE,
                "fill": pl.Int64,
                "machine_name": pl.String,
            }
        )  # fmt: skip
    )
    ocr = ocr_zones(store, config)
    burns = overlay_burns(store, config)
    if matched.height == 0 and ocr.height == 0 and burns.height == 0:
        return pl.DataFrame(schema=PLAN_SCHEMA)
    matched = (
        matched.join(ocr, on="file_id", how="full", coalesce=True)
        .join(burns, on="file_id", how="full", coalesce=True)
        .with_columns(
            pl.concat_str(
                pl.concat_str(pl.lit("machine:"), pl.col("machine_name")),
                pl.when(pl.col("ocr_zones").is_not_null()).then(pl.lit("ocr")),
                pl.when(pl.col("overlays").is_not_null()).then(pl.lit("overlay-burn")),
                separator="+",
                ignore_nulls=True,
            ).alias("machine_name"),
            pl.concat_list(
                pl.col("zones").fill_null(pl.lit([], dtype=ZONES_DTYPE)),
                pl.col("ocr_zones").fill_null(pl.lit([], dtype=ZONES_DTYPE)),
            ).alias("zones"),
            pl.col("fill").fill_null(0),
        )
    )
    return matched.select(
        "file_id",
        pl.lit("7FE00010").alias("path"),
        pl.lit("7FE00010").alias("tag"),
        pl.lit("PixelData").alias("keyword"),
        pl.lit("OB").alias("vr"),
        pl.lit("REDACT").alias("action"),
        pl.struct(pl.col("zones"), pl.col("fill"), pl.col("overlays"))
        .map_elements(
            lambda s: json.dumps(
                {"zones": s["zones"], "fill": s["fill"]}
                | ({"overlays": s["overlays"]} if s["overlays"] else {})
            ),
            return_dtype=pl.String,
        )
        .alias("new_value"),
        pl.col("machine_name").alias("rule"),
    )
