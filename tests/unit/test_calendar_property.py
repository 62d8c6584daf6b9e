"""The fast business-time arithmetic agrees with a brute-force minute-by-minute oracle.

The oracle knows nothing of periods, weeks or offsets: it steps over UTC minutes, converts
each to the calendar's local time and asks whether that wall-clock minute is open on that
local date. Calendars, zones (including Lord Howe's 30-minute daylight saving), holidays,
starts (many on daylight-saving weekends) and durations are random.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import holidays
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from schemas.calendar import WEEKDAYS, CalendarSpec
from worker.domain.calendar import BusinessCalendar, business_calendar

MINUTE = timedelta(minutes=1)
YEAR_START = datetime(2026, 1, 1, tzinfo=UTC)
ORACLE_LIMIT = 10 * 7 * 24 * 60  # minutes the oracle may step before giving up
# Local dates of 2026's daylight-saving changes, per zone.
ZONES = {
    "Europe/Berlin": [date(2026, 3, 29), date(2026, 10, 25)],
    "America/New_York": [date(2026, 3, 8), date(2026, 11, 1)],
    "Asia/Kolkata": [],
    "Australia/Lord_Howe": [date(2026, 4, 5), date(2026, 10, 4)],
    "UTC": [],
}


@dataclass(frozen=True)
class Case:
    """A random calendar as both the spec under test and the oracle's plain data."""

    spec: CalendarSpec
    zone: ZoneInfo
    hours: tuple[tuple[tuple[int, int], ...], ...]  # per weekday, minutes since midnight
    closed: frozenset[date]


class Oracle:
    """Minute-by-minute truth for one calendar, from one start."""

    def __init__(self, case: Case, start: datetime) -> None:
        self.case = case
        self.start = start
        self.flags: list[bool] = []

    def open_at(self, minute: datetime) -> bool:
        """Whether the UTC minute starting at `minute` is business time."""
        local = minute.astimezone(self.case.zone)
        if local.date() in self.case.closed:
            return False
        wall = local.hour * 60 + local.minute
        return any(lo <= wall < hi for lo, hi in self.case.hours[local.weekday()])

    def flag(self, index: int) -> bool:
        """Whether minute `index` after the start is open (computed once, in order)."""
        while len(self.flags) <= index:
            assert len(self.flags) < ORACLE_LIMIT, "oracle ran past its limit"
            self.flags.append(self.open_at(self.start + len(self.flags) * MINUTE))
        return self.flags[index]

    def add(self, minutes: int) -> datetime:
        """The end of the `minutes`-th open minute, or the first open minute for zero."""
        index, seen = 0, 0
        while True:
            if self.flag(index):
                if minutes == 0:
                    return self.start + index * MINUTE
                seen += 1
                if seen == minutes:
                    return self.start + (index + 1) * MINUTE
            index += 1

    def elapsed(self, minutes: int) -> timedelta:
        """Open minutes among the first `minutes` after the start."""
        return sum((self.flag(i) for i in range(minutes)), 0) * MINUTE


@st.composite
def day_hours(draw: st.DrawFn) -> tuple[tuple[int, int], ...]:
    """A day's intervals on a quarter-hour grid (so 02:00, 02:30, 03:00 and 24:00 come up).

    One day in four is open around the clock, so nights of daylight-saving changes are open.
    """
    if draw(st.integers(0, 3)) == 0:
        return ((0, 1440),)
    points = sorted(draw(st.lists(st.integers(0, 96), max_size=6, unique=True)))
    return tuple((points[i] * 15, points[i + 1] * 15) for i in range(0, len(points) - 1, 2))


def clock(minutes: int) -> str:
    """`HH:MM` for minutes since midnight, up to 24:00."""
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


@st.composite
def starts(draw: st.DrawFn, transitions: list[date]) -> datetime:
    """A minute in 2026, half the time in the eight days before (or two after) a DST change."""
    if bool(transitions) and draw(st.booleans()):
        change = datetime.combine(draw(st.sampled_from(transitions)), datetime.min.time(), UTC)
        return change + draw(st.integers(-8 * 1440, 2 * 1440)) * MINUTE
    return YEAR_START + draw(st.integers(0, 365 * 1440 - 1)) * MINUTE


