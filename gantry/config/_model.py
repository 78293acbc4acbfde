"""The typed, frozen configuration objects (validation lives in ``_validate``)."""

from __future__ import annotations

import string
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Final, Literal, TypeVar

import polars as pl

from gantry.profiles import Action, ProfileOption, load_profile
from gantry.profiles._patterns import parse_tag

if TYPE_CHECKING:
    from gantry.profiles import Profile

__all__ = [
    "AgePolicy",
    "BurnedIn",
    "Config",
    "DateJitter",
    "Machine",
    "MachineMatch",
    "PhiTagRule",
    "Pseudonym",
    "SafePrivateTag",
    "TagAction",
    "TagMap",
]

V = TypeVar("V")


class TagAction(StrEnum):
    """What to do with one tag listed under ``phi_tags``.

    Each maps to one action letter of the ``plan`` table
    (:attr:`plan_action`).

    Examples
    --------
    >>> TagAction("replace").plan_action, TagAction.SHIFT.plan_action
    ('R', 'S')
    """

    REMOVE = "REMOVE"
    """Remove the element (plan ``X``)."""
    EMPTY = "EMPTY"
    """Keep the element with a zero-length value (plan ``Z``)."""
    REPLACE = "REPLACE"
    """Replace the value by the rule's ``value`` template (plan ``R``)."""
    KEEP = "KEEP"
    """Keep the value whatever the profile says (plan ``K``)."""
    HASH = "HASH"
    """Replace the value by its keyed hash (plan ``H``)."""
    SHIFT = "SHIFT"
    """Shift a date or date-time by the patient's offset (plan ``S``)."""
    DUMMY = "DUMMY"
    """Replace by a dummy value of the element's VR (plan ``D``)."""
    CLEAN = "CLEAN"
    """Clean the value as the profile's ``C`` action does (plan ``C``)."""
    REMAP = "REMAP"
    """Replace a UID by its consistent new UID (plan ``U``)."""

    @classmethod
    def _missing_(cls, value: object) -> TagAction | None:
        if isinstance(value, str) and value.upper() in cls.__members__:
            return cls[value.upper()]
        return None

    @property
    def plan_action(self) -> str:
        """The action letter in the ``plan`` table (docs/internals.md)."""
        return _PLAN_LETTER[self]


_PLAN_LETTER: Final[dict[TagAction, str]] = {
    TagAction.REMOVE: "X",
    TagAction.EMPTY: "Z",
    TagAction.REPLACE: "R",
    TagAction.KEEP: "K",
    TagAction.HASH: "H",
    TagAction.SHIFT: "S",
    TagAction.DUMMY: "D",
    TagAction.CLEAN: "C",
    TagAction.REMAP: "U",
}

#: ``patient_name`` choices and their plan letters.
PATIENT_NAME_PLAN: Final[dict[str, str]] = {"pseudonym": "P", "empty": "Z", "remove": "X"}
DUPLICATE_POLICIES: Final = ("first", "skip", "suffix")
"""Values of the config key ``duplicates`` (instances sharing a SOP Instance UID)."""


class TagMap(Mapping[str, V]):
    """A read-only, hashable mapping keyed by 8-hex tag text.

    Lookups also accept ``"0010,0010"`` or an integer tag.

    Examples
    --------
    >>> m = TagMap({"00100010": 1})
    >>> m["0010,0010"], m[0x00100010], len(m)
    (1, 1, 1)
    """

    __slots__ = ("_data",)

    def __init__(self, data: Mapping[str, V] | None = None) -> None:
        self._data: dict[str, V] = dict(sorted((data or {}).items()))

    @staticmethod
    def _key(key: object) -> str:
        if isinstance(key, int):
            return f"{key:08X}"
        if isinstance(key, str):
            try:
                return f"{parse_tag(key):08X}"
            except ValueError:
                return key
        raise KeyError(key)

    def __getitem__(self, key: object) -> V:
        return self._data[self._key(key)]

    def __contains__(self, key: object) -> bool:
        try:
            return self._key(key) in self._data
        except KeyError:
            return False

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __hash__(self) -> int:
        return hash(tuple(self._data.items()))

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Mapping):
            return dict(self._data) == dict(other)
        return NotImplemented

    def __repr__(self) -> str:
        return f"TagMap({self._data!r})"


