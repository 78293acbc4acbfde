"""The audit rules: Polars expressions over the ``elements`` and ``instances`` tables.

Each rule has an id, a default severity and a one-line meaning (:data:`RULES`).
Element rules are boolean expressions (:func:`element_flags`) evaluated side by
side over the element table, in three streaming queries (every element; the
free-text rows; the UID rows: :func:`element_findings`); the rules that need
the patient's identity (name, IDs, birth date) join per ``file_id`` with a
small per-instance frame; the burned-in rule works on ``instances`` alone
(:func:`gantry.audit._burned.burned_in_findings`).  Nothing loops over files.

Whether a finding is *resolved* comes from the effective action of its element
(:func:`with_actions`), which mirrors the plan stage's order of precedence:
enclosing sequence removed → ``phi_tags`` → ``keep`` → pseudonymised patient
name / ID → private elements (safe list) → profile, exact tags before
patterns → kept.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Final

import polars as pl

if TYPE_CHECKING:
    from polars._typing import PolarsDataType

__all__ = [
    "FINDINGS_SCHEMA",
    "MESSAGES",
    "RULES",
    "AuditContext",
    "Rule",
    "Severity",
    "element_findings",
    "with_actions",
]

WELL_KNOWN_UID_PREFIX: Final = "1.2.840.10008."
"""SOP classes, transfer syntaxes, coding schemes: never identifying, never remapped."""


class Severity(StrEnum):
    """How bad a finding is if it reaches an export unresolved.

    ``high`` findings that the configuration does not resolve stop an instance
    from being exported as clean (:func:`gantry.audit.unresolved`).
    """

    LOW = "low"
    """Linkage risk only (UIDs, times)."""
    MEDIUM = "medium"
    """Quasi-identifiers (dates, descriptions, private data of unknown content)."""
    HIGH = "high"
    """Direct identifiers (names, IDs, contact data) or text burned into pixels."""


@dataclass(frozen=True, slots=True)
class Rule:
    """One audit rule.

    Attributes
    ----------
    id : str
        Stable identifier (the ``rule`` column of ``findings``).
    severity : Severity
        Default severity (a few rules lower it per finding, see ``docs/audit.md``).
    title : str
        What the rule looks for.
    """

    id: str
    severity: Severity
    title: str


_RULE_LIST: Final = (
    Rule("profile-action", Severity.MEDIUM, "an element the profile changes carries a value"),
    Rule("person-name", Severity.HIGH, "a person name (PN) carries a value"),
    Rule("date-time", Severity.MEDIUM, "a date, date-time or time (DA, DT, TM) carries a value"),
    Rule("private-element", Severity.MEDIUM, "a private element not on the safe list"),
    Rule("private-no-creator", Severity.HIGH, "a private element without a private creator"),
    Rule("kept-identifier", Severity.MEDIUM, "an identifier-like element the profile keeps"),
    Rule("text-patient-identity", Severity.HIGH, "free text names the patient or their IDs"),
    Rule("text-person-name", Severity.MEDIUM, "free text holds a person-name-like pattern"),
    Rule("text-id", Severity.MEDIUM, "free text holds an ID-like number"),
    Rule("text-date", Severity.MEDIUM, "free text holds a date"),
    Rule("text-phone", Severity.HIGH, "free text holds a phone number"),
    Rule("text-email", Severity.HIGH, "free text holds an e-mail address"),
    Rule("text-address", Severity.HIGH, "free text holds a street address"),
    Rule("uid-identity", Severity.HIGH, "a UID embeds the patient's ID, birth date or a date"),
    Rule("burned-in", Severity.HIGH, "pixel data likely holds burned-in text"),
    Rule("burned-in-ocr", Severity.HIGH, "OCR found text burned into the pixels"),
)

#: Every rule by id, in report order.
RULES: Final[dict[str, Rule]] = {r.id: r for r in _RULE_LIST}

RULE_DTYPE: Final = pl.Enum(list(RULES))
SEVERITY_DTYPE: Final = pl.Enum([s.value for s in Severity])

# -- messages: fixed texts (never a value), one Enum ------------------------------------------

_ACTION_WORDS: Final = {
    "X": "removes it",
    "Z": "empties it",
    "D": "replaces it with a dummy",
    "U": "remaps the UID",
    "S": "shifts the date",
    "P": "replaces it with the pseudonym",
    "R": "replaces it with the configured value",
    "H": "replaces it with a keyed hash",
    "C": "cleans it (kept unless it names the patient)",
}
_BURNED_REASONS: Final = {
    "annotation": "BurnedInAnnotation is YES",
    "ultrasound": "ultrasound images carry burned-in text",
    "secondary-capture": "secondary capture",
    "screen-capture": "screen capture",
}
_BURNED_OUTCOMES: Final = {
    "zone": "the machine's redaction zones apply",
    "nozone": "no redaction zone for the device",
    "excluded": "no redaction zone for the device: excluded from export",
    "ocr-clear": "OCR of every frame found no text to redact",
    "ocr-redacted": "OCR of every frame found text; its boxes are redacted",
    "ocr-partial": "OCR read sampled frames only: scan every frame to clear it",
}

MESSAGES: Final[dict[str, str]] = {
    **{
        f"profile-action:{a}": f"value present; de-identification {w} ({a})"
        for a, w in _ACTION_WORDS.items()
    },
    "profile-action:covered": "value present; removed with its enclosing sequence (X)",
    "profile-action:other": "value present; de-identification changes it",
    "person-name": "person name value present",
    "date-time:DA": "date value present",
    "date-time:DT": "date-time value present",
    "date-time:TM": "time value present",
    "private-element": "private element whose creator block is not on the safe list",
    "private-no-creator": "private element without a private creator",
    "kept-identifier": "identifier-like element kept by the profile",
    "text-patient-identity": "free text contains the patient's name or an ID of theirs",
    "text-person-name": "free text contains a person-name-like pattern",
    "text-id": "free text contains an ID-like number",
    "text-date": "free text contains a date",
    "text-phone": "free text contains a phone number",
    "text-email": "free text contains an e-mail address",
    "text-address": "free text contains a street address",
    "uid-identity:pid": "UID embeds the patient's ID",
    "uid-identity:birth": "UID embeds the patient's birth date",
    "uid-identity:date": "UID embeds a date (non-random UID)",
    **{
        f"burned-in:{r}:{o}": f"burned-in text risk ({rt}); {ot}"
        for r, rt in _BURNED_REASONS.items()
        for o, ot in _BURNED_OUTCOMES.items()
    },
    "burned-in-ocr:phi": "OCR found identifying text in the pixels; the plan redacts it",
    "burned-in-ocr:text": "OCR found text in the pixels; the plan redacts it",
    "burned-in-ocr:kept": "OCR found text that matches no identity or PHI pattern; kept by policy",
}
MESSAGE_DTYPE: Final = pl.Enum(list(dict.fromkeys(MESSAGES.values())))

#: Columns and types of the ``findings`` table.
_FINDINGS_COLUMNS: dict[str, PolarsDataType] = {
    "file_id": pl.Int64,
    "path": pl.Categorical(),
    "tag": pl.Categorical(),
    "keyword": pl.Categorical(),
    "rule": RULE_DTYPE,
    "severity": SEVERITY_DTYPE,
    "message": MESSAGE_DTYPE,
    "modality": pl.Categorical(),
    "device": pl.Categorical(),
    "resolved": pl.Boolean,
}
FINDINGS_SCHEMA: Final = pl.Schema(_FINDINGS_COLUMNS)


def _msg(key: str) -> pl.Expr:
    return pl.lit(MESSAGES[key], dtype=MESSAGE_DTYPE)


def _sev(s: Severity) -> pl.Expr:
    return pl.lit(s.value, dtype=SEVERITY_DTYPE)


# -- patterns ----------------------------------------------------------------------------------

FREE_TEXT_VRS: Final = ("LT", "ST", "UT", "UC")
"""Always free text."""
DESCRIPTOR_VRS: Final = ("LO", "SH")
"""Free text when the keyword names a description (or the element is private)."""
_DESCRIPTOR_KEYWORD: Final = (
    r"Description|Comment|History|Note|Remark|Reason|Text|Diagnos|Impression|Finding"
    r"|Instruction|Purpose|Label|Title|Condition"
)
_IDENTIFIER_KEYWORD: Final = r"(?:ID|IDs|Identifier|Number|Numbers)$"
_TEXT_ID_VRS: Final = ("LO", "SH", "LT", "ST", "UT", "UC")
_MONTHS: Final = r"(?:jan|feb|mar|apr|may|jun|jul|aug|sep|sept|oct|nov|dec)[a-z]*\.?"

#: Regular expressions of the free-text rules (Rust ``regex`` syntax, as Polars uses).
TEXT_PATTERNS: Final[dict[str, str]] = {
    "text-person-name": (
        r"\b(?:Dr|Mr|Mrs|Ms|Miss|Mx|Prof|Sr|Sra|Frau|Herr|Mme|Mlle)\.?[ ]+[A-Z][A-Za-z'-]{1,}"
        r"|\b[A-Za-z'-]{2,}\^[A-Za-z'-]{2,}"
    ),
    "text-id": (
        r"\b[A-Za-z]{0,4}[-#]?[0-9]{6,}\b"
        r"|\b[0-9]{3}-[0-9]{2}-[0-9]{4}\b"
        r"|(?i:\b(?:MRN|ID|No|Nr|Number|Acc|Accession)[.:#]?[ ]*[:#]?[ ]*[A-Z]{0,3}[0-9][0-9A-Z-]{3,})"
    ),
    "text-date": (
        r"\b(?:19|20)[0-9]{2}[-/.](?:0?[1-9]|1[0-2])[-/.](?:0?[1-9]|[12][0-9]|3[01])\b"
        r"|\b(?:0?[1-9]|[12][0-9]|3[01])[-/.](?:0?[1-9]|1[0-2])[-/.](?:19|20)?[0-9]{2}\b"
        r"|\b(?:19|20)[0-9]{2}(?:0[1-9]|1[0-2])(?:0[1-9]|[12][0-9]|3[01])\b"
        rf"|(?i:\b[0-9]{{1,2}}[ ]+{_MONTHS},?[ ]+[0-9]{{4}}\b)"
        rf"|(?i:\b{_MONTHS}[ ]+[0-9]{{1,2}},?[ ]+[0-9]{{4}}\b)"
    ),
    "text-phone": (
        r"(?:\+[0-9]{1,3}[ .-]?)?(?:\([0-9]{2,4}\)|\b[0-9]{2,4})[ .-][0-9]{3,4}[ .-][0-9]{3,4}\b"
        r"|(?i:\b(?:tel|phone|fax|mobile)\b[.:]?[ ]*\+?[0-9][0-9 ./-]{6,})"
    ),
    "text-email": r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}",
    "text-address": (
        r"(?i:\b[0-9]{1,5}[ ]+(?:[A-Za-z'-]+[ ]+){1,3}"
        r"(?:street|st|road|rd|avenue|ave|lane|ln|way|drive|boulevard|blvd|square|sq"
        r"|court|ct|place|pl|terrace|close|crescent|highway|hwy|parade|parkway|pkwy)\b)"
        r"|(?i:\bP\.?[ ]?O\.?[ ]+Box[ ]+[0-9]+)"
    ),
}

# A UID component that starts with a date (YYYYMMDD, optionally followed by more
# digits such as a time), or that holds a date immediately followed by a valid time.
_DATE = r"(?:19|20)[0-9]{2}(?:0[1-9]|1[0-2])(?:0[1-9]|[12][0-9]|3[01])"
_TIME = r"(?:[01][0-9]|2[0-3])[0-5][0-9][0-5][0-9]"
_UID_DATE = rf"(?:^|\.){_DATE}[0-9]{{0,12}}(?:\.|$)|(?:^|\.)[0-9]*{_DATE}{_TIME}[0-9]*(?:\.|$)"

# -- the resolved configuration ----------------------------------------------------------------


def _text(value: Any) -> str:
    return str(getattr(value, "value", value))


@dataclass(frozen=True)
class AuditContext:
    """What the audit needs from a :class:`~gantry.config.Config` and its profile.

    Build one with :meth:`from_config`.
    """

    config: Any
    exact: dict[int, tuple[str, str, str]]
    """Exact profile rows: tag → (action, pattern text, source)."""
    masked: tuple[tuple[int, int, str, str, str], ...]
    """Repeating-group patterns, most specific first: (value, mask, action, pattern, source)."""
    overrides: dict[str, tuple[str, str]]
    """Config decisions by 8-hex tag: (plan letter, config key)."""
    remove_private: bool
    safe_private: tuple[tuple[str, str | None], ...]
    """(creator upper-case, ``"ggggxxee"`` or None for the whole block)."""
    removal_regex: str | None
    """Matches an element path inside a sequence that is removed or emptied."""
    machines: tuple[Any, ...]
    exclude_without_zone: bool
    ocr_redact: str = "all"

    @classmethod
    def from_config(cls, config: Any = None) -> AuditContext:
        """Resolve ``config`` (a Config, a YAML path, a mapping or None for the default)."""
        from gantry.config import Config, load_config

        cfg = config if isinstance(config, Config) else load_config(config)
        profile = cfg.profile()
        table = profile.table
        exact: dict[int, tuple[str, str, str]] = {}
        masked: list[tuple[int, int, str, str, str, int]] = []
        for row in table.iter_rows(named=True):
            value, mask = int(row["tag_value"]), int(row["tag_mask"])
            entry = (str(row["action"]), str(row["pattern"]), str(row["source"]))
            if mask == 0xFFFF_FFFF:
                exact[value] = entry
            elif not (value == mask == 0x0001_0000):  # the private row: handled apart
                # repeating groups are even: the group's low bit joins the mask
                match_mask = mask | 0x0001_0000
                masked.append((value, match_mask, *entry, match_mask.bit_count()))
        masked.sort(key=lambda m: -m[5])
        overrides: dict[str, tuple[str, str]] = {}
        for tag, plan_action, rule in (
            cfg.tag_overrides().select("tag", "plan_action", "rule").iter_rows()
        ):
            overrides[str(tag)] = (str(plan_action), str(rule))
        safe: list[tuple[str, str | None]] = []
        for s in cfg.safe_private_tags:
            elements = tuple(s.elements) or (None,)
            safe += [(str(s.creator).strip().upper(), e) for e in elements]
        return cls(
            config=cfg,
            exact=exact,
            masked=tuple(m[:5] for m in masked),
            overrides=overrides,
            remove_private=bool(cfg.remove_private_tags),
            safe_private=tuple(safe),
            removal_regex=_removal_regex(exact, tuple(m[:5] for m in masked), overrides, cfg),
            machines=tuple(cfg.machines),
            exclude_without_zone=bool(cfg.burned_in.exclude_without_zone),
            ocr_redact=str(cfg.burned_in.ocr_redact),
        )


def _removal_regex(
    exact: dict[int, tuple[str, str, str]],
    masked: Sequence[tuple[int, int, str, str, str]],
    overrides: dict[str, tuple[str, str]],
    cfg: Any,
) -> str | None:
    """A regex matching paths that sit inside a sequence that is removed or emptied."""
    from pydicom.datadict import dictionary_VR

    def is_sequence(tag: int) -> bool:
        try:
            return dictionary_VR(tag) == "SQ"
        except KeyError:
            return True  # unknown to the dictionary: may be a sequence

    gone = {f"{t:08X}" for t, (a, _, _) in exact.items() if a in "XZD" and is_sequence(t)}
    for tag, (action, _) in overrides.items():
        if action in ("X", "Z", "D"):
            gone.add(tag)
        else:
            gone.discard(tag)
    alternatives = sorted(gone)
    for value, mask, action, _, _ in masked:
        if action in ("X", "Z", "D"):
            digits = "".join(
                f"{(value >> s) & 0xF:X}" if (mask >> s) & 0xF == 0xF else "[0-9A-F]"
                for s in range(28, -4, -4)
            )
            alternatives.append(digits)
    if cfg.remove_private_tags:
        alternatives.append("[0-9A-F]{3}[13579BDF][0-9A-F]{4}")
    if not alternatives:
        return None
    return r"(?:^|\.)(?:" + "|".join(alternatives) + r")\["


# -- effective action per element --------------------------------------------------------------


def has_value() -> pl.Expr:
    """An element carries a value: non-empty text, or bulk bytes (hashed)."""
    text = pl.col("value").is_not_null() & (pl.col("value") != "")
    return (text | pl.col("value_hash").is_not_null()).fill_null(False)


def _safe_listed(ctx: AuditContext) -> pl.Expr:
    """A private element (or the creator of a block) listed in ``safe_private_tags``."""
    if not ctx.safe_private:
        return pl.lit(False)
    is_creator = (pl.col("tag_int") & 0xFF00) == 0
    # a creator element (gggg,00xx) names its block in its value
    block = (
        pl.when(is_creator)
        .then(pl.col("value"))
        .otherwise(pl.col("private_creator"))
        .str.strip_chars()
        .str.to_uppercase()
    )
    elem = pl.col("tag").str.slice(0, 4) + "xx" + pl.col("tag").str.slice(6, 2)
    safe: pl.Expr = pl.lit(False)
    for name, element in ctx.safe_private:
        if element is None:
            safe = safe | (block == name)
        else:
            safe = safe | ((block == name) & (is_creator | (elem == element)))
    return safe.fill_null(False)


def _private_action(ctx: AuditContext) -> pl.Expr:
    """K for kept private elements (safe ones and their creators), X for the rest.

    As the plan does: ``remove_private_tags: false`` keeps every private element.
    """
    if not ctx.remove_private:
        return pl.lit("K")
    return pl.when(_safe_listed(ctx)).then(pl.lit("K")).otherwise(pl.lit("X"))


def _tag_table(ctx: AuditContext) -> pl.LazyFrame:
    """Per exact tag: the config's decision (``_o_*``) and the profile's (``_p_*``).

    Joined with the elements (a hash join against a small table streams; a
    ``replace`` with a large mapping does not).
    """
    overrides = {int(t, 16): v for t, v in ctx.overrides.items() if v[1] != "patient_name"}
    tags = sorted(set(ctx.exact) | set(overrides))
    return pl.LazyFrame(
        {
            "tag_int": tags,
            "_o_action": [overrides[t][0] if t in overrides else None for t in tags],
            "_o_rule": [overrides[t][1] if t in overrides else None for t in tags],
            "_p_action": [ctx.exact[t][0] if t in ctx.exact else None for t in tags],
            "_p_rule": [ctx.exact[t][1] if t in ctx.exact else None for t in tags],
        },
        schema={
            "tag_int": pl.UInt32,
            "_o_action": pl.String,
            "_o_rule": pl.String,
            "_p_action": pl.String,
            "_p_rule": pl.String,
        },
    )


def with_actions(elements: pl.LazyFrame, ctx: AuditContext) -> pl.LazyFrame:
    """Add each element's effective action and the rule that decided it.

    Adds ``tag_int`` (UInt32), ``is_private``, ``covered`` (inside a removed
    sequence), ``action`` (a plan letter: X Z D K C U S P R H) and
    ``decided_by`` (``"sequence"``, ``"phi_tags"``, ``"keep"``,
    ``"patient_name"``, ``"pseudonym"``, ``"private"``, the profile row's
    pattern, or ``"default-keep"``).

    As in the plan, ``C`` becomes ``S`` on dates and date-times and ``K`` on
    times and on anything that is not text; a ``U`` on a non-UID element or a
    well-known UID keeps it.
    """
    tag_int = pl.col("tag").str.to_integer(base=16, strict=False).cast(pl.UInt32)
    lf = elements.with_columns(tag_int.alias("tag_int")).with_columns(
        ((pl.col("tag_int") & 0x0001_0000) != 0).fill_null(False).alias("is_private"),
        (
            # nested paths only: top-level rows become null and are skipped by the regex
            pl.when(pl.col("depth") > 0)
            .then(pl.col("path"))
            .str.contains(ctx.removal_regex)
            .fill_null(False)
            if ctx.removal_regex
            else pl.lit(False)
        ).alias("covered"),
    )
    masked_action: pl.Expr = pl.lit(None, dtype=pl.String)
    masked_rule: pl.Expr = pl.lit(None, dtype=pl.String)
    for value, mask, letter, pattern, _ in reversed(ctx.masked):
        hit = (pl.col("tag_int") & pl.lit(mask, dtype=pl.UInt32)) == pl.lit(value, dtype=pl.UInt32)
        masked_action = pl.when(hit).then(pl.lit(letter)).otherwise(masked_action)
        masked_rule = pl.when(hit).then(pl.lit(pattern)).otherwise(masked_rule)
    top = pl.col("depth") == 0
    name_action = next((a for a, r in ctx.overrides.values() if r == "patient_name"), None)
    phi_action = pl.col("_o_action")
    phi_rule = pl.col("_o_rule")
    exact_action = pl.col("_p_action")
    exact_rule = pl.col("_p_rule")
    action = (
        pl.when(pl.col("covered"))
        .then(pl.lit("X"))
        .when(phi_action.is_not_null())
        .then(phi_action)
        .when(top & (pl.col("tag_int") == 0x0010_0020))
        .then(pl.lit("P"))
        .when(top & (pl.col("tag_int") == 0x0010_0010) & pl.lit(name_action is not None))
        .then(pl.lit(name_action or "K"))
        .when(pl.col("is_private"))
        .then(_private_action(ctx))
        .otherwise(pl.coalesce(exact_action, masked_action, pl.lit("K")))
    )
    decided_by = (
        pl.when(pl.col("covered"))
        .then(pl.lit("sequence"))
        .when(phi_action.is_not_null())
        .then(phi_rule)
        .when(top & (pl.col("tag_int") == 0x0010_0020))
        .then(pl.lit("pseudonym"))
        .when(top & (pl.col("tag_int") == 0x0010_0010) & pl.lit(name_action is not None))
        .then(pl.lit("patient_name"))
        .when(pl.col("is_private"))
        .then(pl.lit("private"))
        .otherwise(pl.coalesce(exact_rule, masked_rule, pl.lit("default-keep")))
    )
    lf = (
        lf.join(_tag_table(ctx), on="tag_int", how="left")
        .with_columns(action.alias("action"), decided_by.alias("decided_by"))
        .drop("_o_action", "_o_rule", "_p_action", "_p_rule")
    )
    vr = pl.col("vr")
    # UI rows only (others become null, skipped by the string kernel)
    well_known = (
        pl.when(vr == "UI")
        .then(pl.col("value"))
        .str.starts_with(WELL_KNOWN_UID_PREFIX)
        .fill_null(False)
    )
    return lf.with_columns(
        pl.when((pl.col("action") == "C") & vr.is_in(["DA", "DT"]))
        .then(pl.lit("S"))
        .when((pl.col("action") == "C") & ~vr.is_in(["LO", "LT", "SH", "ST", "UT", "UC", "PN"]))
        .then(pl.lit("K"))
        .when((pl.col("action") == "U") & ((vr != "UI") | well_known))
        .then(pl.lit("K"))
        .otherwise(pl.col("action"))
        .alias("action")
    )


# -- per-instance identity ---------------------------------------------------------------------


def _optional(schema: pl.Schema, name: str, dtype: PolarsDataType) -> pl.Expr:
    if name in schema:
        return pl.col(name).cast(dtype, strict=False)
    return pl.lit(None, dtype=dtype)


def instance_info(instances: pl.LazyFrame) -> pl.LazyFrame:
    """Per instance: ``modality``, ``device``, the patient's ID digits and birth date."""
    schema = instances.collect_schema()
    if "PatientBirthDate" in schema and schema["PatientBirthDate"] == pl.Date:
        birth = pl.col("PatientBirthDate").dt.strftime("%Y%m%d")
    else:
        birth = _optional(schema, "PatientBirthDate", pl.String).str.strip_chars()
    pid_digits = _optional(schema, "PatientID", pl.String).str.replace_all(r"[^0-9]", "")
    device = pl.concat_str(
        [
            _optional(schema, "Manufacturer", pl.String).str.strip_chars(),
            _optional(schema, "ManufacturerModelName", pl.String).str.strip_chars(),
        ],
        separator=" ",
        ignore_nulls=True,
    )
    return instances.select(
        pl.col("file_id"),
        _optional(schema, "Modality", pl.String).alias("modality"),
        pl.when(device != "").then(device).alias("device"),
        pl.when(pid_digits.str.len_bytes() >= 6).then(pid_digits).alias("_pid_digits"),
        pl.when(birth.str.contains(f"^{_DATE}$")).then(birth).alias("_birth"),
    )


