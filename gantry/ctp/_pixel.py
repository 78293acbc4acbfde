"""CTP DicomPixelAnonymizer scripts: tokenizer, recursive-descent parser, conversion.

The script language, as read here (whitespace and line breaks are free)::

    script     := { comment-text | signature regions }
    signature  := "{" expr "}"
    regions    := region { region }               directly after the signature
    region     := "(" INT "," INT "," INT "," INT ")"     x, y, width, height
    expr       := term { "+" term }               "+" is OR
    term       := factor { "*" factor }           "*" is AND, binds tighter than "+"
    factor     := "!" factor | "(" expr ")" | "true" | "false" | test
    test       := element "." METHOD "(" [ arg { "," arg } ] ")"
    element    := path { "::" path }
    path       := KEYWORD | "[" HEX4 "," HEX4 "]"
    arg        := STRING | NUMBER

Text outside signatures and their regions is comment; the comment lines
before a signature name the machine entries made from it.

Conversion: one ``machines`` entry per signature, in script order. When the
condition is one AND of ``…IgnoreCase`` tests of ``Manufacturer``,
``ManufacturerModelName``, ``DeviceSerialNumber`` and whole-number
``Rows``/``Columns`` tests, it becomes those plain ``match`` fields;
otherwise it is written whole, in this same grammar, as ``match.conditions``
(:mod:`gantry.config._conditions` evaluates it), so no entry is approximate.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Final

from pydicom.datadict import tag_for_keyword

from gantry.ctp._report import ConversionReport, CTPScriptError, ReportItem
from gantry.errors import ConfigError

__all__ = ["Condition", "Signature", "convert", "parse", "parse_condition"]

#: Alternatives one signature may expand to before the script is refused.
MAX_ALTERNATIVES: Final = 64

#: Condition methods, lower-cased → (spelling, number of arguments).
METHODS: Final[dict[str, tuple[str, int]]] = {
    m.lower(): (m, n)
    for m, n in (
        ("equals", 1),
        ("equalsIgnoreCase", 1),
        ("contains", 1),
        ("containsIgnoreCase", 1),
        ("startsWith", 1),
        ("startsWithIgnoreCase", 1),
        ("endsWith", 1),
        ("endsWithIgnoreCase", 1),
        ("matches", 1),
        ("isLessThan", 1),
        ("isGreaterThan", 1),
        ("isBlank", 0),
    )
}

_TEXT_FIELDS: Final = {0x00080070: "manufacturer", 0x00081090: "model", 0x00181000: "serial_number"}
_SIZE_FIELDS: Final = {0x00280010: "rows", 0x00280011: "columns"}
_TEXT_ORDER: Final = ("serial_number", "manufacturer", "model")


# -- syntax tree -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Condition:
    """One ``element.method(args)`` test of a signature."""

    element: str
    """The element as written: ``Manufacturer``, ``[0008,0070]``, ``A::B``."""
    tag: int | None
    """The element's tag (None for a sequence path or an unknown keyword)."""
    method: str
    args: tuple[str, ...]
    line: int = field(default=0, compare=False)

    def text(self) -> str:
        """The test in CTP syntax."""
        args = ", ".join(_quote(a) for a in self.args)
        return f"{self.element}.{self.method}({args})"


@dataclass(frozen=True, slots=True)
class Not:
    operand: Node


@dataclass(frozen=True, slots=True)
class And:
    operands: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class Or:
    operands: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class Const:
    value: bool


Node = Condition | Not | And | Or | Const


@dataclass(frozen=True, slots=True)
class Signature:
    """A parsed signature with its regions and the comment that labels it."""

    expr: Node
    regions: tuple[tuple[int, int, int, int], ...]
    """``(x, y, width, height)`` as written."""
    line: int
    label: str
    text: str
    """The signature and regions as written, whitespace collapsed."""


def _quote(arg: str) -> str:
    return '"' + arg.replace("\\", "\\\\").replace('"', '\\"') + '"'


def render(node: Node) -> str:
    """A node back in CTP syntax (parentheses only where needed)."""
    if isinstance(node, Condition):
        return node.text()
    if isinstance(node, Const):
        return "true" if node.value else "false"
    if isinstance(node, Not):
        inner = render(node.operand)
        return "!" + (inner if isinstance(node.operand, Condition | Const | Not) else f"({inner})")
    if isinstance(node, And):
        return " * ".join(
            f"({render(o)})" if isinstance(o, Or) else render(o) for o in node.operands
        )
    return " + ".join(render(o) for o in node.operands)


