"""Inline SVG bar charts for the web UI: no script, no external file, every label escaped.

A chart is a list of :class:`Bar` (a label for the x axis, one value per series and a tooltip text);
:func:`bar_chart` draws them as stacked bars with a y axis (zero and the maximum), a few x labels
and a ``<title>`` on every bar segment, so hovering shows the exact number. The CSP forbids scripts,
not inline SVG, so this is all the interactivity a chart gets. Pure functions: nothing blocks; odd
input (no bars, zeros, negative or non-finite numbers) draws an empty or flat chart instead of raising.
"""

from __future__ import annotations

from dataclasses import dataclass

from .html import Markup, join, render

__all__ = ["Bar", "bar_chart", "legend", "PALETTE"]

#: Colours of the series, in order (a series past the end reuses them).
PALETTE = ("#6c5fc7", "#e1567c", "#f2b712", "#3fa7d6", "#2ba185", "#888888", "#c85a12", "#5c3d9e")

_LEFT, _BOTTOM, _TOP, _RIGHT = 48, 22, 8, 8
# Past this many bars only every n-th x label is drawn, so labels never overlap.
_MAX_X_LABELS = 12
_MAX_SLOT = 90


@dataclass(frozen=True, slots=True)
class Bar:
    """One bar: its x-axis ``label``, one value per series (stacked bottom up) and its tooltip ``title``."""

    label: str
    values: tuple[float, ...]
    title: str


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:.2f}"


def bar_chart(bars: list[Bar], *, series: tuple[str, ...] = ("count",), width: int = 1100, height: int = 150,
              label: str = "chart") -> Markup:
    """An ``<svg>`` of stacked bars, one per :class:`Bar`; ``series`` names the stacked values.

    Each segment's ``<title>`` reads ``"<bar title> — <series>: <value>"``; a one-series chart's is
    the bar's title alone (put the number in it). ``label`` is the chart's accessible name.
    """
    plot_w, plot_h = width - _LEFT - _RIGHT, height - _TOP - _BOTTOM
    top = max((sum(v for v in bar.values if v > 0 and v != float("inf")) for bar in bars), default=0) or 1
    # A few bars (releases) stay bar-shaped instead of filling the whole width.
    slot = min(plot_w / max(len(bars), 1), _MAX_SLOT)
    gap = min(2.0, slot / 4)
    parts = [render('<line x1="$x" y1="$y0" x2="$x" y2="$y1" stroke="#999"/>'
                    '<line x1="$x" y1="$y1" x2="$x2" y2="$y1" stroke="#999"/>',
                    x=_LEFT, y0=_TOP, y1=_TOP + plot_h, x2=_LEFT + plot_w),
             render('<text x="$x" y="$y" text-anchor="end" font-size="10">$v</text>',
                    x=_LEFT - 4, y=_TOP + 9, v=_number(top)),
             render('<text x="$x" y="$y" text-anchor="end" font-size="10">0</text>', x=_LEFT - 4, y=_TOP + plot_h)]
    every = max(1, -(-len(bars) // _MAX_X_LABELS))
    for index, bar in enumerate(bars):
        x = _LEFT + index * slot + gap / 2
        y = _TOP + plot_h
        for position, value in enumerate(bar.values):
            if not 0 < value < float("inf"):  # also skips NaN: nothing to draw
                continue
            h = value / top * plot_h
            y -= h
            name = series[position] if position < len(series) else f"series {position + 1}"
            tip = bar.title if len(series) == 1 else f"{bar.title} — {name}: {_number(value)}"
            parts.append(render('<rect x="$x" y="$y" width="$w" height="$h" fill="$fill"><title>$tip</title></rect>',
                                x=f"{x:.1f}", y=f"{y:.1f}", w=f"{max(slot - gap, 0.5):.1f}", h=f"{h:.1f}",
                                fill=PALETTE[position % len(PALETTE)], tip=tip))
        if index % every == 0:
            parts.append(render('<text x="$x" y="$y" font-size="10">$t</text>',
                                x=f"{x:.1f}", y=_TOP + plot_h + 14, t=bar.label))
    return render('<svg class="chart" role="img" aria-label="$label" width="$w" height="$h" viewBox="0 0 $w $h" '
                  'xmlns="http://www.w3.org/2000/svg">$parts</svg>', label=label, w=width, h=height, parts=join(parts))


def legend(series: tuple[str, ...]) -> Markup:
    """A small HTML legend: a coloured square and the name of each series, in chart order."""
    items = [render('<span class="legend-item"><svg width="10" height="10"><rect width="10" height="10" '
                    'fill="$fill"/></svg> $name</span>', fill=PALETTE[i % len(PALETTE)], name=name)
             for i, name in enumerate(series)]
    return render('<p class="legend">$items</p>', items=join(items, " "))