def identity_tokens(instances: pl.LazyFrame) -> pl.LazyFrame:
    """``file_id, token``: upper-case tokens that identify each instance's patient.

    Name components of 3 characters or more, 2 in Han, Kana or Hangul (``^``,
    ``=``, blanks and commas split them), PatientID, OtherPatientIDs and
    AccessionNumber (3 characters or more), the birth date (``YYYYMMDD``).  The
    same tokens the plan uses to clean free text.
    """
    from gantry.plan._match import long_enough

    schema = instances.collect_schema()
    frames = []
    for name in (
        "PatientName",
        "PatientID",
        "OtherPatientIDs",
        "AccessionNumber",
        "PatientBirthDate",
    ):
        if name not in schema:
            continue
        dtype = schema[name]
        col = pl.col(name)
        if isinstance(dtype, pl.List):
            expr = col.cast(pl.List(pl.String))
        elif dtype == pl.Date:
            expr = pl.concat_list([col.dt.strftime("%Y%m%d")])
        elif name == "PatientName":
            expr = col.cast(pl.String).str.replace_all(r"[=^,\s]+", " ").str.split(" ")
        elif name == "OtherPatientIDs":
            expr = col.cast(pl.String).str.split("\\")
        else:
            expr = pl.concat_list([col.cast(pl.String)])
        frames.append(instances.select("file_id", expr.alias("token")).explode("token"))
    if not frames:
        return pl.LazyFrame(schema={"file_id": pl.Int64, "token": pl.String})
    return (
        pl.concat(frames)
        .with_columns(pl.col("token").str.strip_chars().str.to_uppercase())
        .filter(long_enough(pl.col("token")))
        .unique()
    )