@dataclass(frozen=True, slots=True)
class DateJitter:
    """Range of the per-patient date offset, in days (both ends included)."""

    min_days: int = -365
    max_days: int = -1


@dataclass(frozen=True, slots=True)
class SafePrivateTag:
    """Private elements known to be safe for one private creator.

    ``elements`` are normalised to 8 characters with ``xx`` for the block
    byte, e.g. ``"0029xx08"``.

    Examples
    --------
    >>> s = SafePrivateTag("SIEMENS CSA HEADER", ("0029xx08",))
    >>> s.matches("SIEMENS CSA HEADER", 0x00291008), s.matches("OTHER", 0x00291008)
    (True, False)
    """

    creator: str
    elements: tuple[str, ...]

    def matches(self, creator: str | None, tag: int | str) -> bool:
        """Whether the element ``tag`` in a block reserved by ``creator`` is listed."""
        if creator is None or creator.strip() != self.creator:
            return False
        value = parse_tag(tag) if isinstance(tag, str) else tag
        text = f"{value >> 16:04X}xx{value & 0xFF:02X}"
        return (value & 0xFF00) != 0 and text in self.elements


@dataclass(frozen=True, slots=True)
class PhiTagRule:
    """One ``phi_tags`` entry: what to do with one tag."""

    tag: str
    action: TagAction
    name: str | None = None
    value: str | None = None
    plugin: str | None = None
    """A plan-action plugin (``gantry.plan_actions``) computing the REPLACE value."""


def render_template(template: str, *, id: str, hash: str) -> str:  # noqa: A002
    """Fill ``{id}`` and ``{hash}`` in a validated template."""
    out = []
    for literal, field_name, _, _ in string.Formatter().parse(template):
        out.append(literal)
        if field_name == "id":
            out.append(id)
        elif field_name == "hash":
            out.append(hash)
    return "".join(out)


@dataclass(frozen=True, slots=True)
class Pseudonym:
    """How patient pseudonyms are made.

    Attributes
    ----------
    template : str
        Text with ``{id}`` and/or ``{hash}``.
    method : {"counter", "hash"}
        What ``{id}`` is: ``counter``, a per-patient number (patients ordered by
        keyed hash, so numbers are stable and reveal nothing about arrival
        order), zero-padded to ``width``; ``hash``, the keyed hash itself.
    width : int
        Digits of the counter.
    hash_length : int
        Hex characters of the keyed hash used for ``{hash}`` (and ``{id}``
        with ``method: hash``).

    Examples
    --------
    >>> Pseudonym().render(42, "9f86d081884c7d65")
    'ANON_000042'
    >>> Pseudonym("P-{hash}", method="hash", hash_length=8).render(1, "9f86d081884c7d65")
    'P-9f86d081'
    """

    template: str = "ANON_{id}"
    method: Literal["counter", "hash"] = "counter"
    width: int = 6
    hash_length: int = 16

    def render(self, number: int, keyed_hash: str, template: str | None = None) -> str:
        """Fill the template (or another validated one) for one patient."""
        digest = keyed_hash[: self.hash_length]
        ident = f"{number:0{self.width}d}" if self.method == "counter" else digest
        return render_template(template or self.template, id=ident, hash=digest)


@dataclass(frozen=True, slots=True)
class AgePolicy:
    """HIPAA Safe Harbor age aggregation; ``aggregate_over=None`` disables it.

    Examples
    --------
    >>> AgePolicy().cap_value, AgePolicy(None).cap_value
    ('090Y', None)
    """

    aggregate_over: int | None = 89

    @property
    def cap_value(self) -> str | None:
        """The PatientAge (AS) written for every age above the limit."""
        if self.aggregate_over is None:
            return None
        return f"{self.aggregate_over + 1:03d}Y"


_MATCH_COLUMNS: Final = {
    "serial_number": "DeviceSerialNumber",
    "manufacturer": "Manufacturer",
    "model": "ManufacturerModelName",
}


