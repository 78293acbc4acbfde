"""Strict validation: plain data (parsed YAML or a mapping) → :class:`Config`.

Every mistake raises :class:`~gantry.errors.ConfigError` with the dotted key
path (``machines[0].redaction_zones[1]``), what was expected, what was found
and, where one helps, a did-you-mean hint.  Config values are not PHI, so they
may be quoted in messages.
"""

from __future__ import annotations

import difflib
import re
import string
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Final, NoReturn

from pydicom.datadict import dictionary_VR, keyword_for_tag, tag_for_keyword

from gantry.config._conditions import parse_condition
from gantry.config._model import (
    DUPLICATE_POLICIES,
    PATIENT_NAME_PLAN,
    Acknowledged,
    AgePolicy,
    BurnedIn,
    Config,
    DateJitter,
    Deface,
    Machine,
    MachineMatch,
    PhiTagRule,
    Pseudonym,
    SafePrivateTag,
    TagAction,
    TagMap,
)
from gantry.errors import ConfigError
from gantry.profiles import Profile, ProfileOption, load_profile
from gantry.profiles._patterns import parse_tag
from gantry.profiles._spec import did_you_mean, normalise_options

__all__ = ["validate"]

TOP_KEYS: Final = (
    "version",
    "privacy_profile",
    "options",
    "date_jitter",
    "remove_private_tags",
    "safe_private_tags",
    "phi_tags",
    "keep",
    "pseudonym",
    "patient_name",
    "uid_root",
    "age",
    "machines",
    "burned_in",
    "encrypted_attributes",
    "duplicates",
    "sr_text",
    "sr_drop",
    "overlays",
    "acknowledged",
    "deface",
)
_MAX_SHIFT_DAYS: Final = 36_600
_MAX_UID_ROOT: Final = 40
_UID_ROOT_RE: Final = re.compile(r"^(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*))+$")
_PRIVATE_ELEMENT_RE: Final = re.compile(
    r"^\(?\s*([0-9A-Fa-f]{4})\s*,?\s*([0-9A-Fa-fxX]{2})([0-9A-Fa-f]{2})\s*\)?$"
)
_UID_RE: Final = re.compile(r"^[0-9]+(\.[0-9]+)*$")
_SHIFTABLE_VRS: Final = frozenset({"DA", "DT"})
#: Keys of a machine's ``match`` (also accepted directly in the entry, the flat form).
_MATCH_KEYS: Final = (
    "serial_number",
    "manufacturer",
    "model",
    "model_name",
    "rows",
    "columns",
    "mode",
    "conditions",
)
#: Spellings of the original Gantry README → the field they set.
_MATCH_ALIASES: Final = {"model_name": "model"}
_LO_MAX: Final = 64


def _join(path: str, key: object) -> str:
    return f"{path}.{key}" if path else str(key)


def _one_of(choices: Sequence[str]) -> str:
    return "one of " + ", ".join(repr(c) for c in choices)