# -- element rules -----------------------------------------------------------------------------


def is_free_text() -> pl.Expr:
    """Free text: LT/ST/UT/UC, LO/SH descriptions and comments, private text."""
    vr = pl.col("vr")
    descriptor = vr.is_in(DESCRIPTOR_VRS) & (
        pl.col("tag_int").is_in(_descriptor_tags()) | pl.col("is_private")
    )
    return vr.is_in(FREE_TEXT_VRS) | descriptor


@functools.cache
def _descriptor_tags() -> list[int]:
    """Public LO/SH tags whose keyword names a description, comment, note, … (free text)."""
    from pydicom.datadict import DicomDictionary  # type: ignore[attr-defined]

    pattern = re.compile(_DESCRIPTOR_KEYWORD)
    return sorted(
        tag
        for tag, entry in DicomDictionary.items()
        if entry[0] in DESCRIPTOR_VRS and pattern.search(entry[4])
    )


@functools.cache
def _identifier_tags() -> list[int]:
    """Public tags whose keyword names an identifier (…ID, …Number) and whose VR is text."""
    from pydicom.datadict import DicomDictionary  # type: ignore[attr-defined]

    pattern = re.compile(_IDENTIFIER_KEYWORD)
    tags = [
        tag
        for tag, entry in DicomDictionary.items()
        if entry[0] in _TEXT_ID_VRS and pattern.search(entry[4]) and tag >> 16 != 0x0002
    ]
    return sorted(tags)


