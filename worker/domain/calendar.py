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

from bisect import bisect_left
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Protocol
from zoneinfo import ZoneInfo

import holidays

from schemas.calendar import CalendarSpec
from worker.errors import PermanentError

ZERO = timedelta(0)
_DAY = timedelta(days=1)
_SECOND = timedelta(seconds=1)
_TICK = timedelta(microseconds=1)
_NOON = time(12)
_MAX_DAYS_WALKED = 20_000  # dates walked one at a time in one call (skipped weeks not counted)
_MAX_DURATION = timedelta(days=3660)  # business time; more is a mistake, not an SLA
_CACHED_DAYS = 8192


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

Period = tuple[datetime, datetime, timedelta]  # open [start, end) in UTC, and its length


@dataclass(frozen=True, slots=True)
class _Day:
    """One local date: the UTC instants it spans and its open periods, in order."""

    begins: datetime
    ends: datetime
    periods: tuple[Period, ...]


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
        self._extra: dict[int, set[int]] = {}
        for extra in spec.holidays.dates:
            self._extra.setdefault(extra.year, set()).add(extra.toordinal())
        self._closed_by_year: dict[int, frozenset[int]] = {}
        self._irregular_by_year: dict[int, list[int]] = {}
        self._days: dict[int, _Day] = {}

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
        ordinal, day = self._locate(cur)
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
                weeks = self._regular_weeks(ordinal, (remaining - _TICK) // week)
                ordinal += 7 * weeks
                remaining -= week * weeks
            for begin, _end, length in self._day(ordinal).periods:
                if length >= remaining:
                    return begin + remaining
                remaining -= length
        raise self._runaway(start)

    def elapsed(self, start: datetime, end: datetime) -> timedelta:
        """Business time between `start` and `end`; zero if `end` is not after `start`."""
        lo, hi = _utc(start, "start"), _utc(end, "end")
        if hi <= lo:
            return ZERO
        ordinal, day = self._locate(lo)
        last, _ = self._locate(hi)
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
                weeks = self._regular_weeks(ordinal, (last - ordinal) // 7)
                ordinal += 7 * weeks
                total += self._week * weeks
            day = self._day(ordinal)
        raise self._runaway(start)

    def next_open(self, at: datetime) -> datetime:
        """`at` itself (in UTC) if open, else the next opening."""
        cur = _utc(at, "at")
        ordinal, day = self._locate(cur)
        for _ in range(_MAX_DAYS_WALKED):
            for begin, end, _length in day.periods:
                if end > cur:
                    return begin if begin > cur else cur
            ordinal += 1
            day = self._day(ordinal)
        raise self._runaway(at)

    def is_open(self, at: datetime) -> bool:
        """Whether `at` falls in an open period."""
        cur = _utc(at, "at")
        _, day = self._locate(cur)
        return any(begin <= cur < end for begin, end, _ in day.periods)

    def _runaway(self, start: datetime) -> CalendarError:
        return CalendarError(
            f"calendar in {self.spec.timezone} gave up after walking {_MAX_DAYS_WALKED} dates "
            f"from {start.isoformat()}: is it ever open, or do holidays cover every opening?"
        )

    # Dates: open periods, holidays, weeks that hold exactly the nominal open time.

    def _locate(self, at: datetime) -> tuple[int, _Day]:
        """The local date (as an ordinal) whose span holds the UTC instant `at`."""
        ordinal = at.astimezone(self._zone).toordinal()
        day = self._day(ordinal)
        while at < day.begins:
            ordinal -= 1
            day = self._day(ordinal)
        while at >= day.ends:
            ordinal += 1
            day = self._day(ordinal)
        return ordinal, day

    def _day(self, ordinal: int) -> _Day:
        day = self._days.get(ordinal)
        if day is None:
            if len(self._days) >= _CACHED_DAYS:
                self._days.clear()
            day = self._days[ordinal] = self._build_day(ordinal)
        return day

    def _build_day(self, ordinal: int) -> _Day:
        local = date.fromordinal(ordinal)
        midnight = datetime.combine(local, time())  # naive local wall clock
        begins = midnight.replace(tzinfo=self._zone).astimezone(UTC)
        ends = (midnight + _DAY).replace(tzinfo=self._zone).astimezone(UTC)
        hours = self._hours[local.weekday()]
        if not hours or ordinal in self._closed(local.year):
            return _Day(begins, ends, ())
        periods: list[Period] = []
        for seg_begin, seg_end, offset in self._segments(begins, ends):
            # Inside a segment the offset is fixed, so wall time maps to UTC by subtraction.
            for open_at, close_at in hours:
                begin = max(seg_begin, (midnight + open_at - offset).replace(tzinfo=UTC))
                end = min(seg_end, (midnight + close_at - offset).replace(tzinfo=UTC))
                if begin >= end:
                    continue
                if periods and periods[-1][1] == begin:
                    begin = periods.pop()[0]
                periods.append((begin, end, end - begin))
        return _Day(begins, ends, tuple(periods))

    def _offset(self, instant: datetime) -> timedelta:
        offset = instant.astimezone(self._zone).utcoffset()
        assert offset is not None  # a ZoneInfo always has one
        return offset

    def _segments(
        self, begins: datetime, ends: datetime
    ) -> list[tuple[datetime, datetime, timedelta]]:
        """[begins, ends) cut where the zone's UTC offset changes (at most once a day)."""
        first, last = self._offset(begins), self._offset(ends - _SECOND)
        if first == last:
            return [(begins, ends, first)]
        lo, hi = 0, int((ends - begins) / _SECOND) - 1  # offset(lo) == first, offset(hi) != first
        while hi - lo > 1:
            mid = (lo + hi) // 2
            if self._offset(begins + mid * _SECOND) == first:
                lo = mid
            else:
                hi = mid
        change = begins + hi * _SECOND
        return [(begins, change, first), (change, ends, last)]

    def _closed(self, year: int) -> frozenset[int]:
        """Ordinals of the year's holidays: the country's (computed once) and the extra dates."""
        closed = self._closed_by_year.get(year)
        if closed is None:
            found = set(self._extra.get(year, ()))
            country = self.spec.holidays.country
            if country is not None:
                # Neighbouring years too: an observed day can fall in the year next door.
                official = holidays.country_holidays(
                    country, subdiv=self.spec.holidays.subdivision, years=(year - 1, year, year + 1)
                )
                found.update(day.toordinal() for day in official if day.year == year)
            closed = self._closed_by_year[year] = frozenset(found)
        return closed

    def _irregular(self, year: int) -> list[int]:
        """Sorted ordinals of the year's dates that may not hold their nominal open time:
        holidays, and the dates on either side of a change of UTC offset."""
        marks = self._irregular_by_year.get(year)
        if marks is None:
            first, last = date(year, 1, 1).toordinal(), date(year, 12, 31).toordinal()
            found = set(self._closed(year))
            before = self._noon_offset(first - 1)
            for ordinal in range(first, last + 2):
                after = self._noon_offset(ordinal)
                if after != before:
                    found.update((ordinal - 1, ordinal))
                before = after
            marks = self._irregular_by_year[year] = sorted(o for o in found if first <= o <= last)
        return marks

    def _noon_offset(self, ordinal: int) -> timedelta:
        noon = datetime.combine(date.fromordinal(ordinal), _NOON, tzinfo=self._zone)
        offset = noon.utcoffset()
        assert offset is not None
        return offset

    def _regular_weeks(self, ordinal: int, most: int) -> int:
        """How many whole weeks from `ordinal` on (at most `most`) hold no irregular date."""
        if most <= 0:
            return 0
        limit = ordinal + 7 * most
        year = date.fromordinal(ordinal).year
        search = ordinal
        while True:
            marks = self._irregular(year)
            index = bisect_left(marks, search)
            if index < len(marks):
                return min(most, (marks[index] - ordinal) // 7)
            search = date(year + 1, 1, 1).toordinal()
            if search >= limit:
                return most
            year += 1


def business_calendar(spec: CalendarSpec) -> BusinessCalendar:
    """The calendar a policy file's `calendars.<name>` entry describes."""
    return BusinessCalendar(spec)