class _Validator:
    def __init__(self, source: str | None, base_dir: Path | None) -> None:
        self.source = source
        self.base_dir = base_dir

    # -- primitives -----------------------------------------------------------------

    def fail(self, key: str, expected: str, got: Any, hint: str | None = None) -> NoReturn:
        raise ConfigError(key, expected=expected, got=got, hint=hint, source=self.source)

    def mapping(self, value: Any, path: str, allowed: Sequence[str]) -> Mapping[str, Any]:
        if not isinstance(value, Mapping):
            self.fail(path or "(document)", "a mapping", _kind(value))
        for key in value:
            if key not in allowed:
                hint = did_you_mean(key, allowed) or "known keys: " + ", ".join(allowed)
                self.fail(_join(path, key), "a known key", key, hint)
        return value

    def list_(self, value: Any, path: str) -> list[Any]:
        if not isinstance(value, list):
            self.fail(path, "a list", _kind(value))
        return value

    def int_(self, value: Any, path: str, *, lo: int | None = None, hi: int | None = None) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            self.fail(path, "an integer", value)
        if (lo is not None and value < lo) or (hi is not None and value > hi):
            span = (
                f"between {lo} and {hi}"
                if lo is not None and hi is not None
                else (f"at least {lo}" if lo is not None else f"at most {hi}")
            )
            self.fail(path, f"an integer {span}", value)
        return value

    def bool_(self, value: Any, path: str) -> bool:
        if not isinstance(value, bool):
            self.fail(path, "true or false", value)
        return value

    def str_(self, value: Any, path: str, *, what: str = "a non-empty string") -> str:
        if not isinstance(value, str) or not value.strip():
            self.fail(path, what, value)
        return value

    def choice(self, value: Any, path: str, choices: Sequence[str]) -> str:
        if not isinstance(value, str) or value.strip().lower() not in choices:
            self.fail(path, _one_of(choices), value, did_you_mean(value, choices))
        return value.strip().lower()

    def tag(self, value: Any, path: str) -> str:
        if isinstance(value, int) and not isinstance(value, bool):
            self.fail(
                path,
                "a quoted tag such as '0010,0010'",
                value,
                "YAML read an unquoted tag as a number; quote it",
            )
        if not isinstance(value, str):
            self.fail(path, "a tag such as '0010,0010'", value)
        try:
            return f"{parse_tag(value):08X}"
        except ValueError:
            hint = None
            tag = tag_for_keyword(value.strip())
            if tag is not None:
                hint = f"tags are written as numbers: {value.strip()} is '{tag >> 16:04X},{tag & 0xFFFF:04X}'"
            self.fail(path, "a tag such as '0010,0010' (gggg,eeee in hex)", value, hint)

    def template(self, value: Any, path: str, *, need_placeholder: bool) -> str:
        text = self.str_(value, path)
        expected = "a template using only the placeholders {id} and {hash}"
        if "\\" in text:
            self.fail(path, expected + ", without backslashes", text, "'\\' separates DICOM values")
        try:
            parsed = list(string.Formatter().parse(text))
        except ValueError as exc:
            self.fail(path, expected, text, f"{exc}; write literal braces as '{{{{' and '}}}}'")
        names = []
        for _, name, spec, conversion in parsed:
            if name is None:
                continue
            if name not in ("id", "hash"):
                close = difflib.get_close_matches(name.lower(), ["id", "hash"], n=1, cutoff=0.5)
                hint = f"did you mean '{{{close[0]}}}'?" if close else None
                self.fail(path, expected, text, hint or f"unknown placeholder {{{name}}}")
            if spec or conversion:
                self.fail(
                    path,
                    expected + " without format specs",
                    text,
                    "padding is set by `pseudonym.width`",
                )
            names.append(name)
        if need_placeholder and not names:
            self.fail(
                path,
                expected + " (at least one)",
                text,
                "without a placeholder every patient gets the same pseudonym",
            )
        return text

    # -- sections -------------------------------------------------------------------

    def profile(
        self, data: Mapping[str, Any], defaults: Config
    ) -> tuple[str, tuple[ProfileOption, ...], Profile]:
        raw = data.get("privacy_profile", defaults.privacy_profile)
        name = self.str_(raw, "privacy_profile", what="a profile name or path")
        ref: str = name.strip()
        if "/" in ref or "\\" in ref or ref.endswith((".yaml", ".yml")):
            path = Path(ref).expanduser()
            if not path.is_absolute() and self.base_dir is not None:
                path = self.base_dir / path
            ref = str(path.resolve()) if path.is_file() else ref
        raw_options = data.get("options", list(defaults.options))
        options = normalise_options(
            [] if raw_options is None else raw_options, key="options", source=self.source
        )
        try:
            profile = load_profile(ref, options)
        except ConfigError as exc:
            if exc.key != "profile":
                raise  # a mistake inside the user's profile file: it names that file
            self.fail("privacy_profile", exc.expected, exc.got, exc.hint)
        return ref, options, profile

    def date_jitter(self, value: Any) -> DateJitter:
        d = self.mapping(value, "date_jitter", ("min_days", "max_days"))
        lo = self.int_(
            d.get("min_days", -365), "date_jitter.min_days", lo=-_MAX_SHIFT_DAYS, hi=_MAX_SHIFT_DAYS
        )
        hi = self.int_(
            d.get("max_days", -1), "date_jitter.max_days", lo=-_MAX_SHIFT_DAYS, hi=_MAX_SHIFT_DAYS
        )
        if lo > hi:
            self.fail(
                "date_jitter.min_days", f"at most max_days ({hi})", lo, "swap min_days and max_days"
            )
        if lo == hi == 0:
            self.fail(
                "date_jitter",
                "a range other than 0..0",
                {"min_days": 0, "max_days": 0},
                "a zero shift keeps the dates; use retain-longitudinal-full-dates",
            )
        return DateJitter(lo, hi)

    def safe_private(self, value: Any) -> tuple[SafePrivateTag, ...]:
        out = []
        for i, item in enumerate(self.list_(value, "safe_private_tags")):
            path = f"safe_private_tags[{i}]"
            d = self.mapping(item, path, ("creator", "elements"))
            if "creator" not in d:
                self.fail(f"{path}.creator", "a private creator string", None)
            creator = self.str_(d["creator"], f"{path}.creator").strip()
            elements = self.list_(d.get("elements"), f"{path}.elements")
            if not elements:
                self.fail(f"{path}.elements", "a non-empty list such as ['0029,xx08']", [])
            norm = []
            for j, el in enumerate(elements):
                norm.append(self.private_element(el, f"{path}.elements[{j}]"))
            out.append(SafePrivateTag(creator, tuple(dict.fromkeys(norm))))
        return tuple(out)

    def private_element(self, value: Any, path: str) -> str:
        expected = "a private element such as '0029,xx08' (odd group, xx for the block)"
        if not isinstance(value, str):
            self.fail(path, expected, value, "quote it" if isinstance(value, int) else None)
        m = _PRIVATE_ELEMENT_RE.match(value.strip())
        if m is None:
            self.fail(path, expected, value)
        group, block, low = m.group(1).upper(), m.group(2), m.group(3).upper()
        if int(group, 16) % 2 == 0 or int(group, 16) < 0x0009 or group == "FFFF":
            self.fail(path, expected, value, f"group {group} is not a private group")
        if block.lower() != "xx":
            self.fail(
                path, expected, value, f"block bytes vary between files: write '{group},xx{low}'"
            )
        return f"{group}xx{low}"

    def phi_tags(self, value: Any) -> TagMap[PhiTagRule]:
        if not isinstance(value, Mapping):
            self.fail("phi_tags", "a mapping of tag → rule", _kind(value))
        rules: dict[str, PhiTagRule] = {}
        for raw_key, raw_rule in value.items():
            path = f"phi_tags.{raw_key}"
            tag = self.tag(raw_key, path)
            if tag in rules:
                self.fail(path, "a tag listed once", raw_key, "the same tag is written twice")
            rules[tag] = self.phi_rule(tag, raw_rule, path)
        return TagMap(rules)

    def phi_rule(self, tag: str, raw: Any, path: str) -> PhiTagRule:
        d = self.mapping(raw, path, ("action", "name", "value", "plugin"))
        names = [a.value for a in TagAction]
        if "action" not in d:
            self.fail(f"{path}.action", _one_of(names), None)
        act = d["action"]
        if not isinstance(act, str) or act.strip().upper() not in names:
            hint = did_you_mean(act.strip().upper(), names) if isinstance(act, str) else None
            self.fail(f"{path}.action", _one_of(names), act, hint)
        action = TagAction(act.strip().upper())
        value_tag = int(tag, 16)
        name = d.get("name")
        if name is not None:
            name = self.str_(name, f"{path}.name").strip()
            known = keyword_for_tag(value_tag) or None
            other = tag_for_keyword(name)
            where = f"({tag[:4]},{tag[4:]})"
            if known is not None and name != known:
                hint = (
                    f"{name} is ({other >> 16:04X},{other & 0xFFFF:04X})"
                    if other is not None
                    else "not a DICOM keyword"
                )
                self.fail(f"{path}.name", f"{known!r}, the keyword of {where}", name, hint)
            if known is None and other is not None:
                self.fail(
                    f"{path}.name",
                    f"not the keyword of another tag ({where} has none)",
                    name,
                    f"{name} is ({other >> 16:04X},{other & 0xFFFF:04X})",
                )
            if known is None and value_tag >> 16 & 1 == 0:
                self.fail(f"{path}.name", f"absent: {where} is not in the DICOM dictionary", name)
        vr = _vr(value_tag)
        if action is TagAction.SHIFT and vr not in _SHIFTABLE_VRS:
            self.fail(
                f"{path}.action",
                "SHIFT only on a date (DA) or date-time (DT) tag",
                action.value,
                f"({tag[:4]},{tag[4:]}) has VR {vr or 'unknown'}",
            )
        if action is TagAction.REMAP and vr != "UI":
            self.fail(
                f"{path}.action",
                "REMAP only on a UID (UI) tag",
                action.value,
                f"({tag[:4]},{tag[4:]}) has VR {vr or 'unknown'}",
            )
        value = d.get("value")
        plugin = d.get("plugin")
        if plugin is not None:
            plugin = self.plan_action_plugin(plugin, action, value, path)
        elif action is TagAction.REPLACE:
            if value is None:
                self.fail(f"{path}.value", "a replacement value (required by REPLACE)", None)
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                value = str(value)
            value = self.template(value, f"{path}.value", need_placeholder=False)
        elif value is not None:
            self.fail(f"{path}.value", "absent (only REPLACE takes a value)", value)
        return PhiTagRule(tag, action, name, value, plugin)

    def plan_action_plugin(self, raw: Any, action: TagAction, value: Any, path: str) -> str:
        """The name of an installed plan-action plugin (loaded: a broken one raises PluginError)."""
        from gantry.plugins import PluginKind, discover, load_plugin

        name = self.str_(raw, f"{path}.plugin").strip()
        if action is not TagAction.REPLACE:
            self.fail(f"{path}.action", "REPLACE (a plugin computes the new value)", action.value)
        if value is not None:
            self.fail(f"{path}.value", "absent (the plugin computes the value)", value)
        names = [p.name for p in discover(PluginKind.PLAN_ACTION)]
        if name not in names:
            self.fail(
                f"{path}.plugin",
                _one_of(names) if names else "an installed plan-action plugin (none installed)",
                name,
                did_you_mean(name, names) if names else None,
            )
        load_plugin(PluginKind.PLAN_ACTION, name)
        return name

    def sr_drop(self, value: Any) -> tuple[str, ...]:
        from gantry.sr._drop import VALUE_TYPES

        out = []
        for i, item in enumerate(self.list_(value, "sr_drop")):
            text = self.str_(
                item, f"sr_drop[{i}]", what="a value type (PNAME) or a concept code (DCM:121008)"
            ).strip()
            if (
                ":" not in text
                and text.upper() not in VALUE_TYPES
                and not any(c.isdigit() for c in text)
            ):
                hint = did_you_mean(text.upper(), sorted(VALUE_TYPES))
                self.fail(f"sr_drop[{i}]", "a content item value type or a code", text, hint)
            out.append(text.upper() if text.upper() in VALUE_TYPES else text)
        return tuple(out)

    def keep(self, value: Any, phi: TagMap[PhiTagRule]) -> tuple[str, ...]:
        out: list[str] = []
        for i, item in enumerate(self.list_(value, "keep")):
            path = f"keep[{i}]"
            tag = self.tag(item, path)
            if tag in phi and phi[tag].action is not TagAction.KEEP:
                self.fail(
                    path,
                    "a tag not given another action under phi_tags",
                    item,
                    f"phi_tags says {phi[tag].action.value}",
                )
            if tag not in out:
                out.append(tag)
        return tuple(out)

    def pseudonym(self, value: Any) -> Pseudonym:
        d = self.mapping(value, "pseudonym", ("template", "method", "width", "hash_length"))
        base = Pseudonym()
        template = self.template(
            d.get("template", base.template), "pseudonym.template", need_placeholder=True
        )
        method = self.choice(d.get("method", base.method), "pseudonym.method", ("counter", "hash"))
        width = self.int_(d.get("width", base.width), "pseudonym.width", lo=1, hi=12)
        hash_length = self.int_(
            d.get("hash_length", base.hash_length), "pseudonym.hash_length", lo=8, hi=64
        )
        p = Pseudonym(template, method, width, hash_length)  # type: ignore[arg-type]
        longest = p.render(10**width - 1, "f" * 64)
        if len(longest) > _LO_MAX:
            self.fail(
                "pseudonym.template",
                f"a template giving at most {_LO_MAX} characters",
                template,
                f"it gives {len(longest)}; lower width or hash_length",
            )
        return p

    def uid_root(self, value: Any) -> str:
        expected = (
            f"a UID root such as '2.25' or '1.2.826.0.1.3680043.10.1234' "
            f"(at most {_MAX_UID_ROOT} characters)"
        )
        if isinstance(value, float):
            self.fail("uid_root", expected, value, "quote it: YAML read it as a number")
        text = self.str_(value, "uid_root", what=expected).strip()
        if text.endswith("."):
            self.fail("uid_root", expected, text, "drop the trailing '.'")
        if not _UID_ROOT_RE.match(text):
            hint = (
                "components must not have leading zeros"
                if re.fullmatch(r"[0-9.]+", text)
                else "digits and dots only"
            )
            self.fail("uid_root", expected, text, hint)
        arcs = [int(a) for a in text.split(".")]
        if arcs[0] > 2 or (arcs[0] < 2 and arcs[1] > 39):
            self.fail("uid_root", expected, text, "the first arc is 0, 1 or 2 (0, 1: second ≤ 39)")
        if len(text) > _MAX_UID_ROOT:
            self.fail(
                "uid_root",
                expected,
                text,
                "a longer root leaves too few digits for unique UIDs (64 max)",
            )
        return text

    def age(self, value: Any) -> AgePolicy:
        d = self.mapping(value, "age", ("aggregate_over",))
        limit = d.get("aggregate_over", AgePolicy().aggregate_over)
        if limit is None:
            return AgePolicy(None)
        return AgePolicy(self.int_(limit, "age.aggregate_over", lo=1, hi=998))

    def machines(self, value: Any) -> tuple[Machine, ...]:
        out: list[Machine] = []
        names: dict[str, int] = {}
        for i, item in enumerate(self.list_(value, "machines")):
            path = f"machines[{i}]"
            d = self.mapping(item, path, ("name", "match", "redaction_zones", "fill", *_MATCH_KEYS))
            flat = {k: d[k] for k in _MATCH_KEYS if k in d}
            if flat and "match" in d:
                key = next(iter(flat))
                self.fail(
                    f"{path}.{key}",
                    "match fields either under `match` or beside `redaction_zones`, not both",
                    key,
                    f"move {key!r} under `match`",
                )
            # the original README's flat form: match fields beside redaction_zones
            match = self.match(flat, path) if flat else self.match(d.get("match"), f"{path}.match")
            if "name" in d:
                name = self.str_(d["name"], f"{path}.name").strip()
            else:
                name = _default_name(match, i)
                if name.lower() in names:
                    name = f"{name} ({path})"
            if name.lower() in names:
                self.fail(
                    f"{path}.name",
                    "a name not used by another machine",
                    name,
                    f"also machines[{names[name.lower()]}]",
                )
            names[name.lower()] = i
            zones = []
            for j, zone in enumerate(
                self.list_(d.get("redaction_zones", []), f"{path}.redaction_zones")
            ):
                zones.append(self.zone(zone, f"{path}.redaction_zones[{j}]", match))
            fill = self.int_(d.get("fill", 0), f"{path}.fill", lo=-32768, hi=65535)
            out.append(Machine(name, match, tuple(zones), fill))
        return tuple(out)

    def match(self, value: Any, path: str) -> MachineMatch:
        if value is None:
            self.fail(
                path, "a mapping with serial_number, or manufacturer/model/rows/columns", None
            )
        d = self.mapping(value, path, _MATCH_KEYS)
        if "model" in d and "model_name" in d:
            self.fail(f"{path}.model_name", "either `model` or `model_name`", "both")
        fields: dict[str, Any] = {}
        for key in ("serial_number", "manufacturer", "model", "model_name"):
            if d.get(key) is not None:
                raw = d[key]
                if isinstance(raw, (int, float)) and not isinstance(raw, bool):
                    raw = str(raw)  # serial numbers are often all digits
                fields[_MATCH_ALIASES.get(key, key)] = self.str_(raw, f"{path}.{key}").strip()
        for key in ("rows", "columns"):
            if d.get(key) is not None:
                fields[key] = self.int_(d[key], f"{path}.{key}", lo=1, hi=65535)
        if d.get("conditions") is not None:
            text = self.str_(d["conditions"], f"{path}.conditions", what="a condition")
            try:
                parse_condition(text, key=f"{path}.conditions")
            except ConfigError as exc:
                self.fail(exc.key, exc.expected, exc.got, exc.hint)
            fields["conditions"] = text
        if not fields:
            self.fail(
                path,
                "at least one of serial_number, manufacturer, model, rows, columns, conditions",
                dict(d),
            )
        mode = self.choice(d.get("mode", "equals"), f"{path}.mode", ("equals", "contains"))
        return MachineMatch(mode=mode, **fields)  # type: ignore[arg-type]

    def zone(self, value: Any, path: str, match: MachineMatch) -> tuple[int, int, int, int]:
        expected = "[row_start, row_end, col_start, col_end], 4 integers, ends exclusive"
        if (
            not isinstance(value, list)
            or len(value) != 4
            or any(isinstance(v, bool) or not isinstance(v, int) for v in value)
        ):
            self.fail(path, expected, value)
        r1, r2, c1, c2 = value
        if min(value) < 0:
            self.fail(path, expected + ", not negative", value)
        if r1 >= r2:
            self.fail(path, expected + " with row_start < row_end", value)
        if c1 >= c2:
            self.fail(path, expected + " with col_start < col_end", value)
        if match.rows is not None and r2 > match.rows:
            self.fail(path, f"a zone inside the image (row_end ≤ rows = {match.rows})", value)
        if match.columns is not None and c2 > match.columns:
            self.fail(path, f"a zone inside the image (col_end ≤ columns = {match.columns})", value)
        return (r1, r2, c1, c2)

    def acknowledged(self, value: Any) -> tuple[Acknowledged, ...]:
        out: list[Acknowledged] = []
        for i, item in enumerate(self.list_(value, "acknowledged")):
            path = f"acknowledged[{i}]"
            d = self.mapping(item, path, ("attribute", "value_hash"))
            attribute = d.get("attribute")
            keyword_tag = tag_for_keyword(attribute.strip()) if isinstance(attribute, str) else None
            if keyword_tag is not None:
                tag = f"{keyword_tag:08X}"
            else:
                tag = self.tag(attribute, f"{path}.attribute")
            digest = d.get("value_hash")
            if not isinstance(digest, str) or not re.fullmatch(r"[0-9a-fA-F]{16}", digest):
                self.fail(
                    f"{path}.value_hash",
                    "the 16 hex digits a verification failure names",
                    digest,
                )
            out.append(Acknowledged(tag, digest.lower()))
        return tuple(out)

    def deface(self, value: Any) -> Deface:
        d = self.mapping(value, "deface", ("series", "margin"))
        series = []
        for i, item in enumerate(self.list_(d.get("series", []), "deface.series")):
            uid = self.str_(item, f"deface.series[{i}]", what="a SeriesInstanceUID")
            if not _UID_RE.match(uid):
                self.fail(f"deface.series[{i}]", "a SeriesInstanceUID (digits and dots)", uid)
            series.append(uid)
        margin = d.get("margin", 4.0)
        if isinstance(margin, bool) or not isinstance(margin, int | float) or not 0 <= margin <= 50:
            self.fail("deface.margin", "a distance in mm from 0 to 50", margin)
        return Deface(series=tuple(dict.fromkeys(series)), margin=float(margin))

    def burned_in(self, value: Any) -> BurnedIn:
        d = self.mapping(value, "burned_in", ("exclude_without_zone", "ocr_redact", "ocr_padding"))
        return BurnedIn(
            self.bool_(d.get("exclude_without_zone", True), "burned_in.exclude_without_zone"),
            ocr_redact=self.choice(
                d.get("ocr_redact", "all"), "burned_in.ocr_redact", ("all", "phi")
            ),
            ocr_padding=self.int_(d.get("ocr_padding", 4), "burned_in.ocr_padding", lo=0, hi=256),
        )


