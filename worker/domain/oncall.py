"""Who is on call: fixed lists, rotations on the local wall clock, and overrides. Pure: no I/O.

A rotation's shifts are counted on the wall clock of its zone from `start` at `handoff`, so a
weekly 09:00 handoff in Europe/Berlin stays at 09:00 local across a daylight-saving change (the
shift that spans the change is an hour shorter or longer in UTC).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from schemas.outbound import Roster
from schemas.policy import PolicyFile

_MAX_STEPS = 1000  # how many handoffs `next_shift` looks through for a different person


@dataclass(frozen=True, slots=True)
class Shift:
    """`who` is on call from `start` (UTC) until `end` (UTC, None: open-ended)."""

    who: str
    start: datetime | None
    end: datetime | None


def _slot(roster: Roster, at: datetime) -> tuple[int, datetime, datetime] | None:
    """The rotation slot holding `at`: its index and its UTC bounds; None for a fixed list."""
    if roster.shift is None or roster.shift <= timedelta(0):
        return None
    zone = ZoneInfo(roster.timezone)
    anchor = datetime.combine(roster.start, roster.handoff)  # naive local wall clock
    wall = at.astimezone(zone).replace(tzinfo=None)
    index = (wall - anchor) // roster.shift
    begin = anchor + index * roster.shift

    def utc(naive: datetime) -> datetime:
        return naive.replace(tzinfo=zone).astimezone(UTC)

    return index, utc(begin), utc(begin + roster.shift)


def _rotation(roster: Roster, at: datetime) -> Shift:
    slot = _slot(roster, at)
    if slot is None:
        return Shift(roster.members[0], None, None)
    index, start, end = slot
    return Shift(roster.members[index % len(roster.members)], start, end)


def roster_shift(roster: Roster, at: datetime) -> Shift:
    """The shift holding `at`, overrides first."""
    for override in roster.overrides:
        if override.start <= at < override.end:
            return Shift(override.who, override.start, override.end)
    shift = _rotation(roster, at)
    # An override that starts inside this shift ends it early.
    starts = [o.start for o in roster.overrides if o.start > at]
    if starts and (shift.end is None or min(starts) < shift.end):
        return Shift(shift.who, shift.start, min(starts))
    return shift


def people(policies: PolicyFile, tier_name: str) -> tuple[str, ...]:
    """Everyone the tier's roster names (or its assignee)."""
    tier = policies.tier(tier_name)
    if tier is None:
        return ()
    if tier.roster is not None and tier.roster in policies.rosters:
        return policies.rosters[tier.roster].members
    return (tier.assignee,) if tier.assignee else ()


def on_call(policies: PolicyFile, tier_name: str, at: datetime) -> str | None:
    """Who is on call for the tier at `at`: its roster's current shift, else its assignee."""
    tier = policies.tier(tier_name)
    if tier is None:
        return None
    if tier.roster is None or tier.roster not in policies.rosters:
        return tier.assignee
    return roster_shift(policies.rosters[tier.roster], at).who


def next_shift(policies: PolicyFile, tier_name: str, at: datetime) -> Shift | None:
    """The next change of person on call for the tier after `at`; None if nobody ever takes over."""
    tier = policies.tier(tier_name)
    if tier is None or tier.roster is None or tier.roster not in policies.rosters:
        return None
    roster = policies.rosters[tier.roster]
    current = roster_shift(roster, at)
    moment = current
    for _ in range(_MAX_STEPS):
        boundary = moment.end
        if boundary is None:
            return None
        moment = roster_shift(roster, boundary)
        if moment.who != current.who:
            return Shift(moment.who, boundary, moment.end)
    return None
