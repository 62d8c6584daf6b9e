"""An issue's clock cycles: opening, resolving, reopening, and coming back. Pure.

A cycle starts when the issue opens, and again when it is reopened or comes back (an
`issue.opened` newer than its resolution: an alert firing again); each new cycle runs under the
policy the issue matches then, from the first tier. Resolving ends the cycle: every clock stops.
"""

from __future__ import annotations

from dataclasses import replace

from schemas.events import EventType, IssueEvent
from schemas.messages import NotificationKind
from schemas.policy import Policy, PolicyFile
from worker.domain import wording
from worker.domain.issue import EVERYTHING, IssueClock, Transition, ignored
from worker.domain.planning import fresh_targets, meet_targets, plans, settle
from worker.domain.policy_match import facts_of, match_policy
from worker.domain.sla import ClockState, Lifecycle


def open_issue(event: IssueEvent, policies: PolicyFile) -> Transition:
    """A new issue: the policy it matches, every target started, the first tier told."""
    policy = match_policy(policies, facts_of(event))
    at = event.occurred_at
    clock = IssueClock(
        Lifecycle.OPEN,
        event.issue.severity,
        policy.name,
        policies.first_tier(policy),
        1,
        at,
        at,
        at,
        status=event.issue.status,
        targets=fresh_targets(policy, at),
    )
    clock, _, notes = settle(clock, policy, at)
    return Transition(
        applied=True,
        note=wording.opened(event.issue.severity, policy.name),
        clock=clock,
        take_snapshot=True,
        arm=tuple(plans(clock, policy, EVERYTHING)),
        notify=((NotificationKind.ASSIGNED, wording.opened_reason(policy.name)),),
        notes=tuple(notes),
    )


def resolve(clock: IssueClock, event: IssueEvent, policy: Policy) -> Transition:
    """The issue is resolved: the resolve target is met and every other clock stops."""
    at = event.occurred_at
    if clock.lifecycle is Lifecycle.RESOLVED:
        if at <= clock.lifecycle_at:
            return ignored(clock, wording.ALREADY_RESOLVED)
        # a later resolution (the alert ended again): remembered, so that an `issue.opened`
        # older than it, arriving late, does not reopen the issue
        return Transition(
            applied=True,
            note=wording.resolved_again(at),
            clock=replace(clock, lifecycle_at=at),
        )
    new, _ = meet_targets(clock, policy, ("resolve",), at)
    stopped = tuple(
        replace(tc, state=ClockState.IDLE, running_since=None) if tc.live else tc
        for tc in new.targets
    )
    new = replace(
        new, lifecycle=Lifecycle.RESOLVED, lifecycle_at=at, snoozed_until=None, targets=stopped
    )
    return Transition(
        applied=True,
        note=wording.RESOLVED_NOTE,
        clock=new,
        cancel=EVERYTHING,
        notify=((NotificationKind.RESOLVED, wording.RESOLVED_NOTE),),
    )


def reopen(clock: IssueClock, event: IssueEvent, policies: PolicyFile) -> Transition:
    """A new cycle from the first tier; a first response already met stays met."""
    # Also when the issue looks open, because its resolve may still be in flight.
    at = event.occurred_at
    policy = match_policy(policies, facts_of(event, clock.severity))
    fresh = []
    for tc in fresh_targets(policy, at):
        old = clock.target(tc.target)
        keep = tc.target == "first_response" and old is not None and old.state is ClockState.MET
        fresh.append(old if keep and old is not None else tc)
    new = replace(
        clock,
        lifecycle=Lifecycle.OPEN,
        policy_name=policy.name,
        tier=policies.first_tier(policy),
        clock_version=clock.clock_version + 1,
        cycle_started_at=at,
        lifecycle_at=at,
        snoozed_until=None,
        targets=tuple(fresh),
    )
    new, _, notes = settle(new, policy, at)
    return Transition(
        applied=True,
        note=wording.REOPENED,
        clock=new,
        cancel=EVERYTHING,
        arm=tuple(plans(new, policy, EVERYTHING)),
        notify=((NotificationKind.ASSIGNED, wording.REOPENED_REASON),),
        notes=tuple(notes),
    )


def opened_again(clock: IssueClock, event: IssueEvent, policies: PolicyFile) -> Transition:
    """`issue.opened` for a resolved issue, newer than its resolution: it came back (an alert
    firing again after it resolved). It reopens, at the severity and status it now has."""
    newest = event.occurred_at >= clock.snapshot_at  # else a later update's details stay
    now = replace(clock, severity=event.issue.severity, status=event.issue.status)
    if newest:
        now = replace(now, snapshot_at=event.occurred_at)
    reopened = reopen(now, event, policies)
    return replace(
        reopened,
        note=wording.OPENED_AGAIN,
        take_snapshot=newest,
        notify=((NotificationKind.ASSIGNED, wording.OPENED_AGAIN_REASON),),
    )


def comes_back(clock: IssueClock, event: IssueEvent) -> bool:
    """Whether `event` starts a new cycle of a resolved issue: `issue.reopened`, or an
    `issue.opened` newer than the resolution (an alert firing again). The new cycle runs under
    the current policy file, as a new issue would."""
    if clock.lifecycle is not Lifecycle.RESOLVED:
        return False
    if event.type is EventType.REOPENED:
        return event.occurred_at >= clock.lifecycle_at
    return event.type is EventType.OPENED and event.occurred_at > clock.lifecycle_at
