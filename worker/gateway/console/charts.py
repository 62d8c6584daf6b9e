"""Server-side SVG charts for the Reports page: pure functions from figures to SVG markup.

No script and no library: each chart is one `<svg>` element, well-formed XML (with its
namespace), every label escaped, sized by its `viewBox` so that it shrinks to a phone's width.
Colours come from the console's stylesheet through classes (`s0`..`s7` per series), so the
charts follow the light and dark themes, and the page's Content-Security-Policy (no inline
style) holds. Each point and bar carries a `<title>`: the browser shows it as a tooltip.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from html import escape

WIDTH = 400  # viewBox units: about a phone's width in CSS pixels, so text stays readable
HEIGHT = 220
PAD_LEFT, PAD_RIGHT, PAD_TOP, PAD_BOTTOM = 52, 12, 12, 34
LABEL_W = 96  # the category column of a bar chart
BAR_H, BAR_GAP, BAND_GAP = 14, 2, 10
COLOURS = 8  # series classes s0..s7, then again
MAX_TICKS = 5  # x-axis labels shown at most
LABEL_MAX = 14  # characters of a category label before it is cut (the whole one in <title>)
NS = "http://www.w3.org/2000/svg"
DURATION_STEPS = (1, 5, 10, 15, 30, 60, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200,
                  86400, 172800, 604800)  # fmt: skip


class Unit(StrEnum):
    """How a chart's values read: a share (0..1), seconds, or a count."""

    PERCENT = "percent"
    SECONDS = "seconds"
    COUNT = "count"


@dataclass(frozen=True, slots=True)
class Series:
    """One line (or one bar per category): its name and a value per label; None = no data."""

    name: str
    values: Sequence[float | None]


def fmt(value: float | None, unit: Unit) -> str:
    """A value as a person reads it: `12.5%`, `6m 24s`, `3h 05m`, `2d 4h`, `17`."""
    if value is None:
        return "no data"
    if unit is Unit.PERCENT:
        pct = value * 100
        return f"{pct:.0f}%" if pct == round(pct) else f"{pct:.1f}%"
    if unit is Unit.COUNT:
        return f"{value:,.0f}" if value == round(value) else f"{value:,.1f}"
    return span(value)


def span(seconds: float) -> str:
    """Seconds as `45s`, `6m 24s`, `3h 05m`, `2d 4h`."""
    total = round(abs(seconds))
    days, rest = divmod(total, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d {hours}h" if hours else f"{days}d"
    if hours:
        return f"{hours}h {minutes:02d}m" if minutes else f"{hours}h"
    if minutes:
        return f"{minutes}m {secs:02d}s" if secs else f"{minutes}m"
    return f"{secs}s"


def ticks(top: float, unit: Unit, most: int = 5) -> list[float]:
    """Round y-axis ticks from 0 covering `top` (at least one step above 0), at most `most`+1:
    shares in 1-2-5 steps up to 100%, seconds in clock steps (5m, 1h, ...), counts 1-2-5."""
    top = max(top, 0.0)
    if unit is Unit.SECONDS:
        step = next((s for s in DURATION_STEPS if s * most >= top), 0.0)
        if not step:
            step = math.ceil(top / most / 604800) * 604800.0
    else:
        scale = 100 if unit is Unit.PERCENT else 1
        raw = max(top * scale / most, 1.0)
        power = 10 ** math.floor(math.log10(raw))
        step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw) / scale
    count = max(1, math.ceil(top / step - 1e-9))
    if unit is Unit.PERCENT:
        count = min(count, round(1 / step))
    return [round(step * i, 10) for i in range(count + 1)]


def _text(x: float, y: float, label: str, anchor: str = "middle", cls: str = "") -> str:
    extra = f' class="{cls}"' if cls else ""
    return f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}"{extra}>{escape(label)}</text>'


def _svg(title: str, height: float, body: list[str]) -> str:
    name = escape(title)
    return (
        f'<svg xmlns="{NS}" class="chart" viewBox="0 0 {WIDTH} {height:.0f}" role="img" '
        f'aria-label="{name}" preserveAspectRatio="xMidYMid meet">'
        f"<title>{name}</title>{''.join(body)}</svg>"
    )


def _empty(title: str) -> str:
    return _svg(title, 60, [_text(WIDTH / 2, 34, "Nothing recorded in this period", cls="none")])


