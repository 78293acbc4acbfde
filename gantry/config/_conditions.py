"""``match.conditions``: boolean tests of element values, as Polars expressions.

A machine entry may say which images it applies to with a condition written in
the signature language of CTP's DicomPixelAnonymizer (so every CTP signature
converts exactly)::

    match:
      conditions: 'Manufacturer.containsIgnoreCase("GE MEDICAL") * !Rows.equals("512")'

``*`` is AND, ``+`` is OR (``*`` binds tighter), ``!`` is NOT, parentheses
group, ``true``/``false`` are constants. A test is ``element.method(args)``:
the element is a keyword, a tag ``[gggg,eeee]``, or a sequence path
``Seq::Element`` (the element in the sequence's first item). Each test reads
the element's value as the ``elements`` table holds it (the file's text,
multiple values joined by ``\\``); a missing element reads as the empty text.

Methods, as CTP defines them on that text: ``equals``, ``contains``,
``startsWith``, ``endsWith`` (each also ``…IgnoreCase``), ``matches`` (the
whole value against a regular expression), ``isLessThan``/``isGreaterThan``
(numbers; a value that is not a number never compares) and ``isBlank``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Final

import polars as pl
from pydicom.datadict import tag_for_keyword

from gantry.errors import ConfigError

if TYPE_CHECKING:
    from gantry.ctp._pixel import Condition, Node

__all__ = ["compile_condition", "condition_paths", "element_path", "parse_condition"]

_TAG_TEXT: Final = 8


def parse_condition(text: str, *, key: str = "conditions") -> Node:
    """Parse a condition; a mistake raises :class:`ConfigError` naming ``key``.

    Examples
    --------
    >>> node = parse_condition('Modality.equals("US") + Rows.isGreaterThan("400")')
    >>> sorted(condition_paths(node))
    ['00080060', '00280010']
    >>> parse_condition('Modality.equal("US")')
    Traceback (most recent call last):
    ...
    gantry.errors.ConfigError: `conditions` must be a known method at line 1, column 10, got 'equal' (one of equals, equalsIgnoreCase, contains, containsIgnoreCase, startsWith, startsWithIgnoreCase, endsWith, endsWithIgnoreCase, matches, isLessThan, isGreaterThan, isBlank)
    """
    from gantry.ctp._pixel import parse_condition as parse
    from gantry.ctp._report import CTPScriptError

    try:
        node = parse(text)
    except CTPScriptError as exc:
        raise ConfigError(
            key,
            expected=f"{exc.expected} at line {exc.line}, column {exc.column}",
            got=exc.got,
            hint=exc.hint,
        ) from None
    for test in _tests(node):
        if element_path(test) is None:
            raise ConfigError(
                key,
                expected="tests of DICOM keywords or [gggg,eeee] tags",
                got=test.element,
                hint="not a keyword of the DICOM dictionary",
            )
        if test.method == "matches":
            try:
                pl.select(pl.lit("").str.contains(_whole(test.args[0])))
            except pl.exceptions.PolarsError:
                raise ConfigError(
                    key,
                    expected="a regular expression Polars (Rust regex) can run",
                    got=test.args[0],
                    hint="look-around and back-references are not supported",
                ) from None
        if test.method in ("isLessThan", "isGreaterThan"):
            try:
                float(test.args[0])
            except ValueError:
                raise ConfigError(
                    key, expected=f"a number to {test.method}", got=test.args[0]
                ) from None
    return node


def _tests(node: Node) -> list[Condition]:
    from gantry.ctp._pixel import And, Condition, Not, Or

    if isinstance(node, Condition):
        return [node]
    if isinstance(node, Not):
        return _tests(node.operand)
    if isinstance(node, And | Or):
        return [t for o in node.operands for t in _tests(o)]
    return []


def element_path(test: Condition) -> str | None:
    """The ``elements.path`` a test reads (``A::B`` → ``A[0].B``), or None if unknown.

    Examples
    --------
    >>> from gantry.ctp._pixel import Condition
    >>> element_path(Condition("ReferencedImageSequence::[0008,1155]", None, "isBlank", ()))
    '00081140[0].00081155'
    """
    parts = []
    for part in test.element.split("::"):
        part = part.strip()
        if part.startswith("["):
            text = part.strip("[]").replace(",", "").replace(" ", "").upper()
        else:
            tag = tag_for_keyword(part)
            if tag is None:
                return None
            text = f"{tag:08X}"
        if len(text) != _TAG_TEXT:
            return None
        parts.append(text)
    return "[0].".join(parts)


def condition_paths(node: Node) -> set[str]:
    """Every ``elements.path`` the condition reads."""
    return {p for t in _tests(node) if (p := element_path(t)) is not None}


def _whole(pattern: str) -> str:
    return f"^(?:{pattern})$"


def _number(value: pl.Expr) -> pl.Expr:
    return value.str.strip_chars().cast(pl.Float64, strict=False)


def _test(test: Condition, value: pl.Expr) -> pl.Expr:
    method = test.method
    arg = test.args[0] if test.args else ""
    if method.endswith("IgnoreCase"):
        value, arg, method = value.str.to_lowercase(), arg.lower(), method[: -len("IgnoreCase")]
    if method == "equals":
        return value == arg
    if method == "contains":
        return value.str.contains(arg, literal=True)
    if method == "startsWith":
        return value.str.starts_with(arg)
    if method == "endsWith":
        return value.str.ends_with(arg)
    if method == "matches":
        return value.str.contains(_whole(arg))
    if method == "isLessThan":
        return (_number(value) < float(arg)).fill_null(False)
    if method == "isGreaterThan":
        return (_number(value) > float(arg)).fill_null(False)
    if method == "isBlank":
        return value.str.strip_chars() == ""
    raise ConfigError("conditions", expected="a known method", got=method)


def compile_condition(node: Node, column: Callable[[str], pl.Expr]) -> pl.Expr:
    """A boolean expression of ``node``; ``column(path)`` gives an element's text.

    ``column`` must give the empty text (not null) for a missing element.

    Examples
    --------
    >>> node = parse_condition('Modality.equals("US") * !ImageType.containsIgnoreCase("derived")')
    >>> df = pl.DataFrame({"00080060": ["US", "US", "CT"],
    ...                    "00080008": ["ORIGINAL\\\\PRIMARY", "DERIVED\\\\SECONDARY", ""]})
    >>> df.select(compile_condition(node, pl.col).alias("hit"))["hit"].to_list()
    [True, False, False]
    """
    from gantry.ctp._pixel import And, Condition, Const, Not, Or

    if isinstance(node, Condition):
        path = element_path(node)
        if path is None:
            raise ConfigError("conditions", expected="a known element", got=node.element)
        return _test(node, column(path))
    if isinstance(node, Const):
        return pl.lit(node.value)
    if isinstance(node, Not):
        return ~compile_condition(node.operand, column)
    if isinstance(node, And):
        return pl.all_horizontal([compile_condition(o, column) for o in node.operands])
    if isinstance(node, Or):
        return pl.any_horizontal([compile_condition(o, column) for o in node.operands])
    raise TypeError(f"not a condition node: {type(node).__name__}")