@st.composite
def cases(draw: st.DrawFn) -> tuple[Case, datetime]:
    """A random calendar and a start instant for it."""
    zone_name = draw(st.sampled_from(sorted(ZONES)))
    hours = tuple(draw(day_hours()) for _ in WEEKDAYS)
    assume(any(hours))
    start = draw(starts(ZONES[zone_name]))
    first = start.date()
    extra = draw(st.lists(st.integers(-2, 40), max_size=3, unique=True))
    dates = tuple(first + timedelta(days=n) for n in extra)
    country = draw(st.sampled_from([None, None, "DE", "US"]))
    spec = CalendarSpec.model_validate(
        {
            "timezone": zone_name,
            "hours": {
                day: [f"{clock(lo)}-{clock(hi)}" for lo, hi in intervals]
                for day, intervals in zip(WEEKDAYS, hours, strict=True)
                if intervals
            },
            "holidays": {"country": country, "dates": list(dates)},
        }
    )
    closed = set(dates)
    if country is not None:
        closed.update(holidays.country_holidays(country, years=range(2025, 2028)))
    return Case(spec, ZoneInfo(zone_name), hours, frozenset(closed)), start


def week_minutes(case: Case) -> int:
    """Nominal open minutes in a week."""
    return sum(hi - lo for day in case.hours for lo, hi in day)


def business_minutes(case: Case) -> st.SearchStrategy[int]:
    """Durations from zero to three weeks' open time, a third of them past one or two weeks
    (so whole weeks are skipped, some of them over a daylight-saving change)."""
    week = week_minutes(case)
    return st.builds(
        lambda whole, part: whole * week + part, st.integers(0, 2), st.integers(0, week)
    )


def in_zone(case: Case, instant: datetime, local: bool) -> datetime:
    """The instant as the caller passes it: in UTC or in the calendar's zone."""
    return instant.astimezone(case.zone) if local else instant


SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(cases(), st.data())
def test_add_matches_the_oracle(drawn: tuple[Case, datetime], data: st.DataObject) -> None:
    """add(start, d) is the end of the d-th open minute after start (the next opening for 0)."""
    case, start = drawn
    minutes = data.draw(business_minutes(case), label="minutes")
    local = data.draw(st.booleans(), label="start given in local time")
    calendar = business_calendar(case.spec)
    got = calendar.add(in_zone(case, start, local), minutes * MINUTE)
    assert got == Oracle(case, start).add(minutes)
    assert got.tzinfo is UTC


@SETTINGS
@given(cases(), st.data())
def test_elapsed_matches_the_oracle(drawn: tuple[Case, datetime], data: st.DataObject) -> None:
    """elapsed(start, end) counts the open minutes between them, across nights and weekends."""
    case, start = drawn
    span = data.draw(st.integers(-60, 3 * 1440), label="minutes to the end")
    calendar = business_calendar(case.spec)
    got = calendar.elapsed(in_zone(case, start, True), start + span * MINUTE)
    assert got == Oracle(case, start).elapsed(max(span, 0))


@SETTINGS
@given(cases(), st.data())
def test_elapsed_inverts_add_and_open_agrees(
    drawn: tuple[Case, datetime], data: st.DataObject
) -> None:
    """elapsed(start, add(start, d)) == d, and is_open/next_open agree with the oracle."""
    case, start = drawn
    calendar: BusinessCalendar = business_calendar(case.spec)
    oracle = Oracle(case, start)
    assert calendar.is_open(start) is oracle.open_at(start)
    assert calendar.next_open(start) == oracle.add(0)
    minutes = data.draw(business_minutes(case), label="d")
    seconds = data.draw(st.integers(0, 59), label="extra seconds")
    duration = minutes * MINUTE + timedelta(seconds=seconds)
    assert calendar.elapsed(start, calendar.add(start, duration)) == duration