def _shown(labels: Sequence[str]) -> set[int]:
    """The indexes of the x labels drawn: every one, or an even spread ending on the last."""
    n = len(labels)
    if n <= MAX_TICKS:
        return set(range(n))
    every = math.ceil((n - 1) / (MAX_TICKS - 1))
    return {i for i in range(n) if (n - 1 - i) % every == 0}


def line_chart(title: str, labels: Sequence[str], series: Sequence[Series], unit: Unit) -> str:
    """Values over time: one line per series across `labels` (periods); a missing value
    breaks the line; each point has a tooltip with its series, period and value."""
    values = [v for s in series for v in s.values if v is not None]
    if not labels or not values:
        return _empty(title)
    scale = ticks(max(values), unit)
    top = scale[-1] or 1.0
    plot_w = WIDTH - PAD_LEFT - PAD_RIGHT
    plot_h = HEIGHT - PAD_TOP - PAD_BOTTOM
    n = len(labels)

    def x(i: int) -> float:
        return PAD_LEFT + (plot_w * (i + 0.5) / n)

    def y(v: float) -> float:
        return PAD_TOP + plot_h * (1 - v / top)

    body = []
    for tick in scale:
        body.append(
            f'<line class="grid" x1="{PAD_LEFT}" x2="{WIDTH - PAD_RIGHT}" '
            f'y1="{y(tick):.1f}" y2="{y(tick):.1f}"/>'
        )
        body.append(_text(PAD_LEFT - 5, y(tick) + 4, fmt(tick, unit), "end", "axis"))
    for i in sorted(_shown(labels)):
        body.append(_text(x(i), HEIGHT - PAD_BOTTOM + 16, labels[i], cls="axis"))
    for k, line in enumerate(series):
        cls = f"s{k % COLOURS}"
        runs: list[list[tuple[float, float]]] = [[]]
        dots = []
        for i, v in enumerate(line.values[:n]):
            if v is None:
                runs.append([])
                continue
            runs[-1].append((x(i), y(v)))
            tip = escape(f"{line.name} · {labels[i]}: {fmt(v, unit)}")
            dots.append(
                f'<circle class="dot {cls}" cx="{x(i):.1f}" cy="{y(v):.1f}" r="3">'
                f"<title>{tip}</title></circle>"
            )
        for run in runs:
            if len(run) > 1:
                points = " ".join(f"{px:.1f},{py:.1f}" for px, py in run)
                body.append(f'<polyline class="line {cls}" points="{points}"/>')
        body.extend(dots)
    return _svg(title, HEIGHT, body)


def bar_chart(title: str, categories: Sequence[str], series: Sequence[Series], unit: Unit) -> str:
    """Horizontal bars: a band per category (its label at the left, cut when long), a bar per
    series, each bar's value written after it; the height grows with the bars."""
    values = [v for s in series for v in s.values if v is not None]
    if not categories or not values:
        return _empty(title)
    top = ticks(max(values), unit)[-1] or 1.0
    bar_w = WIDTH - LABEL_W - 56  # room for the value after the longest bar
    band = len(series) * (BAR_H + BAR_GAP) - BAR_GAP
    body = []
    y0 = PAD_TOP
    for c, category in enumerate(categories):
        shown = category if len(category) <= LABEL_MAX else category[: LABEL_MAX - 1] + "…"
        body.append(
            f'<text x="{LABEL_W - 6}" y="{y0 + band / 2 + 4:.1f}" text-anchor="end" '
            f'class="axis">{escape(shown or "(none)")}<title>{escape(category)}</title></text>'
        )
        for k, bars in enumerate(series):
            value = bars.values[c] if c < len(bars.values) else None
            top_y = y0 + k * (BAR_H + BAR_GAP)
            width = 0.0 if value is None else max(bar_w * value / top, 1.0 if value else 0.0)
            tip = escape(f"{bars.name} · {category}: {fmt(value, unit)}")
            body.append(
                f'<rect class="bar s{k % COLOURS}" x="{LABEL_W}" y="{top_y:.1f}" '
                f'width="{width:.1f}" height="{BAR_H}"><title>{tip}</title></rect>'
            )
            body.append(
                _text(LABEL_W + width + 4, top_y + BAR_H - 3, fmt(value, unit), "start", "value")
            )
        y0 += band + BAND_GAP
    body.append(
        f'<line class="grid" x1="{LABEL_W}" x2="{LABEL_W}" y1="{PAD_TOP - 4}" '
        f'y2="{y0 - BAND_GAP + 4:.1f}"/>'
    )
    return _svg(title, y0 - BAND_GAP + PAD_TOP, body)
