"""How each event changes an issue's SLA clocks. Pure: every input is passed in.

Ordering: an issue remembers the time of its last lifecycle event (opened, acknowledged,
responded, resolved, reopened) and of its last snapshot. A lifecycle event older than the
former, or a snapshot older than the latter, is recorded and ignored, so late deliveries cannot
roll an issue back. A reopen that overtakes its resolve restarts the clock, and the late resolve
is then older than the reopen and ignored.

Pauses: a target's clock stops while the issue's status is one of the target's `pause_on`, and
while the issue is snoozed (every target but resolve). Whenever a clock pauses or resumes, its
deadlines are cancelled and planned again from the time it has left.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime

from schemas.durations import format_duration
from schemas.events import EventType, IssueEvent, Severity
from schemas.messages import NotificationKind
from schemas.policy import TARGET_NAMES, IssueFacts, Policy, PolicyFile, Target
from worker.domain.firing import TOLERANCE, label
from worker.domain.policy_match import facts_of, match_policy
from worker.domain.sla import (
    SNOOZE,
    ZERO,
    ClockState,
    DeadlineKind,
    DeadlineSpec,
    Lifecycle,
    TargetClock,
    advance,
    elapsed,
    meet,
    pause,
    plan,
    replan_step,
    resume,
    start,
)
from worker.errors import UnknownIssue

EVERYTHING = frozenset((*TARGET_NAMES, SNOOZE))
RESPONSES = ("acknowledge", "first_response", "next_response")


@dataclass(frozen=True, slots=True)
class IssueClock:
    """The part of an issue the SLA rules read and write."""

    lifecycle: Lifecycle
    severity: Severity
    policy_name: str
    tier: str
    clock_version: int
    cycle_started_at: datetime
    lifecycle_at: datetime
    snapshot_at: datetime
    status: str = "open"
    snoozed_until: datetime | None = None
    targets: tuple[TargetClock, ...] = ()

    def target(self, name: str) -> TargetClock | None:
        """The clock of target `name` in this cycle, if the policy has that target."""
        return next((t for t in self.targets if t.target == name), None)

    def with_target(self, clock: TargetClock) -> IssueClock:
        """This clock with one target's clock replaced."""
        return replace(
            self,
            targets=tuple(clock if t.target == clock.target else t for t in self.targets),
        )


@dataclass(frozen=True, slots=True)
class Transition:
    """The outcome of one event: the new clock and the effects to write with it."""

    applied: bool
    note: str
    clock: IssueClock | None
    take_snapshot: bool = False
    cancel: frozenset[str] = frozenset()  # targets (and `snooze`) whose armed deadlines go
    arm: tuple[DeadlineSpec, ...] = ()
    notify: tuple[tuple[NotificationKind, str], ...] = ()
    notes: tuple[str, ...] = ()  # more lines for the timeline: pauses, resumes


def _ignored(clock: IssueClock | None, note: str) -> Transition:
    return Transition(applied=False, note=note, clock=clock)


def _settle(
    clock: IssueClock, policy: Policy, at: datetime
) -> tuple[IssueClock, set[str], list[str]]:
    """Pause or resume each live clock as the issue's status and snooze say; what changed."""
    changed: set[str] = set()
    notes: list[str] = []
    for tc in clock.targets:
        target = policy.target(tc.target)
        if target is None or not tc.live:
            continue
        held = target.pauses(clock.status) or (
            clock.snoozed_until is not None and tc.target != "resolve"
        )
        why = f"status {clock.status!r}" if target.pauses(clock.status) else "snoozed"
        if held and tc.state is ClockState.RUNNING:
            paused = pause(tc, target, at)
            clock = clock.with_target(paused)
            changed.add(tc.target)
            notes.append(f"{label(tc.target)} clock paused ({why}) with {_left(paused, target)}")
        elif not held and tc.state is ClockState.PAUSED:
            clock = clock.with_target(resume(tc, at))
            changed.add(tc.target)
            notes.append(f"{label(tc.target)} clock resumed with {_left(tc, target)}")
    return clock, changed, notes


def _left(tc: TargetClock, target: Target) -> str:
    left = target.target_time - tc.spent
    return f"{format_duration(left)} left" if left > ZERO else "its target already passed"