# -- tokenizer -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Token:
    kind: str  # IDENT TAG STRING NUMBER or the punctuation itself; "EOF"
    value: str
    line: int
    col: int


_PUNCT: Final = {".", "(", ")", ",", "*", "+", "!", "{", "}"}


class _Scanner:
    """Walks the script text keeping line and column."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0
        self.line = 1
        self.col = 1

    def peek(self, offset: int = 0) -> str:
        i = self.pos + offset
        return self.text[i] if i < len(self.text) else ""

    def advance(self, n: int = 1) -> str:
        out = self.text[self.pos : self.pos + n]
        for ch in out:
            if ch == "\n":
                self.line += 1
                self.col = 1
            else:
                self.col += 1
        self.pos += len(out)
        return out

    def skip_space(self) -> None:
        while self.peek() and self.peek().isspace():
            self.advance()

    def error(self, expected: str, got: str, hint: str | None = None) -> CTPScriptError:
        return CTPScriptError(self.line, self.col, expected=expected, got=got, hint=hint)

    def token(self) -> _Token:
        """The next token of a signature (after skipping whitespace)."""
        self.skip_space()
        line, col = self.line, self.col
        ch = self.peek()
        if not ch:
            return _Token("EOF", "", line, col)
        if ch == ":" and self.peek(1) == ":":
            self.advance(2)
            return _Token("::", "::", line, col)
        if ch in _PUNCT:
            self.advance()
            return _Token(ch, ch, line, col)
        if ch == '"':
            return self._string(line, col)
        if ch == "[":
            return self._tag(line, col)
        if ch.isalpha() or ch == "_":
            start = self.pos
            while self.peek() and (self.peek().isalnum() or self.peek() == "_"):
                self.advance()
            return _Token("IDENT", self.text[start : self.pos], line, col)
        if ch.isdigit() or (ch == "-" and self.peek(1).isdigit()):
            start = self.pos
            self.advance()
            while self.peek().isdigit():
                self.advance()
            return _Token("NUMBER", self.text[start : self.pos], line, col)
        raise self.error("a signature token (element, method, string, * + ! or parentheses)", ch)

    def _string(self, line: int, col: int) -> _Token:
        self.advance()
        out: list[str] = []
        while True:
            ch = self.peek()
            if not ch or ch == "\n":
                raise CTPScriptError(line, col, expected="a closed string", got="end of line")
            self.advance()
            if ch == '"':
                return _Token("STRING", "".join(out), line, col)
            if ch == "\\" and self.peek():
                out.append(self.advance())
            else:
                out.append(ch)

    def _tag(self, line: int, col: int) -> _Token:
        end = self.text.find("]", self.pos)
        raw = self.text[self.pos : end + 1] if end >= 0 else self.text[self.pos : self.pos + 12]
        m = re.fullmatch(r"\[\s*([0-9A-Fa-f]{4})\s*,\s*([0-9A-Fa-f]{4})\s*\]", raw)
        if m is None:
            raise self.error("a tag such as [0008,0070]", raw.split("\n")[0])
        self.advance(len(raw))
        return _Token("TAG", (m.group(1) + m.group(2)).upper(), line, col)


# -- parser --------------------------------------------------------------------------------


class _Parser:
    """Recursive descent over one signature's tokens."""

    def __init__(self, scanner: _Scanner) -> None:
        self.s = scanner
        self.tok = scanner.token()

    def next(self) -> _Token:
        tok = self.tok
        self.tok = self.s.token()
        return tok

    def expect(self, kind: str, what: str) -> _Token:
        if self.tok.kind != kind:
            raise self.fail(what)
        return self.next()

    def fail(self, expected: str, hint: str | None = None) -> CTPScriptError:
        got = "end of script" if self.tok.kind == "EOF" else self.tok.value
        return CTPScriptError(self.tok.line, self.tok.col, expected=expected, got=got, hint=hint)

    def expr(self) -> Node:
        terms = [self.term()]
        while self.tok.kind == "+":
            self.next()
            terms.append(self.term())
        return terms[0] if len(terms) == 1 else Or(tuple(terms))

    def term(self) -> Node:
        factors = [self.factor()]
        while self.tok.kind == "*":
            self.next()
            factors.append(self.factor())
        return factors[0] if len(factors) == 1 else And(tuple(factors))

    def factor(self) -> Node:
        kind = self.tok.kind
        if kind == "!":
            self.next()
            return Not(self.factor())
        if kind == "(":
            self.next()
            inner = self.expr()
            self.expect(")", "')' closing the parenthesis")
            return inner
        if kind == "IDENT" and self.tok.value.lower() in ("true", "false"):
            value = self.next().value.lower() == "true"
            if self.tok.kind == ".":  # CTP also writes "true."
                self.next()
            return Const(value)
        if kind in ("IDENT", "TAG"):
            return self.test()
        raise self.fail("a test such as Manufacturer.contains(\"X\"), '!' or '('")

    def element(self) -> tuple[str, int | None]:
        parts: list[str] = []
        tags: list[int | None] = []
        while True:
            tok = self.tok
            if tok.kind == "TAG":
                self.next()
                parts.append(f"[{tok.value[:4]},{tok.value[4:]}]")
                tags.append(int(tok.value, 16))
            elif tok.kind == "IDENT":
                self.next()
                parts.append(tok.value)
                tags.append(tag_for_keyword(tok.value))
            else:
                raise self.fail("an element keyword or [gggg,eeee] tag")
            if self.tok.kind != "::":
                break
            self.next()
        return "::".join(parts), tags[0] if len(tags) == 1 else None

    def test(self) -> Condition:
        line = self.tok.line
        element, tag = self.element()
        self.expect(".", f"'.' and a method after {element}")
        tok = self.tok
        if tok.kind != "IDENT":
            raise self.fail("a method name")
        known = METHODS.get(tok.value.lower())
        if known is None:
            raise self.fail(
                "a known method",
                "one of " + ", ".join(spelling for spelling, _ in METHODS.values()),
            )
        self.next()
        method, arity = known
        self.expect("(", f"'(' after {method}")
        args: list[str] = []
        if self.tok.kind != ")":
            while True:
                if self.tok.kind not in ("STRING", "NUMBER"):
                    raise self.fail('a quoted argument such as "GE MEDICAL"')
                args.append(self.next().value)
                if self.tok.kind != ",":
                    break
                self.next()
        if len(args) != arity:
            raise self.fail(f"{arity} argument{'s' if arity != 1 else ''} to {method}")
        self.expect(")", f"')' closing {method}(")
        return Condition(element, tag, method, tuple(args), line)


