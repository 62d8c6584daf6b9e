"""The dates of a business calendar: each local date's open periods in UTC (daylight-saving
changes and holidays included), and the weeks that hold exactly the nominal open time, which
`worker.domain.calendar.BusinessCalendar` skips in one step. Pure; cached per date and year."""

from __future__ import annotations

from bisect import bisect_left
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import holidays

from schemas.calendar import CalendarSpec

_DAY = timedelta(days=1)
_SECOND = timedelta(seconds=1)
_NOON = time(12)
_CACHED_DAYS = 8192

Period = tuple[datetime, datetime, timedelta]  # open [start, end) in UTC, and its length
Hours = tuple[tuple[tuple[timedelta, timedelta], ...], ...]  # per weekday: (open, close) offsets


@dataclass(frozen=True, slots=True)
class Day:
    """One local date: the UTC instants it spans and its open periods, in order."""

    begins: datetime
    ends: datetime
    periods: tuple[Period, ...]


class Dates:
    """The local dates of one calendar, by ordinal."""

    def __init__(self, spec: CalendarSpec, hours: Hours) -> None:
        self.spec = spec
        self._zone = ZoneInfo(spec.timezone)
        self._hours = hours
        self._extra: dict[int, set[int]] = {}
        for extra in spec.holidays.dates:
            self._extra.setdefault(extra.year, set()).add(extra.toordinal())
        self._closed_by_year: dict[int, frozenset[int]] = {}
        self._irregular_by_year: dict[int, list[int]] = {}
        self._days: dict[int, Day] = {}

    def locate(self, at: datetime) -> tuple[int, Day]:
        """The local date (as an ordinal) whose span holds the UTC instant `at`."""
        ordinal = at.astimezone(self._zone).toordinal()
        day = self.day(ordinal)
        while at < day.begins:
            ordinal -= 1
            day = self.day(ordinal)
        while at >= day.ends:
            ordinal += 1
            day = self.day(ordinal)
        return ordinal, day

    def day(self, ordinal: int) -> Day:
        day = self._days.get(ordinal)
        if day is None:
            if len(self._days) >= _CACHED_DAYS:
                self._days.clear()
            day = self._days[ordinal] = self._build_day(ordinal)
        return day

    def _build_day(self, ordinal: int) -> Day:
        local = date.fromordinal(ordinal)
        midnight = datetime.combine(local, time())  # naive local wall clock
        begins = midnight.replace(tzinfo=self._zone).astimezone(UTC)
        ends = (midnight + _DAY).replace(tzinfo=self._zone).astimezone(UTC)
        hours = self._hours[local.weekday()]
        if not hours or ordinal in self._closed(local.year):
            return Day(begins, ends, ())
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
        return Day(begins, ends, tuple(periods))

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

    def regular_weeks(self, ordinal: int, most: int) -> int:
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
