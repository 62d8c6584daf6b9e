"""Business calendars, hand-worked: weekends, holidays, lunch breaks, daylight-saving weekends."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from pydantic import ValidationError

from schemas.calendar import CalendarSpec
from worker.domain.calendar import (
    ALWAYS_OPEN,
    AlwaysOpen,
    BusinessCalendar,
    Calendar,
    CalendarError,
    business_calendar,
)

BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri")
ALL_DAYS = (*WEEKDAYS, "sat", "sun")
H = timedelta(hours=1)


def calendar(
    zone: str = "Europe/Berlin",
    hours: dict[str, list[str]] | None = None,
    **holidays: Any,
) -> BusinessCalendar:
    """A business calendar; by default 09:00-17:00 Monday to Friday in Berlin, no holidays."""
    spec = CalendarSpec.model_validate(
        {
            "timezone": zone,
            "hours": hours or {day: ["09:00-17:00"] for day in WEEKDAYS},
            "holidays": holidays,
        }
    )
    return business_calendar(spec)


def around_the_clock(zone: str) -> BusinessCalendar:
    """A business calendar open 00:00-24:00 every day, so only daylight saving changes time."""
    return calendar(zone, {day: ["00:00-24:00"] for day in ALL_DAYS})


def local(
    zone: ZoneInfo, year: int, month: int, day: int, hour: int = 0, minute: int = 0
) -> datetime:
    """An aware local time."""
    return datetime(year, month, day, hour, minute, tzinfo=zone)


# Weekends, holidays, openings.


def test_deadline_crosses_the_weekend() -> None:
    """Friday 16:30 + 2h business time is Monday 10:30 local (30 min Friday, 90 min Monday)."""
    due = calendar().add(local(BERLIN, 2026, 3, 20, 16, 30), 2 * H)
    assert due == local(BERLIN, 2026, 3, 23, 10, 30)
    assert due.tzinfo is UTC


def test_easter_monday_pushes_the_deadline_to_tuesday() -> None:
    """With DE holidays, Thursday 16:00 + 2h skips Good Friday, the weekend and Easter Monday."""
    berlin = calendar(country="DE", subdivision="BE")
    due = berlin.add(local(BERLIN, 2026, 4, 2, 16, 0), 2 * H)
    assert due == local(BERLIN, 2026, 4, 7, 10, 0)


def test_own_holiday_date_on_a_monday_pushes_to_tuesday() -> None:
    """An extra closed date on a Monday moves a Friday 16:00 + 2h deadline to Tuesday 10:00."""
    office = calendar(dates=["2026-06-08"])
    assert office.add(local(BERLIN, 2026, 6, 5, 16, 0), 2 * H) == local(BERLIN, 2026, 6, 9, 10)


def test_event_on_saturday_night_starts_its_clock_at_monday_opening() -> None:
    """An event at Saturday 03:00 starts its clock Monday 09:00: +1h is 10:00, +0 is 09:00."""
    office = calendar()
    saturday = local(BERLIN, 2026, 5, 16, 3, 0)
    monday = local(BERLIN, 2026, 5, 18, 9, 0)
    assert office.next_open(saturday) == monday
    assert office.add(saturday, timedelta()) == monday
    assert office.add(saturday, H) == monday + H
    assert not office.is_open(saturday)


def test_several_intervals_per_day_skip_the_lunch_break() -> None:
    """With 09:00-12:00 and 13:00-17:30, 11:30 + 1h is 13:30 and 11:00..14:00 holds 2h."""
    office = calendar(hours={"mon": ["09:00-12:00", "13:00-17:30"]})

    def at(hour: int, minute: int = 0) -> datetime:
        return local(BERLIN, 2026, 5, 18, hour, minute)

    assert office.add(at(11, 30), H) == at(13, 30)
    assert office.elapsed(at(11), at(14)) == 2 * H
    assert office.add(at(9), 7.5 * H) == at(17, 30)
    assert not office.is_open(at(12, 30))


def test_deadline_that_uses_up_a_day_falls_on_its_closing_time() -> None:
    """Monday 09:00 + 8h is Monday 17:00, not Tuesday 09:00; 17:00 itself is closed."""
    office = calendar()
    assert office.add(local(BERLIN, 2026, 5, 18, 9), 8 * H) == local(BERLIN, 2026, 5, 18, 17)
    assert office.is_open(local(BERLIN, 2026, 5, 18, 9))
    assert not office.is_open(local(BERLIN, 2026, 5, 18, 17))


def test_pause_spanning_a_night_counts_only_opening_hours() -> None:
    """elapsed() from 16:00 to 10:00 the next morning is 2h in a 09:00-17:00 calendar."""
    office = calendar()
    assert office.elapsed(local(BERLIN, 2026, 5, 19, 16), local(BERLIN, 2026, 5, 20, 10)) == 2 * H


def test_elapsed_is_zero_when_end_is_not_after_start() -> None:
    """elapsed() of an empty or reversed span is zero."""
    office = calendar()
    at = local(BERLIN, 2026, 5, 19, 10)
    assert office.elapsed(at, at) == timedelta()
    assert office.elapsed(at, at - H) == timedelta()


def test_six_weeks_of_business_days_skip_weeks_but_not_easter() -> None:
    """30 business days from Monday 2 March end Tuesday 14 April (Good Friday, Easter Monday)."""
    berlin = calendar(country="DE", subdivision="BE")
    start = local(BERLIN, 2026, 3, 2, 9)
    due = berlin.add(start, 30 * 8 * H)
    assert due == local(BERLIN, 2026, 4, 14, 17)
    assert berlin.elapsed(start, due) == 30 * 8 * H


@pytest.mark.parametrize(
    ("start", "duration"),
    [
        (local(BERLIN, 2026, 3, 27, 16, 30), 2 * H),
        (local(BERLIN, 2026, 4, 1, 10, 17), 3 * 8 * H + timedelta(minutes=7)),
        (local(BERLIN, 2026, 12, 23, 12, 0), 5 * 8 * H),
        (local(BERLIN, 2026, 10, 23, 9, 0), 40 * 8 * H + timedelta(seconds=1)),
    ],
)
def test_elapsed_inverts_add(start: datetime, duration: timedelta) -> None:
    """elapsed(start, add(start, d)) == d for an open start, across holidays and DST."""
    berlin = calendar(country="DE", subdivision="BE", dates=["2026-12-24", "2026-12-31"])
    assert berlin.is_open(start)
    assert berlin.elapsed(start, berlin.add(start, duration)) == duration


# Daylight saving.

DST_DAYS = [
    pytest.param("Europe/Berlin", date(2026, 3, 28), 23 * H, id="berlin-spring"),
    pytest.param("Europe/Berlin", date(2026, 10, 24), 25 * H, id="berlin-autumn"),
    pytest.param("America/New_York", date(2026, 3, 7), 23 * H, id="new-york-spring"),
    pytest.param("America/New_York", date(2026, 10, 31), 25 * H, id="new-york-autumn"),
]


@pytest.mark.parametrize(("zone", "saturday", "hours"), DST_DAYS)
def test_open_all_night_saturday_noon_to_sunday_noon_is_23h_or_25h(
    zone: str, saturday: date, hours: timedelta
) -> None:
    """A 24x7-hours business calendar loses the spring night's hour and gains the autumn one."""
    tz = ZoneInfo(zone)
    noon = datetime.combine(saturday, datetime.min.time().replace(hour=12), tz)
    sunday_noon = datetime.combine(saturday + timedelta(days=1), noon.timetz())
    clock = around_the_clock(zone)
    assert clock.elapsed(noon, sunday_noon) == hours
    assert clock.add(noon, hours) == sunday_noon


