"""CTP DicomAnonymizer (header) scripts → config v2.

A header script is XML::

    <script>
      <p t="UIDROOT">1.2.3</p>                                   parameter
      <e en="T" t="00100020" n="PatientID">@hash(this,10)</e>    element rule
      <r en="T" t="privategroups">Remove private groups</r>      group removal
      <k en="T" t="0018">Keep group 0018</k>                     group keep
    </script>

It is read with expat (line numbers for every rule; no DTD, no entities
beyond XML's own).  An element's script is parsed into calls
``@name(args){block}…`` and literal text, then mapped to one Gantry action;
``docs/ctp.md`` has the table.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Literal
from xml.parsers import expat

from pydicom.datadict import dictionary_VR, keyword_for_tag

from gantry.ctp._report import ConversionReport, CTPScriptError, ReportItem

__all__ = ["Call", "Rule", "convert", "parse_script", "read_rules"]

#: Elements Gantry itself writes on export (plan rule ``deidentification``).
BUILTIN: Final[dict[str, str]] = {
    "00120062": "PatientIdentityRemoved: Gantry writes YES",
    "00120063": "DeidentificationMethod: Gantry writes its version, profile and options",
    "00120064": "DeidentificationMethodCodeSequence: Gantry writes the profile's CID 7050 codes",
    "00280303": "LongitudinalTemporalInformationModified: Gantry writes it from the date option",
}

#: CTP functions with no Gantry action, and why.
NO_EQUIVALENT: Final[dict[str, str]] = {
    "lookup": "replaces the value from a lookup table; Gantry's config has no lookup tables",
    "date": "writes the date of processing; a REPLACE value cannot hold a run-time date",
    "time": "writes the time of processing; a REPLACE value cannot hold a run-time time",
    "initials": "replaces a name by its initials; no Gantry action keeps initials",
    "round": "rounds a number into groups; Gantry has no rounding action "
    "(ages over a limit: `age.aggregate_over`)",
    "modifydate": "sets parts of a date (year, month, day); Gantry shifts dates (SHIFT) "
    "or removes them, it does not set date parts",
    "process": "processes the items of a sequence with the script; Gantry applies its rules "
    "inside sequences without a per-element switch",
    "skip": "skips the whole object; an object-level decision, not a tag action "
    "(select objects with `gantry export --query`)",
    "quarantine": "quarantines the whole object; an object-level decision, not a tag action "
    "(see the audit and `gantry export --query`)",
    "if": "a conditional script; Gantry's actions do not depend on the value",
    "append": "appends a computed value to the element; Gantry has no append action",
    "encrypt": "encrypts the value; Gantry has no encryption action",
    "integer": "numbers values through a lookup; Gantry's counters are for patients only "
    "(`pseudonym`)",
    "truncate": "truncates the value; Gantry has no truncation action",
    "contents": "copies or edits another element's contents; no Gantry action reads other elements",
    "select": "chooses a script by condition; Gantry's actions are unconditional",
    "offsetdate": "computes a date interval from a base date; Gantry shifts dates by a "
    "per-patient offset",
    "dateinterval": "computes a date interval; Gantry shifts dates by a per-patient offset",
}

_HASHES: Final = ("hash", "hashname", "hashptid")
_SHIFTABLE: Final = ("DA", "DT")
_MAX_SHIFT_DAYS: Final = 36_600

Outcome = Literal["mapped", "approximate", "unmapped"]


# -- reading -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Rule:
    """One child of ``<script>``: ``<e>``, ``<p>``, ``<r>``, ``<k>`` (or unknown)."""

    kind: str
    enabled: bool
    t: str
    n: str | None
    text: str
    line: int


def read_rules(text: str) -> list[Rule]:
    """The rules of a header script, with their lines (raises :class:`CTPScriptError`).

    Examples
    --------
    >>> [(r.kind, r.t, r.line) for r in read_rules('<script>\\n <p t="A">1</p>\\n</script>')]
    [('p', 'A', 2)]
    """
    parser = expat.ParserCreate()
    rules: list[Rule] = []
    stack: list[tuple[str, dict[str, str], int, list[str]]] = []

    def fail(expected: str, got: str) -> CTPScriptError:
        return CTPScriptError(
            parser.CurrentLineNumber, parser.CurrentColumnNumber + 1, expected=expected, got=got
        )

    def start(name: str, attrs: dict[str, str]) -> None:
        if not stack and name != "script":
            raise fail("the root element <script>", f"<{name}>")
        if len(stack) >= 2:
            raise fail(f"text inside <{stack[-1][0]}>", f"<{name}>")
        stack.append((name, attrs, parser.CurrentLineNumber, []))

    def end(name: str) -> None:
        kind, attrs, line, chunks = stack.pop()
        if stack:
            enabled = attrs.get("en", "T").strip().upper() != "F"
            rules.append(
                Rule(
                    kind, enabled, attrs.get("t", "").strip(), attrs.get("n"), "".join(chunks), line
                )
            )

    def chars(data: str) -> None:
        if stack:
            stack[-1][3].append(data)

    def doctype(*_: Any) -> None:
        raise fail("a script without a DOCTYPE", "<!DOCTYPE>")

    parser.StartElementHandler = start
    parser.EndElementHandler = end
    parser.CharacterDataHandler = chars
    parser.StartDoctypeDeclHandler = doctype
    parser.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)
    try:
        parser.Parse(text, True)
    except expat.ExpatError as exc:
        raise CTPScriptError(
            exc.lineno, exc.offset + 1, expected="well-formed XML", got=expat.ErrorString(exc.code)
        ) from None
    return rules


@dataclass(frozen=True, slots=True)
class Call:
    """``@name(args){block}…``; ``args`` is None for a bare ``@NAME``."""

    name: str
    args: tuple[str, ...] | None
    blocks: tuple[str, ...] = ()


Part = Call | str


def _closing(text: str, i: int, line: int) -> int:
    """Index of the bracket closing ``text[i]`` (quotes and nesting respected)."""
    pair = {"(": ")", "{": "}"}
    opening, closing = text[i], pair[text[i]]
    depth, quoted = 0, False
    for j in range(i, len(text)):
        ch = text[j]
        if ch == '"':
            quoted = not quoted
        elif quoted:
            continue
        elif ch == opening:
            depth += 1
        elif ch == closing:
            depth -= 1
            if depth == 0:
                return j
    raise CTPScriptError(
        line + text[:i].count("\n"),
        i + 1,
        expected=f"'{closing}' closing '{opening}' in the element script",
        got=text.strip()[:60],
    )


def _split_args(text: str) -> tuple[str, ...]:
    out, depth, quoted, start = [], 0, False, 0
    for j, ch in enumerate(text):
        if ch == '"':
            quoted = not quoted
        elif quoted:
            continue
        elif ch in "({":
            depth += 1
        elif ch in ")}":
            depth -= 1
        elif ch == "," and depth == 0:
            out.append(text[start:j].strip())
            start = j + 1
    last = text[start:].strip()
    if out or last:
        out.append(last)
    return tuple(out)


def parse_script(text: str, line: int = 1) -> list[Part]:
    """An element script as calls and literal text.

    Examples
    --------
    >>> parse_script("@if(this,isblank){@remove()}{Removed}")
    [Call(name='if', args=('this', 'isblank'), blocks=('@remove()', 'Removed'))]
    >>> parse_script("@always()YES")
    [Call(name='always', args=(), blocks=()), 'YES']
    """
    parts: list[Part] = []
    buf: list[str] = []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch == "@" and i + 1 < n and (text[i + 1].isalpha() or text[i + 1] == "_"):
            if buf:
                parts.append("".join(buf))
                buf = []
            j = i + 1
            while j < n and (text[j].isalnum() or text[j] == "_"):
                j += 1
            name = text[i + 1 : j]
            args: tuple[str, ...] | None = None
            if j < n and text[j] == "(":
                close = _closing(text, j, line)
                args = _split_args(text[j + 1 : close])
                j = close + 1
                name = name.lower()
            blocks: list[str] = []
            while j < n and text[j] == "{":
                close = _closing(text, j, line)
                blocks.append(text[j + 1 : close])
                j = close + 1
            parts.append(Call(name, args, tuple(blocks)))
            i = j
        else:
            buf.append(ch)
            i += 1
    if buf:
        parts.append("".join(buf))
    return [p for p in parts if not isinstance(p, str) or p.strip()]


# -- conversion ----------------------------------------------------------------------------


@dataclass
class _Result:
    outcome: Outcome
    action: str | None = None  # a TagAction name, "KEEP" meaning the `keep` list
    value: str | None = None
    why: str = ""  # approximate / unmapped reason


@dataclass
class _State:
    params: dict[str, str]
    report: ConversionReport
    uid_roots: list[tuple[str, int]] = field(default_factory=list)
    increments: list[tuple[int, int, str]] = field(default_factory=list)  # days, line, tag
    notes_once: set[str] = field(default_factory=set)

    def note_once(self, text: str) -> None:
        if text not in self.notes_once:
            self.notes_once.add(text)
            self.report.notes.append(text)


def _vr(tag: int) -> str | None:
    try:
        return str(dictionary_VR(tag))
    except KeyError:
        return None


def _unquote(arg: str) -> str:
    a = arg.strip()
    return a[1:-1] if len(a) >= 2 and a[0] == a[-1] == '"' else a


def _resolve(arg: str, params: Mapping[str, str]) -> str | None:
    """A call argument's value: ``@PARAM`` → its value (None if undefined)."""
    a = _unquote(arg)
    if a.startswith("@"):
        return params.get(a[1:])
    return a


