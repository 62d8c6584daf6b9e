"""Business calendars in the policy file: opening hours per weekday in an IANA zone, holidays.

```yaml
calendars:
  berlin-office:
    timezone: Europe/Berlin
    hours:
      mon: ["09:00-12:00", "13:00-17:30"]
      tue: ["09:00-17:30"]
    holidays:
      country: DE
      subdivision: BE
      dates: [2026-12-24, 2026-12-31]
```

Hours are local wall-clock times; a weekday that is absent is closed; `24:00` ends an interval
at midnight. Holidays close a whole local date. No I/O: validation only.
"""

from __future__ import annotations

import re
from datetime import date
from functools import cache
from itertools import pairwise
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import holidays
from pydantic import (
    Field,
    GetJsonSchemaHandler,
    field_validator,
    model_serializer,
    model_validator,
)
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema

from schemas.base import StrictModel

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
MINUTES_PER_DAY = 24 * 60

_INTERVAL = re.compile(r"^\s*(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*$")


def _minutes(hours: str, minutes: str, text: str) -> int:
    h, m = int(hours), int(minutes)
    if m >= 60 or h > 24 or (h == 24 and m != 0):
        raise ValueError(f"bad time in interval {text!r}; times run from 00:00 to 24:00")
    return h * 60 + m


def _clock(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


class Interval(StrictModel):
    """One opening interval of a day, written `HH:MM-HH:MM` in local time.

    `start` and `end` are minutes since local midnight; `end` may be 1440 (`24:00`).
    """

    start: int = Field(ge=0, lt=MINUTES_PER_DAY)
    end: int = Field(gt=0, le=MINUTES_PER_DAY)

    @model_validator(mode="before")
    @classmethod
    def _parse(cls, value: Any) -> Any:
        if not isinstance(value, str):
            return value
        found = _INTERVAL.match(value)
        if found is None:
            raise ValueError(f"bad interval {value!r}; write it like '09:00-17:30'")
        start = _minutes(found[1], found[2], value)
        end = _minutes(found[3], found[4], value)
        if end <= start:
            raise ValueError(f"interval {value!r} must end after it starts")
        return {"start": start, "end": end}

    @model_validator(mode="after")
    def _ends_after_start(self) -> Interval:
        if self.end <= self.start:
            raise ValueError(f"interval {self} must end after it starts")
        return self

    @model_serializer
    def _as_text(self) -> str:
        return str(self)

    def __str__(self) -> str:
        return f"{_clock(self.start)}-{_clock(self.end)}"

    @classmethod
    def __get_pydantic_json_schema__(
        cls, core_schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        return {
            "type": "string",
            "pattern": r"^\d{1,2}:\d{2}-\d{1,2}:\d{2}$",
            "description": "Opening interval in local time, HH:MM-HH:MM; 24:00 ends the day.",
            "examples": ["09:00-17:30"],
        }


Day = tuple[Interval, ...]


class WeeklyHours(StrictModel):
    """Opening intervals per weekday, in order and not overlapping; an absent day is closed."""

    mon: Day = ()
    tue: Day = ()
    wed: Day = ()
    thu: Day = ()
    fri: Day = ()
    sat: Day = ()
    sun: Day = ()

    @model_validator(mode="before")
    @classmethod
    def _known_weekdays(cls, value: Any) -> Any:
        if isinstance(value, dict):
            unknown = [str(key) for key in value if key not in WEEKDAYS]
            if unknown:
                raise ValueError(
                    f"unknown weekday {', '.join(map(repr, unknown))}; use {', '.join(WEEKDAYS)}"
                )
        return value

    @field_validator(*WEEKDAYS)
    @classmethod
    def _in_order(cls, day: Day) -> Day:
        for before, after in pairwise(day):
            if after.start < before.end:
                if after.start < before.start:
                    raise ValueError(f"intervals out of order: {before} before {after}")
                raise ValueError(f"intervals overlap: {before} and {after}")
        return day

    @model_validator(mode="after")
    def _open_sometime(self) -> WeeklyHours:
        if not any(self.days()):
            raise ValueError("the calendar is never open; give at least one interval")
        return self

    def days(self) -> tuple[Day, ...]:
        """The seven days' intervals, Monday first (the index is `date.weekday()`)."""
        return (self.mon, self.tue, self.wed, self.thu, self.fri, self.sat, self.sun)


@cache
def _countries() -> dict[str, list[str]]:
    return dict(holidays.list_supported_countries())


class HolidaySpec(StrictModel):
    """Local dates on which the calendar is closed all day."""

    country: str | None = Field(
        default=None, description="ISO 3166 code known to the `holidays` package, e.g. DE."
    )
    subdivision: str | None = Field(
        default=None, description="A subdivision of `country` (state, province), e.g. BE."
    )
    dates: tuple[date, ...] = Field(default=(), description="Extra closed dates, local.")

    @field_validator("country", "subdivision", mode="before")
    @classmethod
    def _not_boolean(cls, value: Any) -> Any:
        if isinstance(value, bool):
            raise ValueError("got a boolean: YAML reads NO, ON, YES as booleans; quote the code")
        return value

    @field_validator("country")
    @classmethod
    def _known_country(cls, value: str | None) -> str | None:
        if value is not None and value not in _countries():
            raise ValueError(f"unknown country code {value!r} for holidays (ISO 3166, e.g. DE)")
        return value

    @model_validator(mode="after")
    def _known_subdivision(self) -> HolidaySpec:
        if self.subdivision is None:
            return self
        if self.country is None:
            raise ValueError("subdivision: give a country too")
        known = _countries()[self.country]
        if self.subdivision not in known:
            listed = ", ".join(known) or "none"
            raise ValueError(
                f"subdivision: {self.country} has no subdivision {self.subdivision!r} "
                f"(known: {listed})"
            )
        return self


class CalendarSpec(StrictModel):
    """A named business calendar: weekly opening hours in an IANA zone, minus holidays."""

    timezone: str = Field(description="IANA zone name, e.g. Europe/Berlin.")
    hours: WeeklyHours
    holidays: HolidaySpec = HolidaySpec()

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError, OSError):
            raise ValueError(
                f"unknown time zone {value!r}; use an IANA name like Europe/Berlin"
            ) from None
        return value

    @property
    def zone(self) -> ZoneInfo:
        """The calendar's zone."""
        return ZoneInfo(self.timezone)