OFFICE_DST = [
    pytest.param(BERLIN, date(2026, 3, 27), "2026-03-30T08:00:00+00:00", id="berlin-spring"),
    pytest.param(BERLIN, date(2026, 10, 23), "2026-10-26T09:00:00+00:00", id="berlin-autumn"),
    pytest.param(NEW_YORK, date(2026, 3, 6), "2026-03-09T14:00:00+00:00", id="new-york-spring"),
    pytest.param(NEW_YORK, date(2026, 10, 30), "2026-11-02T15:00:00+00:00", id="new-york-autumn"),
]


@pytest.mark.parametrize(("tz", "friday", "expected_utc"), OFFICE_DST)
def test_office_deadline_over_a_dst_weekend_is_monday_10_local(
    tz: ZoneInfo, friday: date, expected_utc: str
) -> None:
    """Friday 16:00 + 2h lands Monday 10:00 local, at the UTC offset in force on Monday."""
    office = calendar(str(tz))
    start = datetime(friday.year, friday.month, friday.day, 16, tzinfo=tz)
    due = office.add(start, 2 * H)
    assert due == datetime.fromisoformat(expected_utc)
    assert due.astimezone(tz).hour == 10
    assert office.elapsed(start, due) == 2 * H


def test_period_spanning_the_dst_jump_has_its_real_length() -> None:
    """A Sunday 01:00-04:00 period holds 2h on the spring night, 4h on the autumn night."""
    nights = calendar(hours={"sun": ["01:00-04:00"]})
    spring, autumn = date(2026, 3, 29), date(2026, 10, 25)

    def whole(day: date) -> timedelta:
        begin = datetime(day.year, day.month, day.day, tzinfo=BERLIN)
        return nights.elapsed(begin, begin + 2 * 24 * H)

    assert whole(spring) == 2 * H
    assert whole(autumn) == 4 * H
    assert whole(date(2026, 5, 3)) == 3 * H
    spring_open = datetime(2026, 3, 29, 1, tzinfo=BERLIN)
    assert nights.add(spring_open, 90 * timedelta(minutes=1)) == datetime(
        2026, 3, 29, 3, 30, tzinfo=BERLIN
    )