def element_flags(ctx: AuditContext) -> dict[str, pl.Expr]:
    """Boolean expressions, one per element rule (over :func:`with_actions` output).

    The identity rules (``text-patient-identity``, ``uid-identity``) need the
    per-instance frame and are evaluated by :func:`element_findings`.
    """
    value = pl.col("has_value")
    vr = pl.col("vr")
    private = pl.col("is_private")
    creator_elem = private & ((pl.col("tag_int") & 0xFF00) == 0)
    no_creator = private & pl.col("private_creator").is_null() & ~creator_elem
    group_length = (pl.col("tag_int") & 0xFFFF) == 0
    flags: dict[str, pl.Expr] = {
        "profile-action": value & (pl.col("action") != "K"),
        "person-name": value & (vr == "PN"),
        "date-time": value & vr.is_in(["DA", "DT", "TM"]),
        "private-element": value & private & ~no_creator & ~group_length & ~_safe_listed(ctx),
        "private-no-creator": value & no_creator & ~group_length,
        "kept-identifier": value
        & (pl.col("action") == "K")
        & pl.col("tag_int").is_in(_identifier_tags()),
    }
    free = pl.col("free_text")
    for rule, pattern in TEXT_PATTERNS.items():
        flags[rule] = free & pl.col("value").str.contains(pattern).fill_null(False)
    return flags