@dataclass(frozen=True, slots=True)
class MachineMatch:
    """Which instances a machine entry applies to (all given fields must match).

    Text fields compare case-insensitively, whole value (``mode="equals"``) or
    substring (``mode="contains"``); ``rows``/``columns`` compare exactly.

    Examples
    --------
    >>> import polars as pl
    >>> m = MachineMatch(manufacturer="acme", model="US", mode="contains")
    >>> df = pl.DataFrame({"Manufacturer": ["ACME Corp", "Other"],
    ...                    "ManufacturerModelName": ["US-9", "US-9"]})
    >>> df.select(m.expr().alias("hit"))["hit"].to_list()
    [True, False]
    """

    serial_number: str | None = None
    manufacturer: str | None = None
    model: str | None = None
    rows: int | None = None
    columns: int | None = None
    mode: Literal["equals", "contains"] = "equals"
    conditions: str | None = None
    """Tests of any element's value (``gantry.config._conditions``), ANDed with the
    fields above; the CTP signature language, so CTP scripts convert exactly."""

    def expr(self) -> pl.Expr:
        """A boolean expression over ``instances`` columns (null counts as no match).

        ``conditions`` read the ``elements`` table, so an entry with conditions is
        matched by :func:`gantry.audit.match_machines` instead (``ValueError`` here).
        """
        if self.conditions is not None:
            raise ValueError(
                "a match with `conditions` needs the elements table: use match_machines"
            )
        parts: list[pl.Expr] = []
        for attr, column in _MATCH_COLUMNS.items():
            wanted = getattr(self, attr)
            if wanted is None:
                continue
            col = pl.col(column).cast(pl.String).str.strip_chars().str.to_lowercase()
            needle = wanted.strip().lower()
            parts.append(
                col.str.contains(needle, literal=True) if self.mode == "contains" else col == needle
            )
        if self.rows is not None:
            parts.append(pl.col("Rows") == self.rows)
        if self.columns is not None:
            parts.append(pl.col("Columns") == self.columns)
        return pl.all_horizontal(parts).fill_null(False)


@dataclass(frozen=True, slots=True)
class Machine:
    """A known device and where it burns text into its images.

    ``redaction_zones`` are ``(row_start, row_end, col_start, col_end)``, ends
    exclusive, in pixels; ``fill`` is the value written into them.
    """

    name: str
    match: MachineMatch
    redaction_zones: tuple[tuple[int, int, int, int], ...] = ()
    fill: int = 0


@dataclass(frozen=True, slots=True)
class BurnedIn:
    """Policy for images that may carry burned-in text."""

    exclude_without_zone: bool = True
    """Exclude (report, do not export) images flagged as burned-in when no
    machine entry gives a redaction zone for them."""
    ocr_redact: str = "all"
    """Which text found by OCR (``scan_pixels``) the plan redacts: ``"all"`` of it,
    or only ``"phi"``, text that matches the instance's identity or PHI patterns."""
    ocr_padding: int = 4
    """Pixels added on every side of an OCR text box before it is redacted."""


@dataclass(frozen=True, slots=True)
class Deface:
    """Series whose pixels the plan defaces (``docs/deface.md``)."""

    series: tuple[str, ...] = ()
    """SeriesInstanceUIDs of the head CT/MR series to deface; an instance of one that
    cannot be defaced is excluded from export, with the reason."""
    margin: float = 4.0
    """Distance (mm) the cut plane keeps from the brain found in the volume."""


@dataclass(frozen=True, slots=True)
class Acknowledged:
    """A known false alarm of output verification, allowed on purpose.

    Export verification names a failure by the source attribute and a keyed hash
    of the value (never the value); listing both here lets that value through.
    """

    tag: str
    """The source attribute, 8 hex digits."""
    value_hash: str
    """The value hash the verification failure named (16 hex digits)."""


def _default_options() -> tuple[ProfileOption, ...]:
    return (ProfileOption.RETAIN_LONGITUDINAL_MODIFIED_DATES,)