def _plans(
    clock: IssueClock, policy: Policy, names: set[str] | frozenset[str]
) -> list[DeadlineSpec]:
    """The deadlines of the named targets (and of a snooze), as the clock now stands."""
    specs: list[DeadlineSpec] = []
    for tc in clock.targets:
        target = policy.target(tc.target)
        if tc.target in names and target is not None:
            specs += plan(tc, target)
    if SNOOZE in names and clock.snoozed_until is not None:
        specs.append(DeadlineSpec(DeadlineKind.RESUME, SNOOZE, 0, ZERO, clock.snoozed_until))
    return specs


def _fresh_targets(policy: Policy, at: datetime) -> tuple[TargetClock, ...]:
    """Clocks for a new cycle: every target starts now, but next response waits for a customer."""
    return tuple(
        TargetClock(name) if name == "next_response" else start(name, at)
        for name, _ in policy.targets()
    )


def _open(event: IssueEvent, policies: PolicyFile) -> Transition:
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
        targets=_fresh_targets(policy, at),
    )
    clock, _, notes = _settle(clock, policy, at)
    return Transition(
        applied=True,
        note=f"opened as {event.issue.severity} under policy {policy.name}",
        clock=clock,
        take_snapshot=True,
        arm=tuple(_plans(clock, policy, EVERYTHING)),
        notify=((NotificationKind.ASSIGNED, f"opened under policy {policy.name}"),),
        notes=tuple(notes),
    )


def _replan(clock: IssueClock, event: IssueEvent, policies: PolicyFile) -> Transition:
    """A severity change: the new severity's policy, planned from the cycle's original start."""
    severity = event.issue.severity
    new = replace(clock, severity=severity, status=event.issue.status)
    t = replan(new, facts_of(event, severity), policies, event.occurred_at)
    assert t.clock is not None
    return replace(
        t,
        note=f"severity {clock.severity} → {severity}: {t.note}",
        clock=replace(t.clock, snapshot_at=event.occurred_at),
        take_snapshot=True,
    )


def replan(clock: IssueClock, facts: IssueFacts, policies: PolicyFile, at: datetime) -> Transition:
    """Match the issue afresh in `policies` and plan every target from the cycle's start.

    Each target keeps what its clock counted (pauses included), its warnings and breach of this
    cycle, and its ladder step; its ladder is put back on the new schedule, so a deadline the
    new plan puts in the past fires at once, and once. Used for a severity change and for
    `escalator policy apply --replan`.
    """
    policy = match_policy(policies, facts)
    targets = []
    for name, target in policy.targets():
        old = clock.target(name)
        if old is not None and old.state is not ClockState.IDLE:
            targets.append(replan_step(old, target))
        elif name == "next_response":
            targets.append(old or TargetClock(name))
        elif name == "acknowledge" and clock.lifecycle is not Lifecycle.OPEN:
            targets.append(TargetClock(name, ClockState.MET, started_at=clock.cycle_started_at))
        else:
            targets.append(start(name, clock.cycle_started_at))
    new = replace(
        clock,
        policy_name=policy.name,
        clock_version=clock.clock_version + 1,
        targets=tuple(targets),
    )
    new, _, notes = _settle(new, policy, at)
    return Transition(
        applied=True,
        note=f"re-planned under policy {policy.name} "
        f"from {clock.cycle_started_at.isoformat(timespec='seconds')}",
        clock=new,
        cancel=EVERYTHING,
        arm=tuple(_plans(new, policy, EVERYTHING)),
        notes=tuple(notes),
    )


def _update(clock: IssueClock, event: IssueEvent, policies: PolicyFile) -> Transition:
    at = event.occurred_at
    if at < clock.snapshot_at:
        return _ignored(clock, f"older than the last update ({clock.snapshot_at.isoformat()})")
    severity = event.issue.severity
    if severity != clock.severity and clock.lifecycle is not Lifecycle.RESOLVED:
        return _replan(clock, event, policies)
    policy = _policy(clock, policies)
    new = replace(clock, severity=severity, snapshot_at=at, status=event.issue.status)
    new, changed, notes = _settle(new, policy, at)
    status_note = f"status {clock.status!r} → {new.status!r}" if new.status != clock.status else ""
    return Transition(
        applied=True,
        note=status_note or "details updated",
        clock=new,
        take_snapshot=True,
        cancel=frozenset(changed),
        arm=tuple(_plans(new, policy, changed)),
        notes=tuple(notes),
    )


