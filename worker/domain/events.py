"""How each event changes an issue's SLA clocks. Pure: every input is passed in.

Ordering: an issue remembers the time of its last lifecycle event (opened, acknowledged,
responded, resolved, reopened) and of its last snapshot. A lifecycle event older than the
former, or a snapshot older than the latter, is recorded and ignored, so late deliveries cannot
roll an issue back. A reopen that overtakes its resolve restarts the clock, and the late resolve
is then older than the reopen and ignored.

Pauses: a target's clock stops while the issue's status is one of the target's `pause_on`, and
while the issue is snoozed (every target but resolve); see `worker.domain.planning`.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime

from schemas.events import EventType, IssueEvent
from schemas.messages import NotificationKind
from schemas.policy import Policy, PolicyFile
from worker.domain import wording
from worker.domain.cycles import comes_back, open_issue, opened_again, reopen, resolve
from worker.domain.firing import TOLERANCE
from worker.domain.issue import RESPONSES, IssueClock, Transition, ignored
from worker.domain.planning import (
    meet_targets,
    plans,
    policy_of,
    replan,
    settle,
)
from worker.domain.policy_match import facts_of
from worker.domain.sla import SNOOZE, Lifecycle, advance, elapsed, start
from worker.errors import UnknownIssue


def _replan(clock: IssueClock, event: IssueEvent, policies: PolicyFile) -> Transition:
    """A severity change: the new severity's policy, planned from the cycle's original start."""
    severity = event.issue.severity
    new = replace(clock, severity=severity, status=event.issue.status)
    t = replan(new, facts_of(event, severity), policies, event.occurred_at)
    assert t.clock is not None
    return replace(
        t,
        note=wording.severity_changed(clock.severity, severity, t.note),
        clock=replace(t.clock, snapshot_at=event.occurred_at),
        take_snapshot=True,
    )


def _update(clock: IssueClock, event: IssueEvent, policies: PolicyFile) -> Transition:
    at = event.occurred_at
    if at < clock.snapshot_at:
        return ignored(clock, wording.older_than("update", clock.snapshot_at))
    severity = event.issue.severity
    if severity != clock.severity and clock.lifecycle is not Lifecycle.RESOLVED:
        return _replan(clock, event, policies)
    policy = policy_of(clock, policies)
    new = replace(clock, severity=severity, snapshot_at=at, status=event.issue.status)
    new, changed, notes = settle(new, policy, at)
    return Transition(
        applied=True,
        note=wording.status_changed(clock.status, new.status)
        if new.status != clock.status
        else wording.UPDATED,
        clock=new,
        take_snapshot=True,
        cancel=frozenset(changed),
        arm=tuple(plans(new, policy, changed)),
        notes=tuple(notes),
    )


def _respond(clock: IssueClock, event: IssueEvent, policy: Policy) -> Transition:
    at = event.occurred_at
    names = RESPONSES if event.type is EventType.RESPONDED else ("acknowledge",)
    new, met = meet_targets(clock, policy, names, at)
    acknowledged = clock.lifecycle is Lifecycle.OPEN
    if not met and not acknowledged:
        return ignored(clock, wording.already(clock.lifecycle))
    new = replace(new, lifecycle=Lifecycle.ACKNOWLEDGED, lifecycle_at=at)
    return Transition(
        applied=True,
        note=wording.responded(event.type is EventType.ACKNOWLEDGED, sorted(met)),
        clock=new,
        cancel=frozenset(met),
    )


def _customer_replied(clock: IssueClock, event: IssueEvent, policy: Policy) -> Transition:
    target = policy.target("next_response")
    current = clock.target("next_response")
    first = clock.target("first_response")
    if target is None or current is None:
        return ignored(clock, wording.NO_NEXT_RESPONSE)
    if first is not None and first.live:
        return ignored(clock, wording.FIRST_STILL_DUE)
    if current.live:
        return ignored(clock, wording.NEXT_ALREADY_DUE)
    new = clock.with_target(start("next_response", event.occurred_at))
    new, _, notes = settle(new, policy, event.occurred_at)
    return Transition(
        applied=True,
        note=wording.CUSTOMER_REPLIED,
        clock=new,
        cancel=frozenset({"next_response"}),
        arm=tuple(plans(new, policy, {"next_response"})),
        notes=tuple(notes),
    )


def _escalate_now(clock: IssueClock, event: IssueEvent, policies: PolicyFile) -> Transition:
    policy = policy_of(clock, policies)
    at = event.occurred_at
    reason = ((NotificationKind.ESCALATED, wording.requested_by(event.source)),)
    for tc in clock.targets:
        target = policy.target(tc.target)
        if target is None or not tc.live or tc.step >= len(target.ladder) - 1:
            continue
        moved = advance(tc, target, tc.step + 1, elapsed(tc, target, at), at)
        new = replace(clock.with_target(moved), tier=target.ladder[moved.step].tier)
        return Transition(
            applied=True,
            note=wording.requested(clock.tier, new.tier, tc.target),
            clock=new,
            cancel=frozenset({tc.target}),
            arm=tuple(plans(new, policy, {tc.target})),
            notify=reason,
        )
    names = [t.name for t in policies.tiers]
    later = names[names.index(clock.tier) + 1 :] if clock.tier in names else []
    if not later:
        return ignored(clock, wording.last_tier(clock.tier))
    new = replace(clock, tier=later[0])
    return Transition(
        applied=True,
        note=wording.requested(clock.tier, new.tier),
        clock=new,
        notify=reason,
    )


def _snooze(clock: IssueClock, event: IssueEvent, policy: Policy) -> Transition:
    until = event.snooze_until
    assert until is not None  # the contract requires it for issue.snoozed
    if until <= event.occurred_at:
        return ignored(clock, wording.SNOOZE_NOT_AFTER)
    new, changed, notes = settle(replace(clock, snoozed_until=until), policy, event.occurred_at)
    names = frozenset({*changed, SNOOZE})
    return Transition(
        applied=True,
        note=wording.snoozed(until),
        clock=new,
        cancel=names,
        arm=tuple(plans(new, policy, names)),
        notes=tuple(notes),
    )


def end_snooze(clock: IssueClock, policies: PolicyFile, due: datetime) -> Transition:
    """A RESUME deadline fired: the snooze it was armed for ends and the clocks run again."""
    if clock.snoozed_until is None or abs(clock.snoozed_until - due) > TOLERANCE:
        return ignored(clock, wording.SNOOZE_GONE)
    if clock.lifecycle is Lifecycle.RESOLVED:
        return ignored(clock, wording.IS_RESOLVED)
    policy = policy_of(clock, policies)
    new, changed, notes = settle(replace(clock, snoozed_until=None), policy, due)
    return Transition(
        applied=True,
        note=wording.SNOOZE_ENDED,
        clock=new,
        cancel=frozenset(changed),
        arm=tuple(plans(new, policy, changed)),
        notes=tuple(notes),
    )


def apply_event(clock: IssueClock | None, event: IssueEvent, policies: PolicyFile) -> Transition:
    """Decide what `event` does to an issue whose clock is `clock` (None: never seen).

    `policies` is the policy version the issue is under (the current file for a new issue).
    """
    if clock is None:
        if event.type is not EventType.OPENED:
            raise UnknownIssue(
                f"unknown issue {event.issue_key!r}: {event.type} arrived before issue.opened"
            )
        return open_issue(event, policies)
    if event.type is EventType.OPENED and comes_back(clock, event):
        return opened_again(clock, event, policies)
    if event.type in (EventType.OPENED, EventType.UPDATED, EventType.STATUS_CHANGED):
        return _update(clock, event, policies)
    if event.occurred_at < clock.lifecycle_at:
        return ignored(clock, wording.older_than("lifecycle event", clock.lifecycle_at))
    if event.type is EventType.REOPENED:
        return reopen(clock, event, policies)
    if clock.lifecycle is Lifecycle.RESOLVED and event.type is not EventType.RESOLVED:
        return ignored(clock, wording.IS_RESOLVED)
    policy = policy_of(clock, policies)
    match event.type:
        case EventType.ACKNOWLEDGED | EventType.RESPONDED:
            return _respond(clock, event, policy)
        case EventType.CUSTOMER_REPLIED:
            return _customer_replied(clock, event, policy)
        case EventType.ESCALATION_REQUESTED:
            return _escalate_now(clock, event, policies)
        case EventType.SNOOZED:
            return _snooze(clock, event, policy)
        case _:
            return resolve(clock, event, policy)