def _regions(s: _Scanner) -> list[tuple[int, int, int, int]]:
    """The ``(x, y, w, h)`` regions right after a signature."""
    out: list[tuple[int, int, int, int]] = []
    while True:
        save = (s.pos, s.line, s.col)
        s.skip_space()
        if s.peek() != "(":
            s.pos, s.line, s.col = save
            return out
        line, col = s.line, s.col
        end = s.text.find(")", s.pos)
        raw = s.text[s.pos : end + 1] if end >= 0 else s.text[s.pos :].split("\n")[0]
        m = re.fullmatch(r"\(\s*(\d+)\s*,\s*(\d+)\s*,\s*(\d+)\s*,\s*(\d+)\s*\)", raw)
        if m is None:
            raise CTPScriptError(
                line,
                col,
                expected="a region (x, y, width, height) of 4 whole numbers",
                got=" ".join(raw.split())[:60],
            )
        s.advance(len(raw))
        x, y, w, h = (int(g) for g in m.groups())
        out.append((x, y, w, h))


def _label(comment: str, section: str, previous: str) -> tuple[str, str]:
    """(section, label) from the comment text before a signature."""
    label_lines: list[str] = []
    lines = [ln.strip() for ln in comment.splitlines()]
    i = 0
    while i < len(lines):
        ln = lines[i]
        if ln and set(ln) == {"*"}:
            # "****" / SECTION / "****": a new section heading
            title = []
            i += 1
            while i < len(lines) and not (lines[i] and set(lines[i]) == {"*"}):
                if lines[i]:
                    title.append(lines[i])
                i += 1
            if title:
                section = " ".join(" ".join(title).split())
            label_lines = []
            i += 1
            continue
        if ln:
            label_lines.append(ln)
        i += 1
    label = " ".join(" - ".join(label_lines).split())
    if len(label) > 70:
        label = label[:67].rstrip() + "..."
    return section, label or previous


def parse_condition(text: str) -> Node:
    """Parse one condition (a signature's text without braces and regions).

    This is the grammar of a ``machines`` entry's ``match.conditions``
    (docs/config.md). Raises :class:`CTPScriptError` naming line and column.

    Examples
    --------
    >>> render(parse_condition('Rows.equals("512") * !(Modality.equals("US") + false)'))
    'Rows.equals("512") * !(Modality.equals("US") + false)'
    """
    p = _Parser(_Scanner(text))
    if p.tok.kind == "EOF":
        raise p.fail('a condition such as Manufacturer.containsIgnoreCase("GE")')
    expr = p.expr()
    if p.tok.kind != "EOF":
        raise p.fail("the end of the condition, or * + to combine tests")
    return expr


