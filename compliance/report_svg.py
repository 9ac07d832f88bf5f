"""Inline SVG bar charts for the auditor's report: no script, no font or stylesheet from anywhere.

An auditor may open the report on an air-gapped machine, and a page that fetches a charting library
would both fail there and tell a third party that a report was read. One horizontal bar chart covers
every figure of the report: a bar per row, optionally a marker (a budget), and the exact value
printed beside the bar, so the chart never needs to be read off an axis.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

ROW, LABEL_WIDTH, BAR_WIDTH, VALUE_WIDTH = 22, 300, 360, 150


@dataclass(frozen=True)
class Bar:
    label: str
    value: float
    text: str
    """What is printed beside the bar (the exact figure, with its unit)."""
    tone: str = "neutral"
    """CSS class suffix: neutral, good, warn, bad."""
    marker: float | None = None
    """A vertical mark on the bar's scale (a budget); None for none."""


def bar_chart(bars: Sequence[Bar], *, title: str, scale: float | None = None) -> str:
    """A labelled horizontal bar chart as an ``<svg>`` element (``role="img"`` with ``title``)."""
    top = max([scale or 0.0, *(b.value for b in bars), *(b.marker or 0.0 for b in bars)]) or 1.0
    height = ROW * len(bars) + 8
    width = LABEL_WIDTH + BAR_WIDTH + VALUE_WIDTH
    parts = [f'<svg class="chart" xmlns="http://www.w3.org/2000/svg" role="img" width="{width}" '
             f'height="{height}" viewBox="0 0 {width} {height}"><title>{escape(title)}</title>']
    for row, bar in enumerate(bars):
        y = 4 + row * ROW
        length = BAR_WIDTH * max(bar.value, 0.0) / top
        parts.append(f'<text class="label" x="{LABEL_WIDTH - 8}" y="{y + 15}" text-anchor="end">'
                     f'{escape(bar.label)}</text>')
        parts.append(f'<rect class="track" x="{LABEL_WIDTH}" y="{y + 3}" width="{BAR_WIDTH}" height="14"/>')
        parts.append(f'<rect class="bar {escape(bar.tone)}" x="{LABEL_WIDTH}" y="{y + 3}" '
                     f'width="{length:.1f}" height="14"/>')
        if bar.marker is not None:
            x = LABEL_WIDTH + BAR_WIDTH * bar.marker / top
            parts.append(f'<line class="marker" x1="{x:.1f}" x2="{x:.1f}" y1="{y}" y2="{y + 20}"/>')
        parts.append(f'<text class="value" x="{LABEL_WIDTH + BAR_WIDTH + 8}" y="{y + 15}">'
                     f'{escape(bar.text)}</text>')
    parts.append("</svg>")
    return "".join(parts)
