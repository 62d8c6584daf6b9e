"""SLA arithmetic and escalation decisions. Pure: no I/O, no clock of its own.

An issue's clock *cycle* starts when it is opened (or reopened). Tier `i` of the acknowledge
ladder must acknowledge by `start + within[0] + ... + within[i]`; when that passes the issue
moves to tier `i + 1`. The last tier is reminded at its own due time and then every
`renotify_every`. The resolve target is `start + resolve.within`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from functools import lru_cache

from schemas.calendar import CalendarSpec
from schemas.policy import Policy
from worker.domain.calendar import ALWAYS_OPEN, Calendar, business_calendar


class Lifecycle(StrEnum):
    """Where an issue is in its life."""

    OPEN = "open"
    ACKNOWLEDGED = "acknowledged"
    RESOLVED = "resolved"


class DeadlineKind(StrEnum):
    """What happens when a deadline passes."""

    ESCALATE = "escalate"  # the holding tier did not acknowledge in time
    REMIND = "remind"  # the last tier still has not acknowledged
    RESOLVE = "resolve"  # the resolve target passed


@dataclass(frozen=True, slots=True)
class DeadlineSpec:
    """A deadline to arm: its kind, the tier and cycle it is armed for, and when it falls due."""

    kind: DeadlineKind
    tier_index: int
    due_at: datetime


@lru_cache(maxsize=256)
def _business(spec: CalendarSpec) -> Calendar:
    return business_calendar(spec)


def calendar_of(spec: CalendarSpec | None) -> Calendar:
    """The calendar a target's time runs on: 24x7 unless it names a business calendar."""
    return ALWAYS_OPEN if spec is None else _business(spec)


def last_tier(policy: Policy) -> int:
    """Index of the policy's last tier."""
    return len(policy.acknowledge.ladder) - 1


def ack_due(policy: Policy, cycle_start: datetime, tier_index: int) -> datetime:
    """When tier `tier_index` must have acknowledged, for a cycle that started at `cycle_start`."""
    ladder = policy.acknowledge.ladder
    index = min(tier_index, len(ladder) - 1)
    budget = sum((step.within for step in ladder[: index + 1]), timedelta())
    return calendar_of(policy.acknowledge.calendar_spec).add(cycle_start, budget)


def renotify_every(policy: Policy) -> timedelta:
    """How often the last tier is reminded."""
    return policy.acknowledge.renotify_every or policy.acknowledge.ladder[-1].within


def ack_deadline(policy: Policy, cycle_start: datetime, tier_index: int) -> DeadlineSpec:
    """The next acknowledge deadline for an unacknowledged issue held by `tier_index`."""
    kind = DeadlineKind.REMIND if tier_index >= last_tier(policy) else DeadlineKind.ESCALATE
    index = min(tier_index, last_tier(policy))
    return DeadlineSpec(kind, index, ack_due(policy, cycle_start, index))


def plan(
    policy: Policy, cycle_start: datetime, tier_index: int, lifecycle: Lifecycle
) -> list[DeadlineSpec]:
    """Every deadline an issue in this state should have armed."""
    if lifecycle is Lifecycle.RESOLVED:
        return []
    specs = []
    if lifecycle is Lifecycle.OPEN:
        specs.append(ack_deadline(policy, cycle_start, tier_index))
    if policy.resolve is not None:
        due = calendar_of(policy.resolve.calendar_spec).add(cycle_start, policy.resolve.within)
        specs.append(DeadlineSpec(DeadlineKind.RESOLVE, tier_index, due))
    return specs


def next_reminder(policy: Policy, due_at: datetime, now: datetime) -> datetime:
    """The first reminder after `due_at` that is not already in the past (no catch-up storm)."""
    every = renotify_every(policy)
    calendar = calendar_of(policy.acknowledge.calendar_spec)
    following = calendar.add(due_at, every)
    if now < following:
        return following
    skipped = calendar.elapsed(due_at, now) // every
    return calendar.add(due_at, every * (skipped + 1))


@dataclass(frozen=True, slots=True)
class ClockView:
    """What a firing deadline needs to know about its issue."""

    lifecycle: Lifecycle
    cycle: int
    tier_index: int


@dataclass(frozen=True, slots=True)
class FiringDeadline:
    """The deadline being fired, as it was armed."""

    kind: DeadlineKind
    cycle: int
    tier_index: int
    due_at: datetime


@dataclass(frozen=True, slots=True)
class Escalate:
    """Reassign to `to_tier` and arm `next`."""

    to_tier: int
    next: DeadlineSpec


@dataclass(frozen=True, slots=True)
class Remind:
    """Remind the last tier again and arm `next`."""

    next: DeadlineSpec


@dataclass(frozen=True, slots=True)
class Breach:
    """The resolve target passed: tell the tier holding the issue."""


@dataclass(frozen=True, slots=True)
class Stale:
    """The issue moved on since the deadline was armed: do nothing."""

    reason: str


Decision = Escalate | Remind | Breach | Stale


def decide(issue: ClockView, deadline: FiringDeadline, policy: Policy, now: datetime) -> Decision:
    """What firing `deadline` does to `issue`. The fence: only the state it was armed for counts."""
    if deadline.cycle != issue.cycle:
        return Stale(f"armed for clock cycle {deadline.cycle}, issue is on {issue.cycle}")
    if issue.lifecycle is Lifecycle.RESOLVED:
        return Stale("issue is resolved")
    if deadline.kind is DeadlineKind.RESOLVE:
        return Breach()
    if issue.lifecycle is Lifecycle.ACKNOWLEDGED:
        return Stale("issue is acknowledged")
    if deadline.tier_index != issue.tier_index:
        return Stale(f"armed for tier {deadline.tier_index}, issue is at tier {issue.tier_index}")
    if deadline.kind is DeadlineKind.ESCALATE and issue.tier_index < last_tier(policy):
        to_tier = issue.tier_index + 1
        # The next tier's time runs from this deadline, not from `now`: a late firing (after an
        # outage) keeps the ladder on its planned schedule.
        step = policy.acknowledge.ladder[to_tier].within
        kind = DeadlineKind.ESCALATE if to_tier < last_tier(policy) else DeadlineKind.REMIND
        due = calendar_of(policy.acknowledge.calendar_spec).add(deadline.due_at, step)
        return Escalate(to_tier, DeadlineSpec(kind, to_tier, due))
    return Remind(
        DeadlineSpec(
            DeadlineKind.REMIND, issue.tier_index, next_reminder(policy, deadline.due_at, now)
        )
    )
