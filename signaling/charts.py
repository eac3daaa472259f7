"""Bar charts drawn on the server as SVG, for the admin's reports.

An SVG is served as its own file (`image/svg+xml`) and shown with `<img src>`: an image's SVG
runs no script and loads nothing, and the page's strict CSP needs no exception. The chart
carries `role="img"`, a `<title>` and a `<desc>` that says every value; the page also shows the
same numbers as a table. Every text is escaped; colours and fonts are attributes, not a
stylesheet.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["Bar", "bar_chart"]

WIDTH = 720
HEIGHT = 300
_LEFT, _RIGHT, _TOP, _BOTTOM = 56, 16, 40, 48
# the dashboard's accent blue; dark enough for 4.5:1 against white for the value labels
_BAR_COLOUR = "#1f5f99"
_TEXT_COLOUR = "#1d2733"
_GRID_COLOUR = "#d5dbe2"


@dataclass(frozen=True)
class Bar:
    label: str
    value: float


def bar_chart(title: str, description: str, bars: Sequence[Bar], unit: str = "") -> str:
    """An accessible SVG bar chart; `description` introduces the values the `<desc>` lists."""
    values = [bar.value for bar in bars]
    top = _nice_ceiling(max(values, default=0))
    plot_width = WIDTH - _LEFT - _RIGHT
    plot_height = HEIGHT - _TOP - _BOTTOM
    listed = "; ".join(f"{bar.label}: {_number(bar.value)}{unit}" for bar in bars)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}"'
        f' width="{WIDTH}" height="{HEIGHT}" role="img" aria-labelledby="t d"'
        ' font-family="sans-serif" font-size="12">',
        f'<title id="t">{_escape(title)}</title>',
        f'<desc id="d">{_escape(description)} {_escape(listed or "-")}</desc>',
        f'<rect width="{WIDTH}" height="{HEIGHT}" fill="#ffffff"/>',
        f'<text x="{_LEFT}" y="22" font-size="15" font-weight="bold"'
        f' fill="{_TEXT_COLOUR}">{_escape(title)}</text>',
    ]
    for step in range(5):
        value = top * step / 4
        y = _TOP + plot_height - plot_height * step / 4
        parts.append(
            f'<line x1="{_LEFT}" x2="{WIDTH - _RIGHT}" y1="{y:.1f}" y2="{y:.1f}"'
            f' stroke="{_GRID_COLOUR}"/>'
            f'<text x="{_LEFT - 6}" y="{y + 4:.1f}" text-anchor="end"'
            f' fill="{_TEXT_COLOUR}">{_number(value)}</text>'
        )
    slot = plot_width / max(len(bars), 1)
    bar_width = min(slot * 0.7, 64)
    for index, bar in enumerate(bars):
        height = 0 if top == 0 else plot_height * bar.value / top
        x = _LEFT + slot * index + (slot - bar_width) / 2
        y = _TOP + plot_height - height
        centre = x + bar_width / 2
        parts.append(
            f'<rect x="{x:.1f}" y="{y:.1f}" width="{bar_width:.1f}" height="{height:.1f}"'
            f' fill="{_BAR_COLOUR}"/>'
            f'<text x="{centre:.1f}" y="{y - 4:.1f}" text-anchor="middle"'
            f' fill="{_TEXT_COLOUR}">{_number(bar.value)}</text>'
            f'<text x="{centre:.1f}" y="{HEIGHT - _BOTTOM + 18}" text-anchor="middle"'
            f' fill="{_TEXT_COLOUR}">{_escape(bar.label)}</text>'
        )
    if not bars:
        parts.append(
            f'<text x="{WIDTH / 2}" y="{HEIGHT / 2}" text-anchor="middle"'
            f' fill="{_TEXT_COLOUR}">-</text>'
        )
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


def _nice_ceiling(value: float) -> float:
    """The axis' top: 1, 2, 2.5 or 5 times a power of ten, at least `value` (and 1)."""
    if value <= 1:
        return 1.0
    magnitude = 10 ** (len(str(int(value))) - 1)
    for factor in (1, 2, 2.5, 5, 10):
        if factor * magnitude >= value:
            return float(factor * magnitude)
    return float(10 * magnitude)


def _number(value: float) -> str:
    return f"{value:.0f}" if float(value).is_integer() else f"{value:.1f}"


def _escape(text: str) -> str:
    return html.escape(text, quote=True)
