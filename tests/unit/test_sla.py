"""Target clocks and firing decisions: pure arithmetic and the fence, hand-worked."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from schemas.messages import NotificationKind
from schemas.policy import Target
from worker.domain.firing import Fired, FiringDeadline, Stale, decide
from worker.domain.sla import (
    ClockState,
    DeadlineKind,
    DeadlineSpec,
    Lifecycle,
    TargetClock,
    elapsed,
    meet,
    pause,
    plan,
    resume,
    start,
)

T0 = datetime(2026, 3, 4, 10, 0, tzinfo=UTC)


def m(n: float) -> timedelta:
    return timedelta(minutes=n)


def target(**fields: Any) -> Target:
    """An acknowledge-style target; defaults: ladder L1 5m, L2 10m, L3 15m, renotify 15m."""
    fields.setdefault(
        "ladder",
        [
            {"tier": "L1", "within": "5m"},
            {"tier": "L2", "within": "10m"},
            {"tier": "L3", "within": "15m"},
        ],
    )
    fields.setdefault("renotify_every", "15m")
    return Target.model_validate(fields)


def fire(
    clock: TargetClock, tgt: Target, spec: DeadlineSpec, now: datetime, cycle: int = 1
) -> Fired | Stale:
    """Fire `spec` as armed for cycle 1 against `clock`."""
    deadline = FiringDeadline(
        spec.kind, spec.target, spec.step, spec.budget, 1, spec.due_at, spec.fraction
    )
    return decide(Lifecycle.OPEN, cycle, clock, tgt, deadline, now)


def only(specs: list[DeadlineSpec], kind: DeadlineKind) -> DeadlineSpec:
    (found,) = [s for s in specs if s.kind is kind]
    return found


def test_a_ladder_without_within_breaches_with_its_first_step() -> None:
    """No `within`: the first step's 5 min is the target; its escalation carries the breach."""
    specs = plan(start("acknowledge", T0), target())
    assert [(s.kind, s.due_at) for s in specs] == [(DeadlineKind.ESCALATE, T0 + m(5))]


def test_warnings_and_an_explicit_target_arm_their_own_deadlines() -> None:
    """warn_at [0.5, 0.8] of a 20 min target: warnings at 10 and 16 min, breach at 20."""
    specs = plan(
        start("resolve", T0), Target.model_validate({"within": "20m", "warn_at": [0.8, 0.5]})
    )
    assert [(s.kind, s.due_at, s.fraction) for s in specs] == [
        (DeadlineKind.WARN, T0 + m(10), 0.5),
        (DeadlineKind.WARN, T0 + m(16), 0.8),
        (DeadlineKind.BREACH, T0 + m(20), None),
    ]


def test_a_pause_moves_every_deadline_by_the_paused_time() -> None:
    """Paused from 2 to 32 minutes: the 5-minute deadline falls at 35 minutes."""
    tgt = target()
    clock = pause(start("acknowledge", T0), tgt, T0 + m(2))
    assert clock.state is ClockState.PAUSED and clock.spent == m(2)
    assert plan(clock, tgt) == []  # nothing is armed while paused
    clock = resume(clock, T0 + m(32))
    assert only(plan(clock, tgt), DeadlineKind.ESCALATE).due_at == T0 + m(35)
    assert elapsed(clock, tgt, T0 + m(34)) == m(4)


def test_meeting_a_target_stops_its_clock() -> None:
    """Met at 3 minutes: the clock stays at 3 minutes and arms nothing."""
    tgt = target()
    clock = meet(start("acknowledge", T0), tgt, T0 + m(3))
    assert (clock.state, clock.spent, plan(clock, tgt)) == (ClockState.MET, m(3), [])


def test_escalation_counts_the_next_step_from_the_planned_due_time() -> None:
    """Fired 40 s late, L1 → L2 still falls due at 5 + 10 = 15 minutes, and it is the breach."""
    tgt = target()
    clock = start("acknowledge", T0)
    spec = only(plan(clock, tgt), DeadlineKind.ESCALATE)
    fired = fire(clock, tgt, spec, T0 + m(5) + timedelta(seconds=40))
    assert isinstance(fired, Fired)
    assert fired.to_tier == "L2" and fired.notify is NotificationKind.ESCALATED
    assert "target is breached" in fired.message and fired.clock.breached
    assert [(s.kind, s.step, s.due_at) for s in fired.arm] == [
        (DeadlineKind.ESCALATE, 1, T0 + m(15))
    ]


