"""The reports' pure figures (worker/domain/reports.py): nearest-rank percentiles, grouping,
periods in a time zone across daylight-saving changes, and tables with no data."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from worker.domain.report_records import ClockRecord, CycleRecord, Dims
from worker.domain.reports import (
    check_by,
    keys_of,
    mean,
    percentile,
    period_of,
    periods_between,
    summarize,
)

PARIS = ZoneInfo("Europe/Paris")
SPRING = datetime(2024, 3, 31, tzinfo=PARIS)  # 23 hours long: 02:00 -> 03:00
AUTUMN = datetime(2024, 10, 27, tzinfo=PARIS)  # 25 hours long: 03:00 -> 02:00


def test_no_values_have_no_percentile_and_no_mean() -> None:
    """Nothing measured is None, not 0."""
    assert percentile([], 50) is None and mean([]) is None


def test_one_value_is_every_percentile() -> None:
    """With one value, p0, p50, p90 and p99 are that value."""
    assert {percentile([42.0], p) for p in (0, 50, 90, 99)} == {42.0}


def test_p99_of_few_values_is_the_largest() -> None:
    """Nearest rank: p99 of five values is rank ceil(4.95) = 5, the maximum; p50 rank 3."""
    values = [1200.0, 60.0, 300.0, 120.0, 240.0]  # unsorted on purpose
    assert percentile(values, 99) == 1200 and percentile(values, 50) == 240
    assert percentile(values, 90) == 1200 and percentile(values, 20) == 60


def test_percentiles_of_a_hundred_values() -> None:
    """On 1..100, the p-th percentile is p itself."""
    values = [float(v) for v in range(100, 0, -1)]
    assert [percentile(values, p) for p in (1, 50, 90, 99, 100)] == [1, 50, 90, 99, 100]


def test_days_follow_the_local_calendar_across_daylight_saving() -> None:
    """Paris's 23-hour and 25-hour days are one day each: their local midnights bound them."""
    spring_end, autumn_end = SPRING + timedelta(days=1), AUTUMN + timedelta(days=1)
    hours = [(e.astimezone(UTC) - s.astimezone(UTC)) / timedelta(hours=1)
             for s, e in ((SPRING, spring_end), (AUTUMN, autumn_end))]  # fmt: skip
    assert hours == [23, 25]
    assert periods_between(SPRING, spring_end, "day", PARIS) == ["2024-03-31"]
    assert periods_between(AUTUMN, autumn_end, "day", PARIS) == ["2024-10-27"]
    last_minute = AUTUMN.astimezone(UTC) + timedelta(hours=24, minutes=59)  # 23:59 CET
    assert period_of(last_minute, "day", PARIS) == "2024-10-27"
    assert period_of(last_minute + timedelta(minutes=1), "day", PARIS) == "2024-10-28"


def test_periods_between_lists_empty_periods_and_iso_weeks() -> None:
    """Every period the span touches, in order, even those with nothing in them; ISO weeks
    start on Monday and 2024-12-30 is in 2025-W01."""
    since = datetime(2024, 12, 20, tzinfo=UTC)
    until = datetime(2025, 1, 7, tzinfo=UTC)
    assert periods_between(since, until, "week", ZoneInfo("UTC")) == [
        "2024-W51", "2024-W52", "2025-W01", "2025-W02"
    ]  # fmt: skip
    assert periods_between(since, until, "month", ZoneInfo("UTC")) == ["2024-12", "2025-01"]
    days = periods_between(since, until, "day", ZoneInfo("UTC"))
    assert len(days) == 18 and days[-1] == "2025-01-06"  # until is excluded


def test_check_by_keeps_order_and_refuses_unknown_or_two_periods() -> None:
    """Groups come back in order, once each; an unknown one or two periods is a ValueError."""
    assert check_by(["tier", "day", "tier"]) == ("tier", "day")
    with pytest.raises(ValueError, match="cannot group by 'colour'"):
        check_by(["colour"])
    with pytest.raises(ValueError, match="one period at most"):
        check_by(["day", "week"])


def test_a_record_counts_once_per_label() -> None:
    """Grouped by label, a record with two labels has two keys; with none, one key ""."""
    at = datetime(2024, 3, 4, tzinfo=UTC)
    two = Dims(severity="P1", labels=("db", "eu"))
    assert keys_of(two, ("severity", "label"), at, ZoneInfo("UTC")) == [("P1", "db"), ("P1", "eu")]
    assert keys_of(Dims(), ("label",), at, ZoneInfo("UTC")) == [("",)]


def test_no_data_gives_empty_tables() -> None:
    """A period with nothing recorded has every table empty, whatever the grouping."""
    since = datetime(2024, 3, 4, tzinfo=UTC)
    report = summarize([], [], [], since, since + timedelta(days=1), ("severity", "week"))
    assert all(rows == [] for rows in report.sections().values())


def test_grouping_by_day_puts_a_clock_on_its_local_day() -> None:
    """Two clocks an hour apart across Paris's midnight (on the 23-hour day) fall on two local
    days, though they share a UTC date; the breach rate and time to meet are per day."""
    before = SPRING - timedelta(minutes=30)  # 2024-03-30 23:30 CET = 22:30 UTC
    after = SPRING + timedelta(minutes=30)  # 2024-03-31 00:30 CET = 23:30 UTC (same UTC day)
    assert before.astimezone(UTC).date() == after.astimezone(UTC).date()
    clocks = [
        ClockRecord("j:1", "acknowledge", before, ("j:1", ""), Dims("P1"),
                    met_at=before + timedelta(minutes=5), spent_s=300.0),
        ClockRecord("j:2", "acknowledge", after, ("j:2", ""), Dims("P1"),
                    met_at=after + timedelta(minutes=20), spent_s=1200.0, breached=True),
    ]  # fmt: skip
    cycles = [CycleRecord("j:1", before, Dims("P1")), CycleRecord("j:2", after, Dims("P1"))]
    since, until = SPRING - timedelta(days=1), SPRING + timedelta(days=1)
    paris = summarize(clocks, cycles, [], since, until, ("day",), "Europe/Paris")
    by_day = {r["day"]: r for r in paris.targets}
    assert set(by_day) == {"2024-03-30", "2024-03-31"}
    assert (by_day["2024-03-30"]["breach_rate"], by_day["2024-03-31"]["breach_rate"]) == (0, 1)
    assert by_day["2024-03-31"]["time_to_meet_s_p99"] == 1200
    utc = summarize(clocks, cycles, [], since, until, ("day",), "UTC")
    [one] = utc.targets
    assert (one["day"], one["clocks"], one["breach_rate"]) == ("2024-03-30", 2, 0.5)