def parse(text: str) -> list[Signature]:
    """Parse a pixel script into signatures (raises :class:`CTPScriptError`).

    Examples
    --------
    >>> sig, = parse('US\\n{ !Modality.equals("US") + Rows.equals("480") * Columns.equals("640") }(0,0,1,1)')
    >>> render(sig.expr), sig.regions, sig.line, sig.label
    ('!Modality.equals("US") + Rows.equals("480") * Columns.equals("640")', ((0, 0, 1, 1),), 2, 'US')
    """
    s = _Scanner(text)
    out: list[Signature] = []
    comment: list[str] = []
    section, label = "", ""
    while s.peek():
        if s.peek() != "{":
            comment.append(s.advance())
            continue
        start, line = s.pos, s.line
        section, label = _label("".join(comment), section, label)
        comment = []
        s.advance()
        p = _Parser(s)
        if p.tok.kind == "}":
            raise p.fail("a condition inside { }")
        expr = p.expr()
        if p.tok.kind != "}":
            raise p.fail("'}' closing the signature, or * + to combine tests")
        # "}" is the parser's lookahead: the scanner stands right after it
        regions = _regions(s)
        raw = " ".join(s.text[start : s.pos].split())
        name = f"{section}: {label}" if section and label else (label or section)
        out.append(Signature(expr, tuple(regions), line, name, raw))
    return out


# -- normal form ---------------------------------------------------------------------------

Literal_ = tuple[Condition, bool]  # (test, positive)
Conjunction = tuple[Literal_, ...]


def dnf(node: Node, negate: bool = False) -> list[Conjunction]:
    """Alternatives (ORed) of ANDed literals; ``[]`` is never true, ``[()]`` always.

    Examples
    --------
    >>> a, b, c = (Condition(k, None, "equals", ("1",)) for k in "ABC")
    >>> [[(t.element, pos) for t, pos in conj] for conj in dnf(And((a, Or((b, Not(c))))))]
    [[('A', True), ('B', True)], [('A', True), ('C', False)]]
    """
    if isinstance(node, Condition):
        return [((node, not negate),)]
    if isinstance(node, Const):
        return [()] if node.value != negate else []
    if isinstance(node, Not):
        return dnf(node.operand, not negate)
    conjunctive = isinstance(node, And) != negate
    parts = [dnf(o, negate) for o in node.operands]
    if not conjunctive:
        alts = [conj for part in parts for conj in part]
    else:
        alts = [()]
        for part in parts:
            alts = [a + b for a in alts for b in part]
            if len(alts) > MAX_ALTERNATIVES:
                break
    return _simplify(alts)


def _simplify(alts: list[Conjunction]) -> list[Conjunction]:
    out: list[Conjunction] = []
    for conj in alts:
        unique = tuple(dict.fromkeys(conj))
        positive = {t for t, pos in unique if pos}
        if any(not pos and t in positive for t, pos in unique):
            continue  # X * !X never holds
        if unique not in out:
            out.append(unique)
    return out


# -- conversion ----------------------------------------------------------------------------


def _plain_match(conj: Conjunction) -> dict[str, Any] | None:
    """Plain ``match`` fields saying exactly what one alternative says, or None.

    Exact: ``containsIgnoreCase``/``equalsIgnoreCase`` (one mode for the entry) of
    Manufacturer, ManufacturerModelName, DeviceSerialNumber, and
    ``Rows``/``Columns.equals`` of a whole number, each field tested once.
    """
    text: dict[str, tuple[str, str]] = {}  # field → (value, mode)
    size: dict[str, int] = {}
    for t, positive in conj:
        arg = t.args[0] if t.args else ""
        if not positive or not arg or arg != arg.strip():
            return None
        if t.tag in _SIZE_FIELDS and t.method == "equals" and arg.isdigit() and int(arg) > 0:
            fld = _SIZE_FIELDS[t.tag]
            if fld in size:
                return None
            size[fld] = int(arg)
            continue
        fld_ = _TEXT_FIELDS.get(t.tag) if t.tag is not None else None
        modes = {"containsIgnoreCase": "contains", "equalsIgnoreCase": "equals"}
        if fld_ is None or fld_ in text or t.method not in modes:
            return None
        text[fld_] = (arg, modes[t.method])
    if len({mode for _, mode in text.values()}) > 1 or not (text or size):
        return None
    match: dict[str, Any] = {fld: text[fld][0] for fld in _TEXT_ORDER if fld in text}
    match.update({k: size[k] for k in ("rows", "columns") if k in size})
    if text:
        match["mode"] = next(iter(text.values()))[1]
    return match