def test_weeks_skipped_over_a_dst_change_keep_real_time() -> None:
    """Two 24x7 weeks from Monday 23 March are 14 real days, though Berlin loses an hour."""
    clock = around_the_clock("Europe/Berlin")
    start = datetime(2026, 3, 23, tzinfo=UTC)
    assert clock.add(start, 14 * 24 * H) == start + 14 * 24 * H
    assert clock.elapsed(start, start + 21 * 24 * H) == 21 * 24 * H


# AlwaysOpen, input checks, limits.


def test_always_open_is_plain_arithmetic_in_utc() -> None:
    """AlwaysOpen adds real (UTC) time, not wall-clock time, and answers in UTC."""
    start = local(BERLIN, 2026, 3, 28, 23, 30)
    due = ALWAYS_OPEN.add(start, 3 * H)
    assert due == start.astimezone(UTC) + 3 * H and due.tzinfo is UTC
    assert due == local(BERLIN, 2026, 3, 29, 3, 30)  # the spring-forward night: 3h real
    assert ALWAYS_OPEN.elapsed(start, due) == 3 * H
    assert ALWAYS_OPEN.elapsed(due, start) == timedelta()
    assert ALWAYS_OPEN.next_open(start) == start and ALWAYS_OPEN.is_open(start)


@pytest.mark.parametrize("clock", [AlwaysOpen(), calendar()], ids=["always-open", "business"])
def test_naive_datetimes_are_rejected(clock: Calendar) -> None:
    """Every operation refuses a naive datetime with ValueError."""
    naive = datetime(2026, 5, 18, 10)
    aware = naive.replace(tzinfo=UTC)
    with pytest.raises(ValueError, match="timezone-aware"):
        clock.add(naive, H)
    with pytest.raises(ValueError, match="timezone-aware"):
        clock.elapsed(aware, naive)
    with pytest.raises(ValueError, match="timezone-aware"):
        clock.next_open(naive)
    with pytest.raises(ValueError, match="timezone-aware"):
        clock.is_open(naive)


def test_negative_and_absurd_durations_are_rejected() -> None:
    """A negative duration, or one beyond ten years of business time, is a ValueError."""
    at = local(BERLIN, 2026, 5, 18, 10)
    with pytest.raises(ValueError, match="negative"):
        calendar().add(at, -H)
    with pytest.raises(ValueError, match="beyond"):
        calendar().add(at, timedelta(days=10_000))


