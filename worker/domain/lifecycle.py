"""How each event changes an issue's SLA clock. Pure: every input is passed in.

Ordering: an issue remembers the time of its last lifecycle event (opened, acknowledged,
responded, resolved, reopened) and of its last snapshot. A lifecycle event older than the
former, or a snapshot older than the latter, is recorded and ignored, so late deliveries cannot
roll an issue back. A reopen that overtakes its resolve restarts the clock, and the late resolve
is then older than the reopen and ignored.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum

from schemas.events import EventType, IssueEvent, Severity
from schemas.messages import NotificationKind
from schemas.policy import PolicyFile
from worker.domain.sla import DeadlineSpec, Lifecycle, plan
from worker.errors import UnknownIssue


@dataclass(frozen=True, slots=True)
class IssueClock:
    """The part of an issue the SLA rules read and write."""

    lifecycle: Lifecycle
    severity: Severity
    policy_name: str
    tier_index: int
    clock_version: int
    cycle_started_at: datetime
    lifecycle_at: datetime
    snapshot_at: datetime


class Cancel(StrEnum):
    """Which armed deadlines a transition disarms."""

    NONE = "none"
    ACKNOWLEDGE = "acknowledge"  # escalate and remind deadlines; the resolve target stays
    ALL = "all"


@dataclass(frozen=True, slots=True)
class Transition:
    """The outcome of one event: the new clock and the effects to write with it."""

    applied: bool
    note: str
    clock: IssueClock | None
    take_snapshot: bool = False
    cancel: Cancel = Cancel.NONE
    arm: tuple[DeadlineSpec, ...] = ()
    notify: tuple[NotificationKind, ...] = ()


def _ignored(clock: IssueClock | None, note: str) -> Transition:
    return Transition(applied=False, note=note, clock=clock)


def _open(event: IssueEvent, policies: PolicyFile) -> Transition:
    issue = event.issue
    policy = policies.match(issue.severity, event.source, issue.labels)
    at = event.occurred_at
    clock = IssueClock(Lifecycle.OPEN, issue.severity, policy.name, 0, 1, at, at, at)
    return Transition(
        applied=True,
        note=f"opened as {issue.severity} under policy {policy.name}",
        clock=clock,
        take_snapshot=True,
        arm=tuple(plan(policy, at, 0, Lifecycle.OPEN)),
        notify=(NotificationKind.ASSIGNED,),
    )


def _replan(
    clock: IssueClock, severity: Severity, event: IssueEvent, policies: PolicyFile
) -> Transition:
    policy = policies.match(severity, event.source, event.issue.labels)
    tier = min(clock.tier_index, len(policy.acknowledge.ladder) - 1)
    new = replace(
        clock,
        severity=severity,
        policy_name=policy.name,
        tier_index=tier,
        clock_version=clock.clock_version + 1,
        snapshot_at=event.occurred_at,
    )
    return Transition(
        applied=True,
        note=f"severity {clock.severity} → {severity}: re-planned under policy {policy.name}",
        clock=new,
        take_snapshot=True,
        cancel=Cancel.ALL,
        arm=tuple(plan(policy, clock.cycle_started_at, tier, clock.lifecycle)),
    )


def _update(clock: IssueClock, event: IssueEvent, policies: PolicyFile) -> Transition:
    at = event.occurred_at
    if at < clock.snapshot_at:
        return _ignored(clock, f"older than the last update ({clock.snapshot_at.isoformat()})")
    severity = event.issue.severity
    if severity != clock.severity and clock.lifecycle is not Lifecycle.RESOLVED:
        return _replan(clock, severity, event, policies)
    return Transition(
        applied=True,
        note="details updated",
        clock=replace(clock, severity=severity, snapshot_at=at),
        take_snapshot=True,
    )


def _lifecycle(clock: IssueClock, event: IssueEvent, policies: PolicyFile) -> Transition:
    at = event.occurred_at
    if at < clock.lifecycle_at:
        return _ignored(
            clock, f"older than the last lifecycle event ({clock.lifecycle_at.isoformat()})"
        )
    kind = event.type
    if kind in (EventType.ACKNOWLEDGED, EventType.RESPONDED):
        if clock.lifecycle is not Lifecycle.OPEN:
            return _ignored(clock, f"issue is already {clock.lifecycle}")
        verb = (
            "acknowledged"
            if kind is EventType.ACKNOWLEDGED
            else "responded to (counts as acknowledged)"
        )
        return Transition(
            applied=True,
            note=verb,
            clock=replace(clock, lifecycle=Lifecycle.ACKNOWLEDGED, lifecycle_at=at),
            cancel=Cancel.ACKNOWLEDGE,
        )
    if kind is EventType.RESOLVED:
        if clock.lifecycle is Lifecycle.RESOLVED:
            return _ignored(clock, "issue is already resolved")
        return Transition(
            applied=True,
            note="resolved",
            clock=replace(clock, lifecycle=Lifecycle.RESOLVED, lifecycle_at=at),
            cancel=Cancel.ALL,
            notify=(NotificationKind.RESOLVED,),
        )
    if kind is not EventType.REOPENED:
        return _ignored(clock, f"{kind} is not handled yet")
    # reopened: also when the issue looks open, because its resolve may still be in flight
    policy = policies.match(clock.severity, event.source, event.issue.labels)
    new = replace(
        clock,
        lifecycle=Lifecycle.OPEN,
        policy_name=policy.name,
        tier_index=0,
        clock_version=clock.clock_version + 1,
        cycle_started_at=at,
        lifecycle_at=at,
    )
    return Transition(
        applied=True,
        note="reopened: the clock starts again at the first tier",
        clock=new,
        cancel=Cancel.ALL,
        arm=tuple(plan(policy, at, 0, Lifecycle.OPEN)),
        notify=(NotificationKind.ASSIGNED,),
    )


def apply_event(clock: IssueClock | None, event: IssueEvent, policies: PolicyFile) -> Transition:
    """Decide what `event` does to an issue whose clock is `clock` (None: never seen)."""
    if clock is None:
        if event.type is not EventType.OPENED:
            raise UnknownIssue(
                f"unknown issue {event.issue_key!r}: {event.type} arrived before issue.opened"
            )
        return _open(event, policies)
    if event.type in (EventType.OPENED, EventType.UPDATED, EventType.STATUS_CHANGED):
        return _update(clock, event, policies)
    return _lifecycle(clock, event, policies)