def _is_this(arg: str, rule: Rule, tag: int) -> bool:
    a = _unquote(arg)
    names = {"this", (rule.n or "").lower(), (keyword_for_tag(tag) or "").lower(), rule.t.lower()}
    return a.lower() in names - {""}


def _template_text(text: str) -> str:
    """A literal as a REPLACE template: braces doubled."""
    return text.replace("{", "{{").replace("}", "}}")


def _classify(rule: Rule, tag: int, parts: list[Part], st: _State) -> _Result:
    vr = _vr(tag)
    always = False
    if parts and isinstance(parts[0], Call) and parts[0].name == "always" and parts[0].args == ():
        always = True
        parts = parts[1:]
    created = (
        "; CTP's @always() also creates the element when it is absent, "
        "Gantry only replaces a present one"
        if always
        else ""
    )
    if not parts:
        return _Result(
            "approximate",
            "EMPTY",
            why="an empty script: CTP writes its (empty) result; converted to EMPTY" + created,
        )
    if len(parts) == 1 and isinstance(parts[0], str):
        return _literal(parts[0], vr, created)
    if len(parts) > 1:
        if all(isinstance(p, str) or p.args is None for p in parts):
            text = []
            for p in parts:
                if isinstance(p, str):
                    text.append(p)
                elif p.name in st.params:
                    text.append(st.params[p.name])
                else:
                    return _Result("unmapped", why=f"@{p.name} is not a defined parameter")
            return _literal("".join(text), vr, created)
        return _Result(
            "unmapped",
            why="a script combining several functions or text; Gantry takes one action per tag",
        )
    call = parts[0]
    assert isinstance(call, Call)
    name, args = call.name, call.args or ()
    if call.args is None:
        if name in st.params:
            return _literal(st.params[name], vr, created)
        return _Result("unmapped", why=f"@{name} is not a defined parameter")
    if name == "remove":
        return _Result("mapped", "REMOVE")
    if name == "empty":
        return _Result("mapped", "EMPTY")
    if name == "keep":
        return _Result("mapped", "KEEP")
    if name == "require":
        return _Result(
            "approximate",
            "KEEP",
            why="kept; CTP's @require() also creates an empty element when it is absent",
        )
    if name == "blank":
        return _Result("approximate", "EMPTY", why="CTP writes blanks; converted to EMPTY")
    if name == "param":
        value = _resolve(args[0], st.params) if args else None
        if value is None:
            return _Result("unmapped", why=f"parameter {args[0] if args else ''!r} is not defined")
        return _literal(value, vr, created)
    if name == "hashuid":
        if len(args) != 2 or not _is_this(args[1], rule, tag):
            return _Result("unmapped", why="hashes another element's value into this UID")
        if vr != "UI":
            return _Result("unmapped", why=f"REMAP needs a UID (UI) element, this one is {vr}")
        root = _resolve(args[0], st.params)
        if root:
            st.uid_roots.append((root.strip().rstrip("."), rule.line))
        return _Result("mapped", "REMAP")
    if name in ("incrementdate", "hashdate"):
        if not args or not _is_this(args[0], rule, tag):
            return _Result("unmapped", why="computes the date from another element")
        if vr not in _SHIFTABLE:
            return _Result("unmapped", why=f"SHIFT needs a date (DA/DT) element, this one is {vr}")
        if name == "incrementdate":
            raw = _resolve(args[1], st.params) if len(args) > 1 else None
            try:
                days = int(str(raw).strip())
            except ValueError:
                return _Result("unmapped", why=f"the increment {args[1:]} is not a whole number")
            if days == 0:
                return _Result(
                    "unmapped",
                    why="an increment of 0 days keeps the date "
                    "(use the retain-longitudinal-full-dates option)",
                )
            if abs(days) > _MAX_SHIFT_DAYS:
                return _Result(
                    "unmapped", why=f"an increment of {days} days is beyond ±{_MAX_SHIFT_DAYS}"
                )
            st.increments.append((days, rule.line, rule.t))
        else:
            st.note_once(
                "@hashdate → SHIFT: CTP offsets dates by a hash of the patient's ID; Gantry by a "
                "keyed per-patient offset drawn from `date_jitter` (dates move by the same amount "
                "for one patient in both, the amounts differ)"
            )
        return _Result("mapped", "SHIFT")
    if name in _HASHES:
        element_args = args[1:2] if name == "hashptid" else args[:1]
        if not element_args or not _is_this(element_args[0], rule, tag):
            return _Result("unmapped", why="hashes another element's value into this one")
        st.note_once(
            f"@{name} → HASH: Gantry's keyed hash replaces CTP's digest; values will not match a "
            "CTP run and the length arguments are not used"
        )
        return _Result("mapped", "HASH")
    if name == "always":
        return _Result("unmapped", why="@always() with arguments is not a CTP form")
    return _Result(
        "unmapped",
        why=NO_EQUIVALENT.get(name, f"@{name}() has no Gantry equivalent"),
    )