@dataclass(frozen=True)
class Config:
    """A validated Gantry configuration (version 2).

    Build it with :func:`gantry.config.load_config`; ``Config()`` is the
    default configuration.  See ``docs/config.md`` for every key.

    Examples
    --------
    >>> cfg = Config()
    >>> cfg.privacy_profile, [o.value for o in cfg.options], cfg.date_jitter
    ('basic', ['retain-longitudinal-modified-dates'], DateJitter(min_days=-365, max_days=-1))
    >>> cfg.profile().name
    'basic'
    """

    version: int = 2
    privacy_profile: str = "basic"
    options: tuple[ProfileOption, ...] = field(default_factory=_default_options)
    date_jitter: DateJitter = field(default_factory=DateJitter)
    remove_private_tags: bool = True
    safe_private_tags: tuple[SafePrivateTag, ...] = ()
    phi_tags: TagMap[PhiTagRule] = field(default_factory=TagMap)
    keep: tuple[str, ...] = ()
    pseudonym: Pseudonym = field(default_factory=Pseudonym)
    patient_name: Literal["pseudonym", "empty", "remove"] = "pseudonym"
    uid_root: str = "2.25"
    age: AgePolicy = field(default_factory=AgePolicy)
    machines: tuple[Machine, ...] = ()
    burned_in: BurnedIn = field(default_factory=BurnedIn)
    encrypted_attributes: bool = False
    duplicates: Literal["first", "skip", "suffix"] = "first"
    """Instances sharing a SOP Instance UID: ``first`` exports the first by file path
    and excludes the others, ``skip`` excludes them all, ``suffix`` exports each
    under its own file name (``<uid>.dcm``, ``<uid>_2.dcm``, ...). Decided at plan time."""
    sr_text: Literal["clean", "remove"] = "clean"
    overlays: Literal["remove", "burn"] = "remove"
    """Overlay planes (60xx): ``remove`` drops them from the header; ``burn`` also draws
    them into the pixels first, then reads the written image by OCR (``gantry[ocr]``)
    and fails the instance if identifying text shows."""
    sr_drop: tuple[str, ...] = ()
    """SR content items removed whole under clean-structured-content: value types
    (``PNAME``) or concept name codes (``121008``, ``DCM:121008``); see ``gantry.sr``."""
    acknowledged: tuple[Acknowledged, ...] = ()
    """Verification false alarms allowed by attribute and value hash (recorded in ``runs``)."""
    deface: Deface = field(default_factory=Deface)
    """Series to deface, and the cut's margin (``gantry[deface]``)."""
    source: str | None = field(default=None, compare=False)
    """The file the config was read from (not part of equality)."""

    def profile(self) -> Profile:
        """The privacy profile with the configured options (cached by the loader)."""
        return load_profile(self.privacy_profile, self.options)

    def is_safe_private(self, creator: str | None, tag: int | str) -> bool:
        """Whether a private element is listed in ``safe_private_tags``."""
        return any(s.matches(creator, tag) for s in self.safe_private_tags)

    def private_action(self, creator: str | None, tag: int | str) -> Action:
        """What happens to one private element.

        ``K`` when ``remove_private_tags`` is false; otherwise the profile's
        answer: ``K`` for a listed safe element under ``retain-safe-private``,
        else ``X``.

        Examples
        --------
        >>> Config().private_action("SIEMENS CSA HEADER", 0x00291008)
        <Action.X: 'X'>
        """
        if not self.remove_private_tags:
            return Action.K
        return self.profile().private_action(safe=self.is_safe_private(creator, tag))

    def tag_overrides(self) -> pl.DataFrame:
        """The config's per-tag decisions, for the plan stage.

        One row per tag from ``phi_tags``, ``keep`` and ``patient_name``:
        ``tag`` (8-hex), ``keyword``, ``action`` (a :class:`TagAction` name),
        ``plan_action`` (the plan letter), ``value`` (template or null) and
        ``rule`` (the config key that set it).

        Examples
        --------
        >>> Config(keep=("0008103E",)).tag_overrides().select("tag", "plan_action", "rule")
        shape: (2, 3)
        ┌──────────┬─────────────┬──────────────┐
        │ tag      ┆ plan_action ┆ rule         │
        │ ---      ┆ ---         ┆ ---          │
        │ str      ┆ str         ┆ str          │
        ╞══════════╪═════════════╪══════════════╡
        │ 0008103E ┆ K           ┆ keep         │
        │ 00100010 ┆ P           ┆ patient_name │
        └──────────┴─────────────┴──────────────┘
        """
        from pydicom.datadict import keyword_for_tag

        rows: dict[str, tuple[str, str, str | None, str]] = {}
        pn = "00100010"
        plan = PATIENT_NAME_PLAN[self.patient_name]
        rows[pn] = (self.patient_name.upper(), plan, None, "patient_name")
        for tag in self.keep:
            rows[tag] = (TagAction.KEEP.value, "K", None, "keep")
        for tag, rule in self.phi_tags.items():
            rows[tag] = (rule.action.value, rule.action.plan_action, rule.value, "phi_tags")
        tags = sorted(rows)
        return pl.DataFrame(
            {
                "tag": tags,
                "keyword": [keyword_for_tag(int(t, 16)) or None for t in tags],
                "action": [rows[t][0] for t in tags],
                "plan_action": [rows[t][1] for t in tags],
                "value": [rows[t][2] for t in tags],
                "rule": [rows[t][3] for t in tags],
            },
            schema={
                "tag": pl.String,
                "keyword": pl.String,
                "action": pl.String,
                "plan_action": pl.String,
                "value": pl.String,
                "rule": pl.String,
            },
        )

    def to_dict(self) -> dict[str, Any]:
        """Plain data (YAML/JSON-ready) that :func:`load_config` reads back equal.

        Examples
        --------
        >>> from gantry.config import load_config
        >>> load_config(Config().to_dict()) == Config()
        True
        """

        def tag_text(tag: str) -> str:
            return f"{tag[:4]},{tag[4:]}"

        def element_text(element: str) -> str:
            return f"{element[:4]},{element[4:]}"

        phi: dict[str, Any] = {}
        for tag, rule in self.phi_tags.items():
            entry: dict[str, Any] = {"action": rule.action.value}
            if rule.name is not None:
                entry["name"] = rule.name
            if rule.value is not None:
                entry["value"] = rule.value
            if rule.plugin is not None:
                entry["plugin"] = rule.plugin
            phi[tag_text(tag)] = entry
        machines = []
        for m in self.machines:
            match = {
                k: getattr(m.match, k)
                for k in ("serial_number", "manufacturer", "model", "rows", "columns")
                if getattr(m.match, k) is not None
            }
            match["mode"] = m.match.mode
            machines.append(
                {
                    "name": m.name,
                    "match": match,
                    "redaction_zones": [list(z) for z in m.redaction_zones],
                    "fill": m.fill,
                }
            )
        return {
            "version": self.version,
            "privacy_profile": self.privacy_profile,
            "options": [o.value for o in self.options],
            "date_jitter": {
                "min_days": self.date_jitter.min_days,
                "max_days": self.date_jitter.max_days,
            },
            "remove_private_tags": self.remove_private_tags,
            "safe_private_tags": [
                {"creator": s.creator, "elements": [element_text(e) for e in s.elements]}
                for s in self.safe_private_tags
            ],
            "phi_tags": phi,
            "keep": [tag_text(t) for t in self.keep],
            "pseudonym": {
                "template": self.pseudonym.template,
                "method": self.pseudonym.method,
                "width": self.pseudonym.width,
                "hash_length": self.pseudonym.hash_length,
            },
            "patient_name": self.patient_name,
            "uid_root": self.uid_root,
            "age": {"aggregate_over": self.age.aggregate_over},
            "machines": machines,
            "burned_in": {
                "exclude_without_zone": self.burned_in.exclude_without_zone,
                "ocr_redact": self.burned_in.ocr_redact,
                "ocr_padding": self.burned_in.ocr_padding,
            },
            "encrypted_attributes": self.encrypted_attributes,
            "duplicates": self.duplicates,
            "sr_text": self.sr_text,
            "sr_drop": list(self.sr_drop),
            "overlays": self.overlays,
            "acknowledged": [
                {"attribute": tag_text(a.tag), "value_hash": a.value_hash}
                for a in self.acknowledged
            ],
            "deface": {"series": list(self.deface.series), "margin": self.deface.margin},
        }
