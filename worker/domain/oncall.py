"""Who is on call: fixed lists, rotations on the local wall clock, and overrides; and where a
tier has nobody (`coverage_gaps`). Pure: no I/O.

A rotation's shifts are counted on the wall clock of its zone from `start` at `handoff`, so a
weekly 09:00 handoff in Europe/Berlin stays at 09:00 local across a daylight-saving change (the
shift that spans the change is an hour shorter or longer in UTC).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal
from zoneinfo import ZoneInfo

from schemas.outbound import Roster
from schemas.policy import PolicyFile, Tier

_MAX_STEPS = 1000  # how many handoffs `next_shift` looks through for a different person


@dataclass(frozen=True, slots=True)
class Shift:
    """`who` is on call from `start` (UTC) until `end` (UTC, None: open-ended); None: nobody."""

    who: str | None
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


def _until(roster: Roster) -> datetime | None:
    """When the roster ends (UTC): `handoff` local time on its `until` date; None: never."""
    if roster.until is None:
        return None
    zone = ZoneInfo(roster.timezone)
    return datetime.combine(roster.until, roster.handoff).replace(tzinfo=zone).astimezone(UTC)


def _rotation(roster: Roster, at: datetime) -> Shift:
    ends = _until(roster)
    if ends is not None and at >= ends:
        return Shift(None, ends, None)
    slot = _slot(roster, at)
    if slot is None:
        return Shift(roster.members[0], None, ends)
    index, start, end = slot
    if ends is not None and ends < end:
        end = ends
    return Shift(roster.members[index % len(roster.members)], start, end)


def roster_shift(roster: Roster, at: datetime) -> Shift:
    """The shift holding `at`, overrides first; `who` None: nobody (an override to nobody, or
    after the roster's `until`)."""
    for override in roster.overrides:
        if override.start <= at < override.end:
            return Shift(override.who, override.start, override.end)
    shift = _rotation(roster, at)
    # An override that starts inside this shift ends it early.
    starts = [o.start for o in roster.overrides if o.start > at]
    if starts and (shift.end is None or min(starts) < shift.end):
        return Shift(shift.who, shift.start, min(starts))
    return shift


def tier_shift(policies: PolicyFile, tier_name: str, at: datetime) -> Shift | None:
    """Who holds the tier at `at`: its roster's shift, its `assignee` where the roster has
    nobody (or where it has no roster); None for a tier the file does not have."""
    tier = policies.tier(tier_name)
    if tier is None:
        return None
    if tier.roster is None or tier.roster not in policies.rosters:
        return Shift(tier.assignee, None, None)
    shift = roster_shift(policies.rosters[tier.roster], at)
    if shift.who is None and tier.assignee:
        return Shift(tier.assignee, shift.start, shift.end)
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
    """Who is on call for the tier at `at`: its roster's current shift, else its assignee;
    None: nobody."""
    shift = tier_shift(policies, tier_name, at)
    return shift.who if shift is not None else None


def next_shift(policies: PolicyFile, tier_name: str, at: datetime) -> Shift | None:
    """The next change of who is on call for the tier after `at` (`who` None: nobody from
    then on); None if nothing ever changes."""
    current = tier_shift(policies, tier_name, at)
    moment = current
    for _ in range(_MAX_STEPS):
        if moment is None or current is None or moment.end is None:
            return None
        boundary = moment.end
        moment = tier_shift(policies, tier_name, boundary)
        if moment is not None and moment.who != current.who:
            return Shift(moment.who, boundary, moment.end)
    return None


# --- gaps: where a tier reaches nobody --------------------------------------------------------

GapReason = Literal["nobody_on_call", "no_channel"]
ESCALATION_KIND = "escalated"  # the kind of message whose routing `no_channel` is about
SILENT_CHANNELS = frozenset({"log"})  # channel types that tell no person (they only log)


@dataclass(frozen=True, slots=True)
class Gap:
    """A tier reaches nobody: `nobody_on_call` from `start` to `end` (UTC; `end` None: it never
    ends), or `no_channel` (its escalations go to no channel that tells a person; `start` and
    `end` None: at every moment)."""

    tier: str
    reason: GapReason
    start: datetime | None
    end: datetime | None


def reaches_someone(policies: PolicyFile, channel: str) -> bool:
    """Whether a message on `channel` tells a person (a `log` channel only writes the log)."""
    spec = policies.channels.get(channel)
    return spec is not None and spec.type not in SILENT_CHANNELS


def _changes(policies: PolicyFile, tier: Tier) -> set[datetime]:
    """Every moment at which the tier may go from somebody to nobody or back."""
    if tier.roster is None or tier.roster not in policies.rosters:
        return set()
    roster = policies.rosters[tier.roster]
    ends = _until(roster)
    moments = {o.start for o in roster.overrides} | {o.end for o in roster.overrides}
    return moments | ({ends} if ends is not None else set())


def _never_ends(policies: PolicyFile, tier: Tier, at: datetime) -> bool:
    """Whether the tier, with nobody at `at`, never has anybody again."""
    for _ in range(len(_changes(policies, tier)) + 2):
        shift = tier_shift(policies, tier.name, at)
        if shift is None or shift.who is not None:
            return False
        if shift.end is None:
            return True
        at = shift.end
    return False


def _nobody(policies: PolicyFile, tier: Tier, start: datetime, stop: datetime) -> list[Gap]:
    """The tier's maximal intervals with nobody on call inside [start, stop)."""
    points = sorted({start} | {t for t in _changes(policies, tier) if start < t < stop})
    gaps: list[Gap] = []
    since: datetime | None = None
    for at in points:  # who is on call (somebody or nobody) is constant between two points
        shift = tier_shift(policies, tier.name, at)
        nobody = shift is not None and shift.who is None
        if nobody and since is None:
            since = at
        elif not nobody and since is not None:
            gaps.append(Gap(tier.name, "nobody_on_call", since, at))
            since = None
    if since is not None:
        end = None if _never_ends(policies, tier, stop) else stop
        gaps.append(Gap(tier.name, "nobody_on_call", since, end))
    return gaps


def coverage_gaps(policies: PolicyFile, start: datetime, days: int = 14) -> list[Gap]:
    """Where each tier reaches nobody in [start, start + days), in the file's tier order.

    Per tier: `no_channel` first if its escalations go to no channel that tells a person (none
    routed, or only `log` channels), then its `nobody_on_call` intervals in time order, merged
    and clipped to the window (a gap that began earlier starts at `start`; `end` is None when
    nobody ever comes back). So a tier has nobody on call at `start` exactly when it has a
    `nobody_on_call` gap starting at `start`. A tier with an `assignee` always has someone: the
    assignee stands in where its roster has nobody.
    """
    if start.tzinfo is None:
        raise ValueError("coverage_gaps needs an aware start time")
    if days < 0:
        raise ValueError("coverage_gaps needs days >= 0")
    start = start.astimezone(UTC)
    stop = start + timedelta(days=days)
    gaps: list[Gap] = []
    for tier in policies.tiers:
        if not any(reaches_someone(policies, c) for c in tier.channels_for(ESCALATION_KIND)):
            gaps.append(Gap(tier.name, "no_channel", None, None))
        if stop > start:
            gaps.extend(_nobody(policies, tier, start, stop))
    return gaps