def _resolved(rule: pl.Expr) -> pl.Expr:
    """The element's action removes or replaces the value (C counts for identity text only)."""
    action = pl.col("action")
    return (~action.is_in(["K", "C"])) | ((action == "C") & (rule == "text-patient-identity"))


def _severity(rule: pl.Expr) -> pl.Expr:
    """Per-finding severity: the rule's, lowered for UID remaps and times."""
    expr: pl.Expr = pl.lit(None, dtype=SEVERITY_DTYPE)
    for r in reversed(_RULE_LIST):
        expr = pl.when(rule == r.id).then(_sev(r.severity)).otherwise(expr)
    low = ((rule == "profile-action") & (pl.col("action") == "U")) | (
        (rule == "date-time") & (pl.col("vr") == "TM")
    )
    return pl.when(low).then(_sev(Severity.LOW)).otherwise(expr)


def _message(rule: pl.Expr) -> pl.Expr:
    action = pl.col("action")
    profile: pl.Expr = _msg("profile-action:other")
    for letter in reversed(list(_ACTION_WORDS)):
        profile = (
            pl.when(action == letter).then(_msg(f"profile-action:{letter}")).otherwise(profile)
        )
    profile = pl.when(pl.col("covered")).then(_msg("profile-action:covered")).otherwise(profile)
    dates = (
        pl.when(pl.col("vr") == "TM")
        .then(_msg("date-time:TM"))
        .when(pl.col("vr") == "DT")
        .then(_msg("date-time:DT"))
        .otherwise(_msg("date-time:DA"))
    )
    uid = (
        pl.when(pl.col("_uid_pid"))
        .then(_msg("uid-identity:pid"))
        .when(pl.col("_uid_birth"))
        .then(_msg("uid-identity:birth"))
        .otherwise(_msg("uid-identity:date"))
    )
    expr: pl.Expr = pl.lit(None, dtype=MESSAGE_DTYPE)
    for r in reversed(_RULE_LIST):
        if r.id in MESSAGES:
            expr = pl.when(rule == r.id).then(_msg(r.id)).otherwise(expr)
    return (
        pl.when(rule == "profile-action")
        .then(profile)
        .when(rule == "date-time")
        .then(dates)
        .when(rule == "uid-identity")
        .then(uid)
        .otherwise(expr)
    )