def _default_name(match: MachineMatch, index: int) -> str:
    """A machine's name when the config gives none (the original README's flat form)."""
    for value in (match.serial_number, match.model, match.manufacturer):
        if value:
            return value
    return f"machine-{index + 1}"


def _kind(value: Any) -> Any:
    """What to show as `got` for a value of the wrong shape."""
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return value


def _vr(tag: int) -> str | None:
    try:
        return str(dictionary_VR(tag))
    except KeyError:
        return None


def validate(
    data: Mapping[str, Any] | None, *, source: str | None = None, base_dir: Path | None = None
) -> Config:
    """Validate plain config data and build a :class:`Config`.

    ``base_dir`` is the folder relative paths (``privacy_profile``) are taken from.
    """
    v = _Validator(source, base_dir)
    if data is None:
        data = {}
    d = v.mapping(data, "", TOP_KEYS)
    defaults = Config()
    version = d.get("version", 2)
    if version != 2 or isinstance(version, bool):
        v.fail("version", "2", version, "this Gantry reads config version 2 (docs/config.md)")
    ref, options, profile = v.profile(d, defaults)

    def section(key: str, empty: Any) -> Any:
        value = d.get(key, empty)
        return empty if value is None else value  # `keep:` with nothing under it

    remove_private = v.bool_(d.get("remove_private_tags", True), "remove_private_tags")
    safe = v.safe_private(section("safe_private_tags", []))
    if safe and ProfileOption.RETAIN_SAFE_PRIVATE not in profile.options:
        v.fail(
            "safe_private_tags",
            "used with the 'retain-safe-private' option",
            f"{len(safe)} entr{'y' if len(safe) == 1 else 'ies'}",
            "add 'retain-safe-private' to `options`",
        )
    phi = v.phi_tags(section("phi_tags", {}))
    return Config(
        version=2,
        privacy_profile=ref,
        options=options,
        date_jitter=v.date_jitter(section("date_jitter", {})),
        remove_private_tags=remove_private,
        safe_private_tags=safe,
        phi_tags=phi,
        keep=v.keep(section("keep", []), phi),
        pseudonym=v.pseudonym(section("pseudonym", {})),
        patient_name=v.choice(  # type: ignore[arg-type]
            d.get("patient_name", defaults.patient_name), "patient_name", tuple(PATIENT_NAME_PLAN)
        ),
        uid_root=v.uid_root(d.get("uid_root", defaults.uid_root)),
        age=v.age(section("age", {})),
        machines=v.machines(section("machines", [])),
        burned_in=v.burned_in(section("burned_in", {})),
        encrypted_attributes=v.bool_(
            d.get("encrypted_attributes", defaults.encrypted_attributes), "encrypted_attributes"
        ),
        duplicates=v.choice(  # type: ignore[arg-type]
            d.get("duplicates", defaults.duplicates), "duplicates", DUPLICATE_POLICIES
        ),
        sr_text=v.choice(  # type: ignore[arg-type]
            d.get("sr_text", defaults.sr_text), "sr_text", ("clean", "remove")
        ),
        sr_drop=v.sr_drop(section("sr_drop", [])),
        overlays=v.choice(  # type: ignore[arg-type]
            d.get("overlays", defaults.overlays), "overlays", ("remove", "burn")
        ),
        acknowledged=v.acknowledged(section("acknowledged", [])),
        deface=v.deface(section("deface", {})),
        source=source,
    )