def _policy(clock: IssueClock, policies: PolicyFile) -> Policy:
    policy = policies.policy(clock.policy_name)
    if policy is None:
        raise UnknownIssue(f"policy {clock.policy_name!r} is not in the issue's policy version")
    return policy


def _meet(
    clock: IssueClock, policy: Policy, names: tuple[str, ...], at: datetime
) -> tuple[IssueClock, set[str]]:
    met: set[str] = set()
    for name in names:
        tc, target = clock.target(name), policy.target(name)
        if tc is not None and target is not None and tc.live:
            clock = clock.with_target(meet(tc, target, at))
            met.add(name)
    return clock, met


def _respond(clock: IssueClock, event: IssueEvent, policy: Policy) -> Transition:
    at = event.occurred_at
    names = RESPONSES if event.type is EventType.RESPONDED else ("acknowledge",)
    new, met = _meet(clock, policy, names, at)
    acknowledged = clock.lifecycle is Lifecycle.OPEN
    if not met and not acknowledged:
        return _ignored(clock, f"issue is already {clock.lifecycle}")
    new = replace(new, lifecycle=Lifecycle.ACKNOWLEDGED, lifecycle_at=at)
    what = ", ".join(label(n) for n in sorted(met)) or "nothing new"
    verb = "acknowledged" if event.type is EventType.ACKNOWLEDGED else "responded to"
    return Transition(
        applied=True,
        note=f"{verb}: met {what}",
        clock=new,
        cancel=frozenset(met),
    )


def _customer_replied(clock: IssueClock, event: IssueEvent, policy: Policy) -> Transition:
    target = policy.target("next_response")
    current = clock.target("next_response")
    first = clock.target("first_response")
    if target is None or current is None:
        return _ignored(clock, "recorded; the policy has no next-response target")
    if first is not None and first.live:
        return _ignored(clock, "recorded; the first response is still due")
    if current.live:
        return _ignored(clock, "recorded; a next response is already due")
    new = clock.with_target(start("next_response", event.occurred_at))
    new, _, notes = _settle(new, policy, event.occurred_at)
    return Transition(
        applied=True,
        note="customer update: next response due",
        clock=new,
        cancel=frozenset({"next_response"}),
        arm=tuple(_plans(new, policy, {"next_response"})),
        notes=tuple(notes),
    )


def _escalate_now(clock: IssueClock, event: IssueEvent, policies: PolicyFile) -> Transition:
    policy = _policy(clock, policies)
    at = event.occurred_at
    for tc in clock.targets:
        target = policy.target(tc.target)
        if target is None or not tc.live or tc.step >= len(target.ladder) - 1:
            continue
        moved = advance(tc, target, tc.step + 1, elapsed(tc, target, at), at)
        new = replace(clock.with_target(moved), tier=target.ladder[moved.step].tier)
        return Transition(
            applied=True,
            note=f"escalation requested: {clock.tier} → {new.tier} ({label(tc.target)} ladder)",
            clock=new,
            cancel=frozenset({tc.target}),
            arm=tuple(_plans(new, policy, {tc.target})),
            notify=((NotificationKind.ESCALATED, f"escalation requested by {event.source}"),),
        )
    names = [t.name for t in policies.tiers]
    later = names[names.index(clock.tier) + 1 :] if clock.tier in names else []
    if not later:
        return _ignored(clock, f"escalation requested, but {clock.tier} is the last tier")
    new = replace(clock, tier=later[0])
    return Transition(
        applied=True,
        note=f"escalation requested: {clock.tier} → {new.tier}",
        clock=new,
        notify=((NotificationKind.ESCALATED, f"escalation requested by {event.source}"),),
    )


def _snooze(clock: IssueClock, event: IssueEvent, policy: Policy) -> Transition:
    until = event.snooze_until
    assert until is not None  # the contract requires it for issue.snoozed
    if until <= event.occurred_at:
        return _ignored(clock, "snooze_until is not after the event")
    new, changed, notes = _settle(replace(clock, snoozed_until=until), policy, event.occurred_at)
    names = frozenset({*changed, SNOOZE})
    return Transition(
        applied=True,
        note=f"snoozed until {until.isoformat(timespec='seconds')}",
        clock=new,
        cancel=names,
        arm=tuple(_plans(new, policy, names)),
        notes=tuple(notes),
    )


