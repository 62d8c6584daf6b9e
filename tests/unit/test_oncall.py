"""On-call rosters (worker/domain/oncall.py): fixed lists,
rotations on the local wall clock, overrides."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from pydantic import ValidationError

from schemas.policy import PolicyFile
from worker.domain.oncall import next_shift, on_call, people

BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")


def policies(roster: dict[str, Any] | None, assignee: str | None = "fallback") -> PolicyFile:
    """A one-tier file whose tier L1 uses `roster` (None: only its assignee)."""
    tier: dict[str, Any] = {"name": "L1", "assignee": assignee}
    data: dict[str, Any] = {
        "tiers": [tier],
        "policies": [{"name": "p", "acknowledge": {"ladder": [{"tier": "L1", "within": "5m"}]}}],
        "default": "p",
    }
    if roster is not None:
        tier["roster"] = "r"
        data["rosters"] = {"r": roster}
    return PolicyFile.model_validate(data)


def test_tier_without_roster_is_its_assignee() -> None:
    """No roster: the tier's assignee is on call, nobody comes next."""
    p = policies(None)
    at = datetime(2026, 3, 1, tzinfo=UTC)
    assert on_call(p, "L1", at) == "fallback"
    assert next_shift(p, "L1", at) is None
    assert people(p, "L1") == ("fallback",)
    assert on_call(p, "nope", at) is None


def test_fixed_list_puts_the_first_member_on_call() -> None:
    """A roster without `shift` is a fixed list: the first member is on call, always."""
    p = policies({"members": ["ana", "ben"]})
    assert on_call(p, "L1", datetime(2030, 1, 1, tzinfo=UTC)) == "ana"
    assert people(p, "L1") == ("ana", "ben")
    assert next_shift(p, "L1", datetime(2030, 1, 1, tzinfo=UTC)) is None


def test_daily_rotation_hands_over_at_the_handoff_time() -> None:
    """A daily rotation changes person exactly at the local handoff time."""
    p = policies(
        {"members": ["a", "b", "c"], "shift": "1d", "handoff": "09:00", "start": "2026-06-01"}
    )
    base = datetime(2026, 6, 1, 9, 0, tzinfo=UTC)
    assert on_call(p, "L1", base - timedelta(seconds=1)) == "c"  # the shift before the start
    assert on_call(p, "L1", base) == "a"
    assert on_call(p, "L1", base + timedelta(hours=23, minutes=59)) == "a"
    assert on_call(p, "L1", base + timedelta(days=1)) == "b"
    assert on_call(p, "L1", base + timedelta(days=3)) == "a"
    nxt = next_shift(p, "L1", base + timedelta(hours=5))
    assert nxt is not None and (nxt.who, nxt.start) == ("b", base + timedelta(days=1))


@pytest.mark.parametrize(
    ("zone", "change", "before_offset", "after_offset"),
    [
        ("Europe/Berlin", datetime(2026, 3, 29), 1, 2),  # spring forward
        ("Europe/Berlin", datetime(2026, 10, 25), 2, 1),  # fall back
        ("America/New_York", datetime(2026, 3, 8), -5, -4),
        ("America/New_York", datetime(2026, 11, 1), -4, -5),
    ],
)
def test_weekly_handoff_stays_at_local_time_across_daylight_saving(
    zone: str, change: datetime, before_offset: int, after_offset: int
) -> None:
    """A 09:00 local handoff is at 09:00 local on both sides of a DST change (UTC moves)."""
    start = (change - timedelta(days=change.weekday())).date()  # the Monday before the change
    p = policies(
        {
            "members": ["ann", "bob"],
            "shift": "1w",
            "handoff": "09:00",
            "timezone": zone,
            "start": start.isoformat(),
        }
    )
    first = datetime.combine(start, datetime.min.time()).replace(hour=9, tzinfo=ZoneInfo(zone))
    assert first.utcoffset() == timedelta(hours=before_offset)
    assert on_call(p, "L1", first) == "ann"
    nxt = next_shift(p, "L1", first + timedelta(hours=1))
    assert nxt is not None and nxt.who == "bob" and nxt.start is not None
    local = nxt.start.astimezone(ZoneInfo(zone))
    assert (local.hour, local.minute, local.utcoffset()) == (9, 0, timedelta(hours=after_offset))
    assert (local.date() - start).days == 7
    # One second before the handoff it is still ann; at it, bob.
    assert on_call(p, "L1", nxt.start - timedelta(seconds=1)) == "ann"
    assert on_call(p, "L1", nxt.start) == "bob"
    # The shift across the change is an hour shorter (spring) or longer (autumn) in real time.
    length = nxt.start - first.astimezone(UTC)
    assert length == timedelta(days=7, hours=before_offset - after_offset)


def test_twelve_hour_shifts_in_new_york_keep_wall_clock_handoffs_on_dst_day() -> None:
    """08:00/20:00 handoffs stay at 08:00 and 20:00 local on the day clocks go forward."""
    p = policies(
        {
            "members": ["day", "night"],
            "shift": "12h",
            "handoff": "08:00",
            "timezone": "America/New_York",
            "start": "2026-03-01",
        }
    )
    morning = datetime(2026, 3, 8, 8, 0, tzinfo=NEW_YORK)
    assert on_call(p, "L1", morning) == "day"
    assert on_call(p, "L1", morning - timedelta(minutes=1)) == "night"
    nxt = next_shift(p, "L1", morning)
    assert nxt is not None and nxt.start is not None
    assert nxt.start.astimezone(NEW_YORK).hour == 20 and nxt.who == "night"


def test_override_wins_for_its_period_and_shows_as_next() -> None:
    """An override replaces the rotation from its start to its end; next_shift sees it coming."""
    start = datetime(2026, 12, 24, 18, 0, tzinfo=BERLIN)
    p = policies(
        {
            "members": ["a", "b"],
            "shift": "1w",
            "timezone": "Europe/Berlin",
            "start": "2026-12-21",
            "overrides": [
                {
                    "who": "zoe",
                    "start": start.isoformat(),
                    "end": (start + timedelta(days=2)).isoformat(),
                }
            ],
        }
    )
    assert on_call(p, "L1", start - timedelta(seconds=1)) == "a"
    assert on_call(p, "L1", start) == "zoe"
    assert on_call(p, "L1", start + timedelta(days=2)) == "a"
    nxt = next_shift(p, "L1", start - timedelta(hours=1))
    assert nxt is not None and (nxt.who, nxt.start) == ("zoe", start)
    after = next_shift(p, "L1", start)
    assert after is not None and (after.who, after.start) == ("a", start + timedelta(days=2))


def test_bad_zone_and_unknown_roster_are_refused() -> None:
    """An unknown IANA zone or a tier naming a missing roster fails validation."""
    with pytest.raises(ValidationError, match="time zone"):
        policies({"members": ["a"], "shift": "1d", "timezone": "Mars/Olympus"})
    with pytest.raises(ValidationError, match="no roster named"):
        PolicyFile.model_validate(
            {
                "tiers": [{"name": "L1", "roster": "ghost"}],
                "policies": [
                    {"name": "p", "acknowledge": {"ladder": [{"tier": "L1", "within": "5m"}]}}
                ],
                "default": "p",
            }
        )