def _literal(text: str, vr: str | None, created: str) -> _Result:
    value = text.strip()
    if not value:
        return _Result("approximate", "EMPTY", why="blank text; converted to EMPTY" + created)
    if vr == "SQ":
        return _Result("unmapped", why="text for a sequence (SQ) element")
    if "\\" in value:
        return _Result("unmapped", why="several values ('\\'); a REPLACE value holds one")
    if created:
        return _Result("approximate", "REPLACE", _template_text(value), why=created[2:])
    return _Result("mapped", "REPLACE", _template_text(value))


def _function_of(parts: list[Part]) -> str:
    if not parts:
        return "(empty)"
    first = parts[0]
    if isinstance(first, str):
        return "literal"
    return f"@{first.name}" + ("" if first.args is not None else " (parameter)")


def _profile_says(profile: Any, tag: int) -> str:
    action = profile.action_for(tag)
    if action is None:
        return f"left to the {profile.name} profile, which has no rule for it (kept)"
    return f"left to the {profile.name} profile: {action.value} ({action.description})"


def convert(text: str) -> tuple[dict[str, Any], ConversionReport]:
    """See `gantry.ctp.convert_header_script`."""
    from gantry.config import Config
    from gantry.profiles import load_profile

    defaults = Config()
    profile = load_profile(defaults.privacy_profile, defaults.options)
    report = ConversionReport("header")
    rules = read_rules(text)
    params = {r.t: r.text.strip() for r in rules if r.kind == "p" and r.t}
    st = _State(params, report)

    private_rule = next(
        (r for r in rules if r.kind == "r" and r.t.lower() == "privategroups"), None
    )
    remove_private = private_rule is None or private_rule.enabled
    phi: dict[str, dict[str, Any]] = {}
    phi_line: dict[str, int] = {}
    keep: list[str] = []
    scripted: set[int] = set()  # tags with an enabled element rule (they win over keep groups)
    groups: list[Rule] = []

    def item(rule: Rule, why: str, function: str | None) -> ReportItem:
        name = f" {rule.n}" if rule.n else ""
        shown = (
            f"<{rule.kind} t={rule.t!r}>" if rule.kind != "e" else f"({rule.t[:4]},{rule.t[4:]})"
        )
        return ReportItem(rule.line, f"{shown}{name}: {' '.join(rule.text.split())}", why, function)

    for rule in rules:
        if rule.kind == "p":
            continue
        if rule.kind in ("r", "k"):
            groups.append(rule)
            continue
        if rule.kind != "e":
            report.rules_in += 1
            report.unmapped.append(item(rule, f"unknown script entry <{rule.kind}>", None))
            continue
        if not rule.enabled:
            report.skipped += 1
            continue
        report.rules_in += 1
        try:
            tag = int(rule.t, 16)
            if len(rule.t) != 8:
                raise ValueError(rule.t)
        except ValueError:
            raise CTPScriptError(
                rule.line, 1, expected="an element tag t='ggggeeee' (8 hex digits)", got=rule.t
            ) from None
        key = f"{tag:08X}"
        parts = parse_script(rule.text, rule.line)
        function = _function_of(parts)
        scripted.add(tag)
        if key in BUILTIN:
            report.count(function, "approximate")
            report.converted += 1
            report.approximate.append(
                item(rule, f"not written to the config: {BUILTIN[key]} on export", function)
            )
            continue
        if tag >> 16 & 1:
            if remove_private and _classify(rule, tag, parts, st).action == "REMOVE":
                report.count(function, "mapped")
                report.converted += 1
                st.note_once("@remove() of private elements: covered by remove_private_tags: true")
                continue
            report.count(function, "unmapped")
            report.unmapped.append(
                item(
                    rule,
                    f"private element (group {rule.t[:4]}): Gantry handles private elements by "
                    "creator (`remove_private_tags`, `safe_private_tags`), not one by one",
                    function,
                )
            )
            continue
        res = _classify(rule, tag, parts, st)
        if res.outcome == "unmapped" or res.action is None:
            report.count(function, "unmapped")
            report.unmapped.append(
                item(rule, f"{res.why}; {_profile_says(profile, tag)}", function)
            )
            continue
        report.count(function, res.outcome)
        report.converted += 1
        if res.outcome == "approximate":
            report.approximate.append(item(rule, res.why, function))
        if key in phi or key in keep:
            report.notes.append(
                f"line {rule.line}: ({rule.t[:4]},{rule.t[4:]}) is scripted twice; the later "
                "rule is used, as in CTP"
            )
            phi.pop(key, None)
            if key in keep:
                keep.remove(key)
        if res.action == "KEEP":
            keep.append(key)
            continue
        entry: dict[str, Any] = {"action": res.action}
        keyword = keyword_for_tag(tag)
        if keyword:
            entry["name"] = keyword
        if res.value is not None:
            entry["value"] = res.value
        phi[key] = entry
        phi_line[key] = rule.line

    # -- group rules ----------------------------------------------------------------------
    for rule in groups:
        what = rule.t.lower()
        function = f"<{rule.kind}> {rule.t}"
        if not rule.enabled:
            report.skipped += 1
            if rule.kind == "r" and what == "privategroups":
                report.notes.append(
                    f"line {rule.line}: private groups are not removed (disabled "
                    "<r t='privategroups'>): remove_private_tags: false"
                )
            elif rule.kind == "r" and what in ("curves", "overlays"):
                report.notes.append(
                    f"line {rule.line}: CTP keeps {what} (rule disabled); the {profile.name} "
                    f"profile still removes {_GROUP_WORDS[what]}"
                )
            continue
        report.rules_in += 1
        outcome, why = _group_rule(rule, what, profile, scripted, keep, report)
        report.count(function, outcome)
        if outcome == "unmapped":
            report.unmapped.append(item(rule, why, function))
        else:
            report.converted += 1
            if outcome == "approximate":
                report.approximate.append(item(rule, why, function))

    config: dict[str, Any] = {
        "version": 2,
        "privacy_profile": defaults.privacy_profile,
        "options": [o.value for o in defaults.options],
    }
    _date_jitter(config, st)
    config["remove_private_tags"] = remove_private
    _uid_root(config, st, rules)
    config["phi_tags"] = {f"{k[:4]},{k[4:]}": phi[k] for k in sorted(phi)}
    config["keep"] = [f"{k[:4]},{k[4:]}" for k in sorted(keep)]
    report.entries_out = len(phi) + len(keep)
    report.notes.append(
        f"elements the script does not convert are left to the {profile.name} profile "
        f"(options: {', '.join(o.value for o in defaults.options) or 'none'}), which also acts "
        "on elements the script does not list"
    )
    return config, report