_ELEMENT_COLUMNS: Final = (
    "file_id", "path", "tag", "depth", "keyword", "vr", "private_creator", "value", "value_hash",
)  # fmt: skip
_TEXT_VRS: Final = tuple(dict.fromkeys(FREE_TEXT_VRS + DESCRIPTOR_VRS))


def _prepare(elements: pl.LazyFrame, ctx: AuditContext, vrs: Sequence[str] | None) -> pl.LazyFrame:
    """Elements (optionally of some VRs only) with their actions and ``has_value``."""
    schema = elements.collect_schema()
    el = elements.select(
        [
            pl.col(c) if c in schema else pl.lit(None, dtype=pl.String).alias(c)
            for c in _ELEMENT_COLUMNS
        ]
    )
    keep = ~pl.col("tag").str.starts_with("0002")  # file meta is rebuilt at export
    if vrs is not None:
        keep = keep & pl.col("vr").is_in(list(vrs))
    el = el.filter(keep)
    return with_actions(el, ctx).with_columns(has_value().alias("has_value"))


def _to_findings(lf: pl.LazyFrame) -> pl.LazyFrame:
    rule = pl.col("rule")
    return lf.select(
        "file_id",
        "path",
        "tag",
        "keyword",
        "rule",
        _severity(rule).alias("severity"),
        _message(rule).alias("message"),
        "modality",
        "device",
        _resolved(rule).alias("resolved"),
    ).cast(FINDINGS_SCHEMA)