def end_snooze(clock: IssueClock, policies: PolicyFile, due: datetime) -> Transition:
    """A RESUME deadline fired: the snooze it was armed for ends and the clocks run again."""
    if clock.snoozed_until is None or abs(clock.snoozed_until - due) > TOLERANCE:
        return _ignored(clock, "that snooze was replaced or ended")
    if clock.lifecycle is Lifecycle.RESOLVED:
        return _ignored(clock, "issue is resolved")
    policy = _policy(clock, policies)
    new, changed, notes = _settle(replace(clock, snoozed_until=None), policy, due)
    return Transition(
        applied=True,
        note="snooze ended",
        clock=new,
        cancel=frozenset(changed),
        arm=tuple(_plans(new, policy, changed)),
        notes=tuple(notes),
    )


def _resolve(clock: IssueClock, event: IssueEvent, policy: Policy) -> Transition:
    at = event.occurred_at
    if clock.lifecycle is Lifecycle.RESOLVED:
        if at <= clock.lifecycle_at:
            return _ignored(clock, "issue is already resolved")
        # a later resolution (the alert ended again): remembered, so that an `issue.opened`
        # older than it, arriving late, does not reopen the issue
        return Transition(
            applied=True,
            note=f"already resolved; resolved again at {at.isoformat()}",
            clock=replace(clock, lifecycle_at=at),
        )
    new, _ = _meet(clock, policy, ("resolve",), at)
    stopped = tuple(
        replace(tc, state=ClockState.IDLE, running_since=None) if tc.live else tc
        for tc in new.targets
    )
    new = replace(
        new, lifecycle=Lifecycle.RESOLVED, lifecycle_at=at, snoozed_until=None, targets=stopped
    )
    return Transition(
        applied=True,
        note="resolved",
        clock=new,
        cancel=EVERYTHING,
        notify=((NotificationKind.RESOLVED, "resolved"),),
    )


def _reopen(clock: IssueClock, event: IssueEvent, policies: PolicyFile) -> Transition:
    # Also when the issue looks open, because its resolve may still be in flight.
    at = event.occurred_at
    policy = match_policy(policies, facts_of(event, clock.severity))
    fresh = []
    for tc in _fresh_targets(policy, at):
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
    new, _, notes = _settle(new, policy, at)
    return Transition(
        applied=True,
        note="reopened: the clocks start again at the first tier",
        clock=new,
        cancel=EVERYTHING,
        arm=tuple(_plans(new, policy, EVERYTHING)),
        notify=((NotificationKind.ASSIGNED, "reopened"),),
        notes=tuple(notes),
    )


def _opened_again(clock: IssueClock, event: IssueEvent, policies: PolicyFile) -> Transition:
    """`issue.opened` for a resolved issue, newer than its resolution: it came back (an alert
    firing again after it resolved). It reopens, at the severity and status it now has."""
    newest = event.occurred_at >= clock.snapshot_at  # else a later update's details stay
    now = replace(clock, severity=event.issue.severity, status=event.issue.status)
    if newest:
        now = replace(now, snapshot_at=event.occurred_at)
    reopened = _reopen(now, event, policies)
    return replace(
        reopened,
        note="opened again after it was resolved: the clocks start again at the first tier",
        take_snapshot=newest,
        notify=((NotificationKind.ASSIGNED, "opened again after it was resolved"),),
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


def apply_event(clock: IssueClock | None, event: IssueEvent, policies: PolicyFile) -> Transition:
    """Decide what `event` does to an issue whose clock is `clock` (None: never seen).

    `policies` is the policy version the issue is under (the current file for a new issue).
    """
    if clock is None:
        if event.type is not EventType.OPENED:
            raise UnknownIssue(
                f"unknown issue {event.issue_key!r}: {event.type} arrived before issue.opened"
            )
        return _open(event, policies)
    if event.type is EventType.OPENED and comes_back(clock, event):
        return _opened_again(clock, event, policies)
    if event.type in (EventType.OPENED, EventType.UPDATED, EventType.STATUS_CHANGED):
        return _update(clock, event, policies)
    if event.occurred_at < clock.lifecycle_at:
        return _ignored(
            clock, f"older than the last lifecycle event ({clock.lifecycle_at.isoformat()})"
        )
    if event.type is EventType.REOPENED:
        return _reopen(clock, event, policies)
    if clock.lifecycle is Lifecycle.RESOLVED and event.type is not EventType.RESOLVED:
        return _ignored(clock, "issue is resolved")
    policy = _policy(clock, policies)
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
            return _resolve(clock, event, policy)
