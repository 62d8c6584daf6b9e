"""The Reports page's SVG charts (worker/gateway/console/charts.py): well-formed, escaped,
scaled to round ticks, gaps where there is no data, readable values."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Callable

import pytest

from worker.gateway.console.charts import (
    LABEL_MAX,
    WIDTH,
    Series,
    Unit,
    bar_chart,
    fmt,
    line_chart,
    span,
    ticks,
)

NS = "{http://www.w3.org/2000/svg}"
NASTY = "<script>alert('x')</script> & \"co\""


def parsed(svg: str) -> ET.Element:
    root = ET.fromstring(svg)
    assert root.tag == f"{NS}svg"
    return root


def all_text(root: ET.Element) -> list[str]:
    return [e.text or "" for e in root.iter() if e.tag in (f"{NS}text", f"{NS}title")]


@pytest.mark.parametrize(
    ("value", "unit", "shown"),
    [
        (0.1, Unit.PERCENT, "10%"),
        (0.125, Unit.PERCENT, "12.5%"),
        (384, Unit.SECONDS, "6m 24s"),
        (20250, Unit.SECONDS, "5h 37m"),
        (0, Unit.SECONDS, "0s"),
        (7200, Unit.SECONDS, "2h"),
        (90000, Unit.SECONDS, "1d 1h"),
        (1234, Unit.COUNT, "1,234"),
        (None, Unit.COUNT, "no data"),
    ],
)
def test_values_read_as_people_say_them(value: float | None, unit: Unit, shown: str) -> None:
    """Shares in percent, seconds as a span, counts with thousands separators."""
    assert fmt(value, unit) == shown


def test_span_drops_empty_parts() -> None:
    """`1m`, not `1m 00s`; `2d`, not `2d 0h`."""
    assert (span(60), span(172800), span(59.6)) == ("1m", "2d", "1m")


@pytest.mark.parametrize(
    ("top", "unit", "expected"),
    [
        (0.2, Unit.PERCENT, [0, 0.05, 0.1, 0.15, 0.2]),
        (1.0, Unit.PERCENT, [0, 0.2, 0.4, 0.6, 0.8, 1.0]),
        (20250, Unit.SECONDS, [0, 7200, 14400, 21600]),
        (384, Unit.SECONDS, [0, 300, 600]),
        (3, Unit.COUNT, [0, 1, 2, 3]),
        (0, Unit.COUNT, [0, 1]),
    ],
)
def test_ticks_are_round_and_cover_the_top(top: float, unit: Unit, expected: list[float]) -> None:
    """From 0 to the first round step at or above the highest value; never a flat axis."""
    assert ticks(top, unit) == pytest.approx(expected)


def test_ticks_of_a_share_never_pass_100_percent() -> None:
    """A breach rate axis stops at 100%, whatever the rounding."""
    for top in (0.97, 0.999, 1.0):
        assert ticks(top, Unit.PERCENT)[-1] <= 1.0


def test_a_line_chart_is_well_formed_and_escapes_every_label() -> None:
    """Names and labels with markup come out as text: the SVG parses, no element is injected,
    and the original strings are in its text and tooltips."""
    svg = line_chart(NASTY, ["a<b", "c&d"], [Series(NASTY, [0.5, 0.25])], Unit.PERCENT)
    root = parsed(svg)
    assert not list(root.iter("script")) and not list(root.iter(f"{NS}script"))
    assert "<script>" not in svg
    texts = all_text(root)
    assert NASTY in texts and "a<b" in texts
    assert f"{NASTY} · c&d: 25%" in texts
    assert root.get("viewBox") == f"0 0 {WIDTH} 220"
    assert "style=" not in svg  # the console's CSP allows no inline style


def test_a_missing_value_breaks_the_line() -> None:
    """None splits a series into two polylines; a lone point is a dot without a line."""
    root = parsed(line_chart("t", list("abcde"), [Series("s", [1, 2, None, 3, 4])], Unit.COUNT))
    assert len(root.findall(f"{NS}polyline")) == 2
    assert len(root.findall(f"{NS}circle")) == 4
    lone = parsed(line_chart("t", ["a", "b"], [Series("s", [None, 5])], Unit.COUNT))
    assert not lone.findall(f"{NS}polyline") and len(lone.findall(f"{NS}circle")) == 1


def test_a_long_x_axis_shows_a_few_labels_ending_on_the_last() -> None:
    """Thirty days: at most five labels, the last period among them."""
    labels = [f"03-{d:02d}" for d in range(1, 31)]
    root = parsed(line_chart("t", labels, [Series("s", list(range(30)))], Unit.COUNT))
    shown = [e.text for e in root.iter(f"{NS}text") if e.text in labels]
    assert 2 <= len(shown) <= 5 and shown[-1] == "03-30"


@pytest.mark.parametrize("draw", [line_chart, bar_chart])
def test_no_data_says_so(draw: Callable[[str, list[str], list[Series], Unit], str]) -> None:
    """No labels, or only missing values, draw a small chart that says nothing was recorded."""
    for labels, series in (([], []), (["a"], [Series("s", [None])])):
        root = parsed(draw("empty", labels, series, Unit.PERCENT))
        assert "Nothing recorded in this period" in all_text(root)


def test_bars_are_proportional_cut_long_labels_and_write_their_values() -> None:
    """The largest value fills the scale's top; a category longer than LABEL_MAX is cut with
    its whole name in a tooltip; each bar's value is written after it."""
    long = "a-very-long-tier-name-indeed"
    root = parsed(
        bar_chart("t", ["L1", long], [Series("ended", [3, 1]), Series("reached", [4, None])],
                  Unit.COUNT)
    )  # fmt: skip
    widths = [float(r.get("width", "0")) for r in root.iter(f"{NS}rect")]
    assert len(widths) == 4 and widths[3] == 0.0  # no data: no bar
    assert widths[0] == pytest.approx(widths[1] * 3 / 4)  # L1: 3 and 4 on a 0..4 scale
    assert widths[2] == pytest.approx(widths[1] / 4)
    texts = all_text(root)
    assert long in texts and long[: LABEL_MAX - 1] + "…" in texts
    assert {"3", "1", "4", "no data"} <= set(texts)
    assert float(root.get("viewBox", "").split()[3]) > 60  # grows with the bars