def test_a_very_late_escalation_moves_one_step_and_the_next_is_due_at_once() -> None:
    """Fired at 20 min (L2's 15-min deadline passed too): one step to L2, whose own deadline is
    armed at 15 min, in the past, so it fires next: the same history as punctual firings."""
    tgt = target()
    clock = start("acknowledge", T0)
    fired = fire(clock, tgt, only(plan(clock, tgt), DeadlineKind.ESCALATE), T0 + m(20))
    assert isinstance(fired, Fired) and fired.to_tier == "L2"
    assert fired.clock.step == 1
    [following] = fired.arm
    assert (following.kind, following.due_at) == (DeadlineKind.ESCALATE, T0 + m(15))
    then = fire(fired.clock, tgt, following, T0 + m(20))
    assert isinstance(then, Fired) and then.to_tier == "L3" and then.clock.step == 2
    assert [(s.kind, s.due_at) for s in then.arm] == [(DeadlineKind.REMIND, T0 + m(30))]


def test_the_last_tier_is_reminded_and_a_late_reminder_does_not_storm() -> None:
    """At L3 (due 30 min), a reminder fired at 62 min skips the missed 45 min one: next at 75."""
    tgt = target()
    clock = replace(start("acknowledge", T0), step=2, step_base=m(15))
    spec = only(plan(clock, tgt), DeadlineKind.REMIND)
    assert spec.due_at == T0 + m(30)
    fired = fire(clock, tgt, spec, T0 + m(62))
    assert isinstance(fired, Fired) and fired.notify is NotificationKind.REMINDER
    assert fired.clock.reminded == 3  # 30, 45 and 60 are behind it
    assert [s.due_at for s in fired.arm] == [T0 + m(75)]


def test_a_warning_and_a_breach_each_fire_once_per_cycle() -> None:
    """The same warning or breach firing twice: the second is stale."""
    tgt = Target.model_validate({"within": "20m", "warn_at": [0.5]})
    clock = start("resolve", T0)
    warn, breach = plan(clock, tgt)
    warned = fire(clock, tgt, warn, T0 + m(10))
    assert isinstance(warned, Fired) and warned.notify is NotificationKind.WARNING
    assert "50% of the resolve time (20m) has passed" in warned.message
    assert isinstance(fire(warned.clock, tgt, warn, T0 + m(11)), Stale)
    breached = fire(warned.clock, tgt, breach, T0 + m(20))
    assert isinstance(breached, Fired) and breached.notify is NotificationKind.BREACH
    assert isinstance(fire(breached.clock, tgt, breach, T0 + m(21)), Stale)


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (lambda c: replace(c, state=ClockState.MET), "clock is met"),
        (lambda c: replace(c, state=ClockState.PAUSED, running_since=None), "clock is paused"),
        (lambda c: replace(c, step=1, step_base=m(5)), "ladder step 0"),
        (lambda c: replace(c, step_base=m(1)), "re-planned"),
    ],
)
def test_a_deadline_for_a_state_the_clock_left_is_stale(change: Any, reason: str) -> None:
    """Met, paused, moved on or re-planned since arming: the firing changes nothing."""
    tgt = target()
    clock = start("acknowledge", T0)
    spec = only(plan(clock, tgt), DeadlineKind.ESCALATE)
    result = fire(change(clock), tgt, spec, T0 + m(5))
    assert isinstance(result, Stale) and reason in result.reason


def test_a_deadline_of_an_older_cycle_or_a_resolved_issue_is_stale() -> None:
    """Reopened (cycle 2) or resolved: a cycle-1 deadline does nothing."""
    tgt = target()
    clock = start("acknowledge", T0)
    spec = only(plan(clock, tgt), DeadlineKind.ESCALATE)
    assert isinstance(fire(clock, tgt, spec, T0 + m(5), cycle=2), Stale)
    deadline = FiringDeadline(spec.kind, spec.target, 0, spec.budget, 1, spec.due_at)
    assert isinstance(decide(Lifecycle.RESOLVED, 1, clock, tgt, deadline, T0 + m(5)), Stale)


def test_target_needs_a_time_and_sane_warnings() -> None:
    """A target with neither `within` nor a ladder, or a warning outside (0, 1), is refused."""
    with pytest.raises(ValueError, match="needs `within`, a `ladder`"):
        Target.model_validate({"calendar": "24x7"})
    with pytest.raises(ValueError, match="between 0 and 1"):
        Target.model_validate({"within": "1h", "warn_at": [1.5]})