def _explode_flags(lf: pl.LazyFrame, flags: dict[str, pl.Expr]) -> pl.LazyFrame:
    """One row per (row, true flag), ``rule`` naming the flag.

    The flags are packed into a bit mask, joined with the small table of every
    mask's rule list and exploded (much cheaper than building a list per row).
    """
    names = list(flags)
    if len(names) > 16:  # pragma: no cover - guard for future rules
        raise ValueError("at most 16 flags per pass")
    mask: pl.Expr = pl.lit(0, dtype=pl.UInt16)
    for i, expr in enumerate(flags.values()):
        mask = mask | (expr.fill_null(False).cast(pl.UInt16) * (1 << i))
    combos = pl.LazyFrame(
        {
            "_mask": list(range(1, 1 << len(names))),
            "rule": [
                [n for i, n in enumerate(names) if m >> i & 1] for m in range(1, 1 << len(names))
            ],
        },
        schema={"_mask": pl.UInt16, "rule": pl.List(RULE_DTYPE)},
    )
    return (
        lf.with_columns(mask.alias("_mask"))
        .filter(pl.col("_mask") != 0)
        .join(combos, on="_mask", how="inner")
        .drop("_mask")
        .explode("rule")
    )


def element_findings(
    elements: pl.LazyFrame,
    instances: pl.LazyFrame,
    ctx: AuditContext,
    *,
    kept_only: bool = False,
) -> list[pl.LazyFrame]:
    """Findings of every element rule, one row per (element, rule), as three queries.

    Each query scans ``elements`` keeping only the columns and rows it needs:
    every element for the structural rules (profile action, names, dates,
    private elements, kept identifiers); the free-text elements for the text
    patterns and the patient's own tokens (joined per ``file_id``); the UI
    elements for the UID rule.  Each is joined with the per-instance
    frame (modality, device) and has the columns of :data:`FINDINGS_SCHEMA`.
    Run them one after the other to bound memory (their union is one query).

    With ``kept_only``, only the elements the configuration keeps (``K``, or
    ``C`` which keeps text that does not name the patient) are examined, and
    only by the rules whose findings can be high: the unresolved high findings
    are all among them, at a fraction of the cost (:func:`gantry.audit.unresolved`).
    """
    info = instance_info(instances)
    flags = element_flags(ctx)
    if kept_only:
        flags = {k: v for k, v in flags.items() if RULES[k].severity is Severity.HIGH}
    structural = {k: v for k, v in flags.items() if not k.startswith("text-")}
    text_flags = {k: v for k, v in flags.items() if k.startswith("text-")}

    def prepare(vrs: Sequence[str] | None) -> pl.LazyFrame:
        lf = _prepare(elements, ctx, vrs)
        return lf.filter(pl.col("action").is_in(["K", "C"])) if kept_only else lf

    main = _explode_flags(prepare(None), structural)

    text = (
        prepare(_TEXT_VRS)
        .filter(pl.col("has_value") & is_free_text())
        .with_columns(pl.lit(True).alias("free_text"))
    )
    patterns = _explode_flags(text, text_flags)
    identity = (
        text.with_columns(pl.col("value").str.to_uppercase().alias("_upper"))
        .join(identity_tokens(instances), on="file_id", how="inner")
        .filter(pl.col("_upper").str.contains(pl.col("token"), literal=True))
        .drop("_upper", "token")
        .unique(subset=["file_id", "path"], keep="any")
        .with_columns(pl.lit("text-patient-identity", dtype=RULE_DTYPE).alias("rule"))
    )

    value = pl.col("value")
    uid = (
        prepare(["UI"])
        .filter(pl.col("has_value") & ~value.str.starts_with(WELL_KNOWN_UID_PREFIX))
        .join(info.select("file_id", "_pid_digits", "_birth"), on="file_id", how="inner")
        .with_columns(
            value.str.contains(pl.col("_pid_digits"), literal=True)
            .fill_null(False)
            .alias("_uid_pid"),
            value.str.contains(pl.col("_birth"), literal=True).fill_null(False).alias("_uid_birth"),
            (~value.str.starts_with("2.25.") & value.str.contains(_UID_DATE))
            .fill_null(False)
            .alias("_uid_date"),
        )
        .filter(pl.col("_uid_pid") | pl.col("_uid_birth") | pl.col("_uid_date"))
        .with_columns(pl.lit("uid-identity", dtype=RULE_DTYPE).alias("rule"))
    )
    per_file = info.select(
        "file_id", pl.col("modality").cast(pl.Categorical), pl.col("device").cast(pl.Categorical)
    )
    columns = ["file_id", "path", "tag", "keyword", "vr", "action", "covered", "rule"]
    no_uid = [pl.lit(False).alias("_uid_pid"), pl.lit(False).alias("_uid_birth")]
    parts = [
        main.select(*columns, *no_uid),
        # one query over the free-text rows: patterns and the patient's tokens
        pl.concat([patterns.select(*columns, *no_uid), identity.select(*columns, *no_uid)]),
        uid.select(*columns, "_uid_pid", "_uid_birth"),
    ]
    return [_to_findings(p.join(per_file, on="file_id", how="left")) for p in parts]
