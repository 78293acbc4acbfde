"""Small dependency-free charts: inline SVG for reports and notebooks, text for terminals."""

from __future__ import annotations

import math
from collections.abc import Sequence
from html import escape

__all__ = ["Chart", "bar_chart", "histogram", "pass_fail_bar", "text_bars"]

_BAR = "#3b6ea5"
_PASS = "#2e7d32"
_FAIL = "#c62828"
_FONT = 'font-family="system-ui, sans-serif" font-size="12"'


class Chart(str):
    """An SVG document as a string; notebooks display it as an image.

    Examples
    --------
    >>> c = bar_chart(["CT", "MR"], [3, 1])
    >>> c.startswith("<svg") and c._repr_svg_() == str(c)
    True
    """

    __slots__ = ()

    def _repr_svg_(self) -> str:
        return str(self)


def _fmt(value: float) -> str:
    if float(value).is_integer():
        return f"{int(value):,}"
    return f"{value:,.3g}"


def bar_chart(
    labels: Sequence[object],
    values: Sequence[float],
    *,
    title: str = "",
    width: int = 520,
    color: str = _BAR,
    colors: Sequence[str] | None = None,
) -> Chart:
    """A horizontal bar chart, one bar per label, the value printed after each bar.

    Examples
    --------
    >>> svg = bar_chart(["CT", "MR <3T>"], [10, 4], title="Instances")
    >>> svg.count("<rect"), "MR &lt;3T&gt;" in svg, 'role="img"' in svg
    (2, True, True)
    """
    names = [str(x) for x in labels]
    longest = max((len(x) for x in names), default=1)
    # short labels sit left of their bar; long ones get their own line(s) above it
    beside = longest <= 24
    label_w = 12 + 7 * longest if beside else 0
    per_line = max(20, (width - 8) // 7)
    wrapped = [[n] if beside else _wrap(n, per_line) for n in names]
    bar_h = 16
    top = 28 if title else 8
    parts_y: list[int] = []
    y = top
    for lines in wrapped:
        parts_y.append(y)
        y += (0 if beside else 15 * len(lines)) + bar_h + 8
    height = y + 4
    vmax = max((float(v) for v in values), default=0.0) or 1.0
    span = width - label_w - 70
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" role="img" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" {_FONT}>',
        f"<title>{escape(title or 'bar chart')}</title>",
    ]
    if title:
        parts.append(f'<text x="4" y="16" font-weight="bold">{escape(title)}</text>')
    for i, (label, value) in enumerate(zip(names, values, strict=True)):
        y0 = parts_y[i]
        w = max(0.0, float(value)) / vmax * span
        fill = colors[i] if colors is not None else color
        if beside:
            parts.append(
                f'<text x="{label_w - 6}" y="{y0 + 13}" text-anchor="end">{escape(label)}</text>'
            )
            bar_y = y0
        else:
            for k, line in enumerate(wrapped[i]):
                parts.append(f'<text x="4" y="{y0 + 12 + 15 * k}">{escape(line)}</text>')
            bar_y = y0 + 15 * len(wrapped[i])
        parts.append(
            f'<rect x="{label_w + 4}" y="{bar_y + 1}" width="{w:.1f}" height="{bar_h}" '
            f'fill="{fill}"><title>{escape(label)}: {_fmt(float(value))}</title></rect>'
            f'<text x="{label_w + w + 8:.1f}" y="{bar_y + 13}">{_fmt(float(value))}</text>'
        )
    parts.append("</svg>")
    return Chart("".join(parts))


def _wrap(text: str, width: int) -> list[str]:
    """``text`` in lines of at most ``width`` characters, broken at spaces where possible.

    Examples
    --------
    >>> _wrap("PixelData: burned-in text risk (BurnedInAnnotation is YES)", 24)
    ['PixelData: burned-in', 'text risk', '(BurnedInAnnotation is', 'YES)']
    """
    import textwrap

    return textwrap.wrap(text, width, break_long_words=True, break_on_hyphens=False) or [""]


