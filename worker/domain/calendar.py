"""Business time: deadlines and elapsed time that count only a calendar's opening hours.

Pure: no I/O, no clock of its own. Every instant in and out is timezone-aware; results are UTC.

An instant is open when its local wall-clock time, in the calendar's zone, falls inside one of
the intervals of its local weekday and its local date is not a holiday. Open periods are built
per local date in local time, so `09:00-17:00` is 09:00-17:00 on both sides of a daylight-saving
change, and a period that spans the change (`01:00-04:00` on the spring-forward night) has its
real, shorter or longer, length. Wall times that the change skips are never open; wall times it
repeats are open both times.

`add` is fast: a week with no holiday and no daylight-saving change holds exactly the nominal
open time of a week, so whole such weeks are skipped in one step; the rest is walked period by
period. Build one `BusinessCalendar` per policy load and reuse it: it caches holidays (per
year) and the open periods of each date it has seen.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Protocol
from zoneinfo import ZoneInfo

from schemas.calendar import CalendarSpec
from worker.domain.calendar_dates import Dates
from worker.errors import PermanentError

ZERO = timedelta(0)
_TICK = timedelta(microseconds=1)
_MAX_DAYS_WALKED = 20_000  # dates walked one at a time in one call (skipped weeks not counted)
_MAX_DURATION = timedelta(days=3660)  # business time; more is a mistake, not an SLA


class CalendarError(PermanentError):
    """A business-time computation that cannot finish: the calendar never opens in reach."""


class Calendar(Protocol):
    """Business-time arithmetic over timezone-aware instants; results are UTC."""

    def add(self, start: datetime, duration: timedelta) -> datetime:
        """When `duration` of business time has elapsed after `start` (clock starts at opening)."""
        ...

    def elapsed(self, start: datetime, end: datetime) -> timedelta:
        """Business time between two instants; zero if `end` is not after `start`."""
        ...

    def next_open(self, at: datetime) -> datetime:
        """`at` itself if open, else the next opening."""
        ...

    def is_open(self, at: datetime) -> bool:
        """Whether business time runs at `at`."""
        ...


def _utc(value: datetime, name: str) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware, got naive {value.isoformat()}")
    return value.astimezone(UTC)


def _checked(duration: timedelta) -> timedelta:
    if duration < ZERO:
        raise ValueError(f"a business-time duration cannot be negative, got {duration}")
    if duration > _MAX_DURATION:
        raise ValueError(f"a business-time duration of {duration} is beyond {_MAX_DURATION}")
    return duration


class AlwaysOpen:
    """24x7: business time is real time."""

    def add(self, start: datetime, duration: timedelta) -> datetime:
        """`start + duration`, in UTC."""
        return _utc(start, "start") + _checked(duration)

    def elapsed(self, start: datetime, end: datetime) -> timedelta:
        """`end - start`, or zero."""
        return max(_utc(end, "end") - _utc(start, "start"), ZERO)

    def next_open(self, at: datetime) -> datetime:
        """`at`, in UTC."""
        return _utc(at, "at")

    def is_open(self, at: datetime) -> bool:
        """Always."""
        _utc(at, "at")
        return True


ALWAYS_OPEN = AlwaysOpen()


class BusinessCalendar:
    """Opening hours per weekday in an IANA zone, minus holidays. Build with `business_calendar`."""

    def __init__(self, spec: CalendarSpec) -> None:
        self.spec = spec
        self._zone = ZoneInfo(spec.timezone)
        self._hours = tuple(
            tuple((timedelta(minutes=i.start), timedelta(minutes=i.end)) for i in day)
            for day in spec.hours.days()
        )
        self._week = sum((end - start for day in self._hours for start, end in day), ZERO)
        if self._week <= ZERO:
            raise ValueError(f"calendar in {spec.timezone} is never open")
        self._dates = Dates(spec, self._hours)

    @property
    def week(self) -> timedelta:
        """Open time in a week with no holiday and no daylight-saving change."""
        return self._week

    def add(self, start: datetime, duration: timedelta) -> datetime:
        """When `duration` of business time has elapsed after `start`, in UTC.

        A start outside business hours starts the clock at the next opening; a deadline that
        uses up a period exactly falls on its closing instant.
        """
        cur = _utc(start, "start")
        remaining = _checked(duration)
        ordinal, day = self._dates.locate(cur)
        for begin, end, length in day.periods:
            if end <= cur:
                continue
            if begin < cur:
                begin, length = cur, end - cur
            if length >= remaining:
                return begin + remaining
            remaining -= length
        week = self._week
        for _ in range(_MAX_DAYS_WALKED):
            ordinal += 1
            if remaining > week:  # skip whole weeks, leaving a remainder > 0 to walk
                weeks = self._dates.regular_weeks(ordinal, (remaining - _TICK) // week)
                ordinal += 7 * weeks
                remaining -= week * weeks
            for begin, _end, length in self._dates.day(ordinal).periods:
                if length >= remaining:
                    return begin + remaining
                remaining -= length
        raise self._runaway(start)

    def elapsed(self, start: datetime, end: datetime) -> timedelta:
        """Business time between `start` and `end`; zero if `end` is not after `start`."""
        lo, hi = _utc(start, "start"), _utc(end, "end")
        if hi <= lo:
            return ZERO
        ordinal, day = self._dates.locate(lo)
        last, _ = self._dates.locate(hi)
        total = ZERO
        for _ in range(_MAX_DAYS_WALKED):
            for begin, close, length in day.periods:
                if close <= lo:
                    continue
                if begin >= hi:
                    return total
                if begin < lo or close > hi:
                    length = min(close, hi) - max(begin, lo)
                total += length
            if ordinal >= last:
                return total
            ordinal += 1
            if last - ordinal >= 7:
                weeks = self._dates.regular_weeks(ordinal, (last - ordinal) // 7)
                ordinal += 7 * weeks
                total += self._week * weeks
            day = self._dates.day(ordinal)
        raise self._runaway(start)

    def next_open(self, at: datetime) -> datetime:
        """`at` itself (in UTC) if open, else the next opening."""
        cur = _utc(at, "at")
        ordinal, day = self._dates.locate(cur)
        for _ in range(_MAX_DAYS_WALKED):
            for begin, end, _length in day.periods:
                if end > cur:
                    return begin if begin > cur else cur
            ordinal += 1
            day = self._dates.day(ordinal)
        raise self._runaway(at)

    def is_open(self, at: datetime) -> bool:
        """Whether `at` falls in an open period."""
        cur = _utc(at, "at")
        _, day = self._dates.locate(cur)
        return any(begin <= cur < end for begin, end, _ in day.periods)

    def _runaway(self, start: datetime) -> CalendarError:
        return CalendarError(
            f"calendar in {self.spec.timezone} gave up after walking {_MAX_DAYS_WALKED} dates "
            f"from {start.isoformat()}: is it ever open, or do holidays cover every opening?"
        )


def business_calendar(spec: CalendarSpec) -> BusinessCalendar:
    """The calendar a policy file's `calendars.<name>` entry describes."""
    return BusinessCalendar(spec)