_GROUP_WORDS: Final = {
    "curves": "curve data (50xx,xxxx)",
    "overlays": "overlay data and comments (60xx,3000), (60xx,4000)",
}


def _group_rule(
    rule: Rule,
    what: str,
    profile: Any,
    scripted: set[int],
    keep: list[str],
    report: ConversionReport,
) -> tuple[Outcome, str]:
    import polars as pl

    if rule.kind == "r":
        if what == "privategroups":
            return "mapped", ""
        if what == "curves":
            ok = str(profile.action_for(0x50000010)) == "X"
            return (
                ("mapped", "")
                if ok
                else (
                    "unmapped",
                    f"the {profile.name} profile does not remove curve data",
                )
            )
        if what == "overlays":
            return (
                "approximate",
                f"the {profile.name} profile removes overlay data and comments (60xx,3000), "
                "(60xx,4000); CTP removes the whole 60xx groups, so overlay rows, columns and "
                "origin are kept",
            )
        if what in ("unspecifiedelements", "unscriptedelements"):
            return (
                "unmapped",
                "Gantry has no 'remove every element the script does not name'; those "
                f"elements are left to the {profile.name} profile, which keeps elements "
                "it has no rule for",
            )
        return "unmapped", f"unknown removal rule {rule.t!r}"
    # <k>: keep a group
    if what == "safeprivateelements":
        return (
            "unmapped",
            "CTP's built-in list of safe private elements has no Gantry copy: add the "
            "'retain-safe-private' option and list them under `safe_private_tags`",
        )
    try:
        group = int(rule.t, 16)
        if len(rule.t) != 4:
            raise ValueError(rule.t)
    except ValueError:
        return "unmapped", f"unknown keep rule {rule.t!r}"
    if group & 1:
        return (
            "unmapped",
            "a private group: keep private elements with `safe_private_tags` "
            "and the 'retain-safe-private' option",
        )
    table = profile.table.filter(
        (pl.col("tag_mask") == 0xFFFFFFFF)
        & ((pl.col("tag_value").cast(pl.Int64) // 0x10000) == group)
        & (pl.col("action") != "K")
    )
    added = 0
    for value in table["tag_value"].to_list():
        if value in scripted:
            continue
        key = f"{value:08X}"
        if key not in keep:
            keep.append(key)
            added += 1
    report.notes.append(
        f"line {rule.line}: keep group {rule.t} → {added} `keep` entries (the group's tags the "
        f"{profile.name} profile would change; the script's own element rules win)"
    )
    return "mapped", ""


def _date_jitter(config: dict[str, Any], st: _State) -> None:
    if not st.increments:
        return
    days, line, _ = st.increments[0]
    config["date_jitter"] = {"min_days": days, "max_days": days}
    others = sorted({d for d, _, _ in st.increments if d != days})
    st.report.notes.append(
        f"@incrementdate by {days} days (line {line}) → date_jitter {days}..{days}: every date "
        "Gantry shifts moves by that fixed amount"
    )
    for d, ln, t in st.increments:
        if d != days:
            st.report.approximate.append(
                ReportItem(
                    ln,
                    f"({t[:4]},{t[4:]}): @incrementdate by {d}",
                    f"Gantry has one date offset; shifted by {days} days "
                    f"(other increments in the script: {others})",
                    "@incrementdate",
                )
            )


def _uid_root(config: dict[str, Any], st: _State, rules: list[Rule]) -> None:
    from gantry.config import load_config
    from gantry.errors import ConfigError

    roots = list(dict.fromkeys(r for r, _ in st.uid_roots))
    if not roots:
        return
    line = next((r.line for r in rules if r.kind == "p" and r.t == "UIDROOT"), st.uid_roots[0][1])
    for root in roots:
        try:
            load_config({"uid_root": root})
        except ConfigError as exc:
            st.report.approximate.append(
                ReportItem(
                    line,
                    f"UID root {root!r} of @hashuid",
                    f"not a usable Gantry uid_root (it must be {exc.expected}); UIDs are "
                    f"remapped under {config.get('uid_root', '2.25')!r} instead",
                    "@hashuid",
                )
            )
            continue
        if "uid_root" not in config:
            config["uid_root"] = root
        else:
            st.report.notes.append(
                f"@hashuid also uses the root {root!r}; Gantry has one uid_root "
                f"({config['uid_root']!r})"
            )