def pass_fail_bar(passed: int, failed: int, *, width: int = 520, title: str = "") -> Chart:
    """One 100 % bar split into passed (green) and failed (red) parts.

    Examples
    --------
    >>> svg = pass_fail_bar(9, 1)
    >>> "9 passed" in svg and "1 failed" in svg
    True
    """
    total = passed + failed
    top = 24 if title else 4
    height = top + 44
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" role="img" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" {_FONT}>',
        f"<title>{escape(title or 'passed and failed')}</title>",
    ]
    if title:
        parts.append(f'<text x="4" y="16" font-weight="bold">{escape(title)}</text>')
    span = width - 8
    w_pass = span * passed / total if total else 0.0
    parts.append(f'<rect x="4" y="{top}" width="{span}" height="20" fill="#e0e0e0"/>')
    parts.append(f'<rect x="4" y="{top}" width="{w_pass:.1f}" height="20" fill="{_PASS}"/>')
    parts.append(
        f'<rect x="{4 + w_pass:.1f}" y="{top}" width="{span - w_pass if total else 0:.1f}" '
        f'height="20" fill="{_FAIL}"/>'
    )
    parts.append(
        f'<text x="4" y="{top + 36}">{passed:,} passed</text>'
        f'<text x="{width - 4}" y="{top + 36}" text-anchor="end">{failed:,} failed</text>'
    )
    parts.append("</svg>")
    return Chart("".join(parts))


def histogram(
    values: Sequence[float | None],
    *,
    bins: int = 20,
    title: str = "",
    width: int = 520,
    height: int = 180,
) -> Chart:
    """A vertical histogram of numeric ``values`` (None and NaN are skipped).

    Examples
    --------
    >>> svg = histogram([1.0, 1.0, 2.5, 5.0], bins=4, title="Slice thickness")
    >>> svg.count("<rect") - 1  # one background frame
    4
    """
    data = [float(v) for v in values if v is not None and not math.isnan(float(v))]
    lo, hi = (min(data), max(data)) if data else (0.0, 1.0)
    if hi == lo:
        hi = lo + 1.0
    bins = max(1, bins)
    counts = [0] * bins
    for v in data:
        counts[min(bins - 1, int((v - lo) / (hi - lo) * bins))] += 1
    top, bottom, left = (24 if title else 6), 20, 36
    plot_h = height - top - bottom
    plot_w = width - left - 6
    cmax = max(counts) or 1
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" role="img" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" {_FONT}>',
        f"<title>{escape(title or 'histogram')}</title>",
        f'<rect x="{left}" y="{top}" width="{plot_w}" height="{plot_h}" fill="none" '
        'stroke="#999"/>',
    ]
    if title:
        parts.append(f'<text x="4" y="16" font-weight="bold">{escape(title)}</text>')
    bw = plot_w / bins
    for i, c in enumerate(counts):
        h = plot_h * c / cmax
        a = lo + (hi - lo) * i / bins
        b = lo + (hi - lo) * (i + 1) / bins
        parts.append(
            f'<rect x="{left + i * bw + 1:.1f}" y="{top + plot_h - h:.1f}" '
            f'width="{max(bw - 2, 1):.1f}" height="{h:.1f}" fill="{_BAR}">'
            f"<title>[{_fmt(a)}, {_fmt(b)}): {c}</title></rect>"
        )
    parts.append(
        f'<text x="{left}" y="{height - 5}">{_fmt(lo)}</text>'
        f'<text x="{width - 6}" y="{height - 5}" text-anchor="end">{_fmt(hi)}</text>'
        f'<text x="{left - 4}" y="{top + 10}" text-anchor="end">{cmax}</text>'
    )
    parts.append("</svg>")
    return Chart("".join(parts))


def text_bars(labels: Sequence[object], values: Sequence[float], *, width: int = 40) -> str:
    """A bar chart in plain text, for terminals and logs.

    Examples
    --------
    >>> print(text_bars(["CT", "MR"], [4, 2], width=8))
    CT  ████████ 4
    MR  ████ 2
    """
    names = [str(x) for x in labels]
    pad = max((len(x) for x in names), default=0)
    vmax = max((float(v) for v in values), default=0.0) or 1.0
    lines = []
    for label, value in zip(names, values, strict=True):
        n = round(float(value) / vmax * width)
        lines.append(f"{label:<{pad}}  {'█' * n} {_fmt(float(value))}")
    return "\n".join(lines)