def test_calendar_closed_by_holidays_forever_stops_with_a_clear_error() -> None:
    """If holidays cover every opening, the walk stops at its cap with CalendarError."""
    first = date(2026, 1, 5)  # a Monday
    mondays = [str(first + timedelta(weeks=n)) for n in range(3000)]
    closed = calendar(hours={"mon": ["09:00-17:00"]}, dates=mondays)
    with pytest.raises(CalendarError, match="is it ever open"):
        closed.next_open(local(BERLIN, 2026, 1, 5, 10))


def test_domain_calendar_imports_no_infrastructure() -> None:
    """Importing worker.domain.calendar loads no redis, sqlalchemy, celery or httpx."""
    probe = "import json, sys, worker.domain.calendar; print(json.dumps(sorted(sys.modules)))"
    done = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=Path(__file__).resolve().parents[2],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    loaded = {name.split(".")[0] for name in json.loads(done.stdout)}
    assert "holidays" in loaded
    assert not loaded & {"redis", "sqlalchemy", "celery", "kombu", "httpx", "fastapi"}


# The schema.


def spec_error(**changes: Any) -> str:
    """The validation error text of a calendar spec with `changes` applied."""
    data: dict[str, Any] = {"timezone": "Europe/Berlin", "hours": {"mon": ["09:00-17:00"]}}
    data.update(changes)
    with pytest.raises(ValidationError) as caught:
        CalendarSpec.model_validate(data)
    return str(caught.value)


@pytest.mark.parametrize(
    ("changes", "field", "message"),
    [
        ({"timezone": "Europe/Berlinn"}, "timezone", "unknown time zone 'Europe/Berlinn'"),
        ({"hours": {"mon": ["17:00-09:00"]}}, "hours.mon.0", "must end after it starts"),
        ({"hours": {"mon": ["09:00-25:00"]}}, "hours.mon.0", "bad time"),
        ({"hours": {"mon": ["9-17"]}}, "hours.mon.0", "bad interval '9-17'"),
        ({"hours": {"mon": ["09:00-13:00", "12:00-17:00"]}}, "hours.mon", "overlap"),
        ({"hours": {"mon": ["13:00-17:00", "09:00-12:00"]}}, "hours.mon", "out of order"),
        ({"hours": {"mon": [], "fri2": ["09:00-17:00"]}}, "hours", "unknown weekday 'fri2'"),
        ({"hours": {"sat": []}}, "hours", "never open"),
        ({"holidays": {"country": "XX"}}, "holidays.country", "unknown country code 'XX'"),
        ({"holidays": {"country": False}}, "holidays.country", "quote the code"),
        (
            {"holidays": {"country": "DE", "subdivision": "XY"}},
            "holidays",
            "DE has no subdivision 'XY'",
        ),
        ({"holidays": {"subdivision": "BE"}}, "holidays", "give a country too"),
        ({"holidays": {"dates": ["2026-02-30"]}}, "holidays.dates.0", "date"),
        ({"weekends": "closed"}, "weekends", "Extra inputs"),
    ],
)
def test_schema_errors_name_the_field(changes: dict[str, Any], field: str, message: str) -> None:
    """Each invalid calendar is refused with an error that names its field and the problem."""
    error = spec_error(**changes)
    assert f"\n{field}\n" in error
    assert message in error


def test_schema_accepts_24_00_and_round_trips() -> None:
    """`24:00` ends a day; a dumped spec reads back equal, intervals written as text."""
    spec = CalendarSpec.model_validate(
        {
            "timezone": "America/New_York",
            "hours": {"sat": ["18:00-24:00"], "sun": ["00:00-06:00", "06:00-08:00"]},
            "holidays": {"country": "US", "subdivision": "NY", "dates": [date(2026, 12, 24)]},
        }
    )
    dumped = spec.model_dump(mode="json")
    assert dumped["hours"]["sat"] == ["18:00-24:00"]
    assert CalendarSpec.model_validate(dumped) == spec
    assert spec.zone == NEW_YORK
