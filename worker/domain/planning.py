"""Settling an issue's clocks and planning their deadlines. Pure.

Settling pauses each live target clock that the issue's status or snooze now holds and resumes
each that nothing holds any more (a snooze holds every target but resolve). Planning lists the
deadlines a clock should have armed as it now stands; whenever a clock pauses or resumes, its
deadlines are cancelled and planned again from the time it has left. Re-planning puts a whole
issue under the policy it now matches, from its cycle's start.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime

from schemas.policy import IssueFacts, Policy, PolicyFile
from worker.domain import wording
from worker.domain.issue import EVERYTHING, IssueClock, Transition
from worker.domain.policy_match import match_policy
from worker.domain.sla import (
    SNOOZE,
    ZERO,
    ClockState,
    DeadlineKind,
    DeadlineSpec,
    Lifecycle,
    TargetClock,
    meet,
    pause,
    plan,
    replan_step,
    resume,
    start,
)
from worker.errors import UnknownIssue


def settle(
    clock: IssueClock, policy: Policy, at: datetime
) -> tuple[IssueClock, set[str], list[str]]:
    """Pause or resume each live clock as the issue's status and snooze say; what changed, and
    a timeline note for each change."""
    changed: set[str] = set()
    notes: list[str] = []
    for tc in clock.targets:
        target = policy.target(tc.target)
        if target is None or not tc.live:
            continue
        by_status = target.pauses(clock.status)
        held = by_status or (clock.snoozed_until is not None and tc.target != "resolve")
        if held and tc.state is ClockState.RUNNING:
            paused = pause(tc, target, at)
            clock = clock.with_target(paused)
            changed.add(tc.target)
            status = clock.status if by_status else None
            notes.append(wording.paused(tc.target, status, target.target_time - paused.spent))
        elif not held and tc.state is ClockState.PAUSED:
            clock = clock.with_target(resume(tc, at))
            changed.add(tc.target)
            notes.append(wording.resumed(tc.target, target.target_time - tc.spent))
    return clock, changed, notes


def plans(
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


def fresh_targets(policy: Policy, at: datetime) -> tuple[TargetClock, ...]:
    """Clocks for a new cycle: every target starts now, but next response waits for a customer."""
    return tuple(
        TargetClock(name) if name == "next_response" else start(name, at)
        for name, _ in policy.targets()
    )


def policy_of(clock: IssueClock, policies: PolicyFile) -> Policy:
    """The policy the issue is under, from the policy version it is under."""
    policy = policies.policy(clock.policy_name)
    if policy is None:
        raise UnknownIssue(f"policy {clock.policy_name!r} is not in the issue's policy version")
    return policy


def meet_targets(
    clock: IssueClock, policy: Policy, names: tuple[str, ...], at: datetime
) -> tuple[IssueClock, set[str]]:
    """Meet each named target whose clock is live at `at`; the clock, and the targets met."""
    met: set[str] = set()
    for name in names:
        tc, target = clock.target(name), policy.target(name)
        if tc is not None and target is not None and tc.live:
            clock = clock.with_target(meet(tc, target, at))
            met.add(name)
    return clock, met


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
    new, _, notes = settle(new, policy, at)
    return Transition(
        applied=True,
        note=wording.replanned(policy.name, clock.cycle_started_at),
        clock=new,
        cancel=EVERYTHING,
        arm=tuple(plans(new, policy, EVERYTHING)),
        notes=tuple(notes),
    )