def _zones(
    regions: tuple[tuple[int, int, int, int], ...], match: dict[str, Any]
) -> tuple[list[list[int]], list[str]]:
    """``(x, y, w, h)`` → ``[y, y+h, x, x+w]``, clipped to a known image size."""
    zones: list[list[int]] = []
    notes: list[str] = []
    rows, cols = match.get("rows"), match.get("columns")
    for x, y, w, h in regions:
        r1, r2, c1, c2 = y, y + h, x, x + w
        if rows is not None:
            r2 = min(r2, rows)
        if cols is not None:
            c2 = min(c2, cols)
        if r1 >= r2 or c1 >= c2:
            notes.append(f"region ({x},{y},{w},{h}) is empty or outside the image: left out")
            continue
        if (r2, c2) != (y + h, x + w):
            notes.append(f"region ({x},{y},{w},{h}) clipped to the image: {[r1, r2, c1, c2]}")
        zone = [r1, r2, c1, c2]
        if zone not in zones:
            zones.append(zone)
    return zones, notes


def _covers(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """Whether every image ``b`` accepts is also accepted by ``a`` (plain fields only)."""
    if "conditions" in a or "conditions" in b:
        return False
    for fld in ("serial_number", "manufacturer", "model"):
        if fld not in a:
            continue
        if fld not in b:
            return False
        av, bv = a[fld].strip().lower(), b[fld].strip().lower()
        if a["mode"] == "contains":
            if av not in bv:
                return False
        elif b["mode"] != "equals" or av != bv:
            return False
    return all(b.get(k) == a[k] for k in ("rows", "columns") if k in a)


def convert(text: str) -> tuple[dict[str, Any], ConversionReport]:
    """See `gantry.ctp.convert_pixel_script`."""
    report = ConversionReport("pixel")
    machines: list[dict[str, Any]] = []
    lines: list[int] = []
    signatures = parse(text)
    report.rules_in = len(signatures)
    for sig in signatures:
        entry = _convert_signature(sig, report)
        if entry is not None:
            machines.append(entry)
            lines.append(sig.line)
            report.converted += 1
    # script order is kept: Gantry, like CTP, gives an image the first matching entry
    for j, later in enumerate(machines):
        for i in range(j):
            if _covers(machines[i]["match"], later["match"]):
                report.notes.append(
                    f"line {lines[j]}: entry {later['name']!r} is never reached: the first "
                    f"matching entry wins and {machines[i]['name']!r} (line {lines[i]}) comes "
                    "first (in CTP too: the earlier signature is broader)"
                )
                break
    report.entries_out = len(machines)
    return {"version": 2, "machines": machines}, report


def _structured(sig: Signature) -> dict[str, Any] | None:
    """The signature as plain ``match`` fields, when they say exactly the same."""
    alts = dnf(sig.expr)
    return _plain_match(alts[0]) if len(alts) == 1 else None


def _convert_signature(sig: Signature, report: ConversionReport) -> dict[str, Any] | None:
    """One signature → one ``machines`` entry (or a report line saying why not)."""
    from gantry.config._conditions import parse_condition

    base = sig.label or "CTP signature"
    if not sig.regions:
        report.unmapped.append(ReportItem(sig.line, sig.text, "the signature has no regions"))
        return None
    if not dnf(sig.expr):
        report.unmapped.append(
            ReportItem(sig.line, sig.text, "the condition can never hold (it is always false)")
        )
        return None
    match = _structured(sig)
    if match is None:
        condition = render(sig.expr)
        try:
            parse_condition(condition)
        except ConfigError as exc:  # e.g. a Java regex Polars cannot run
            why = f"`conditions` cannot express it: {exc.expected}, got {exc.got!r}"
            report.unmapped.append(ReportItem(sig.line, sig.text, why))
            return None
        match = {"conditions": condition}
    zones, zone_notes = _zones(sig.regions, match)
    for note in zone_notes:
        report.notes.append(f"line {sig.line}: {note}")
    if not zones:
        report.unmapped.append(ReportItem(sig.line, sig.text, "no region inside the image"))
        return None
    return {
        "name": f"{base} (line {sig.line})",
        "match": match,
        "redaction_zones": zones,
        "fill": 0,
    }
