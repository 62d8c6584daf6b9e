"""What firing a deadline does. Pure: the fence and the decision, nothing written.

A firing counts only for the state it was armed for: the issue's clock cycle, a live target
clock, and for ladder deadlines the step and budget it was planned at. Anything else is `Stale`
and changes nothing. A firing is applied at its own due time in the issue's history, so a late
one gives the same timeline as a punctual one: a ladder moves one step per firing (the next step,
if already due, fires right after it), while reminders that fell due meanwhile collapse into one.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from schemas.durations import format_duration
from schemas.messages import NotificationKind
from schemas.policy import Target
from worker.domain.sla import (
    ClockState,
    DeadlineKind,
    DeadlineSpec,
    Lifecycle,
    TargetClock,
    advance,
    due_at,
    elapsed,
    ladder_marks_breach,
    skip_reminders,
    step_end,
)

TOLERANCE = timedelta(milliseconds=1)
LABELS = {
    "acknowledge": ("acknowledge", "acknowledge"),
    "first_response": ("first response", "respond"),
    "next_response": ("next response", "respond"),
    "resolve": ("resolve", "resolve"),
}


@dataclass(frozen=True, slots=True)
class FiringDeadline:
    """The deadline being fired, as it was armed."""

    kind: DeadlineKind
    target: str
    step: int
    budget: timedelta
    cycle: int
    due_at: datetime
    fraction: float | None = None


@dataclass(frozen=True, slots=True)
class Fired:
    """The firing counts: the target clock's new state and what to tell whom."""

    clock: TargetClock
    notify: NotificationKind
    message: str
    to_tier: str | None = None  # ESCALATE: the tier that takes the issue
    arm: tuple[DeadlineSpec, ...] = ()


@dataclass(frozen=True, slots=True)
class Stale:
    """The issue moved on since the deadline was armed: do nothing."""

    reason: str


Decision = Fired | Stale


def label(target: str) -> str:
    """How people call a target: `first response`."""
    return LABELS.get(target, (target, target))[0]


def _at(value: datetime | None) -> str:
    return value.isoformat(timespec="seconds") if value else "(paused)"


def _next(clock: TargetClock, target: Target, kind: DeadlineKind) -> DeadlineSpec:
    """The ladder deadline a running clock arms after it moved: the end of its holding step."""
    budget = step_end(clock, target)
    due = due_at(clock, target, budget)
    assert due is not None  # the clock is running
    return DeadlineSpec(kind, clock.target, clock.step, budget, due)


def decide(
    lifecycle: Lifecycle,
    cycle: int,
    clock: TargetClock | None,
    target: Target | None,
    deadline: FiringDeadline,
    now: datetime,
) -> Decision:
    """What firing `deadline` does to the issue's `clock` of its target."""
    if deadline.cycle != cycle:
        return Stale(f"armed for clock cycle {deadline.cycle}, issue is on {cycle}")
    if lifecycle is Lifecycle.RESOLVED:
        return Stale("issue is resolved")
    if clock is None or target is None:
        return Stale(f"the policy no longer has a {label(deadline.target)} target")
    if clock.state is not ClockState.RUNNING:
        return Stale(f"the {label(deadline.target)} clock is {clock.state}")
    name, verb = LABELS.get(deadline.target, (deadline.target, deadline.target))
    if deadline.kind is DeadlineKind.WARN:
        fraction = deadline.fraction or 0.0
        if fraction in clock.warned:
            return Stale(f"the {fraction:.0%} warning was sent in this cycle")
        breach = due_at(clock, target, target.target_time)
        return Fired(
            replace(clock, warned=(*clock.warned, fraction)),
            NotificationKind.WARNING,
            f"{fraction:.0%} of the {name} time ({format_duration(target.target_time)}) has "
            f"passed; it breaches at {_at(breach)}",
        )
    if deadline.kind is DeadlineKind.BREACH:
        if clock.breached:
            return Stale(f"the {name} breach was reported in this cycle")
        return Fired(
            replace(clock, breached=True),
            NotificationKind.BREACH,
            f"breached the {name} target of {format_duration(target.target_time)}",
        )
    if not target.ladder or deadline.step != clock.step:
        return Stale(f"armed for ladder step {deadline.step}, the clock is at {clock.step}")
    if abs(deadline.budget - step_end(clock, target)) > TOLERANCE:
        return Stale("the ladder was re-planned since this deadline was armed")
    last = len(target.ladder) - 1
    carries_breach = ladder_marks_breach(clock, target) and not clock.breached
    breach_note = f"; the {name} target is breached" if carries_breach else ""
    holder = target.ladder[clock.step].tier
    spent = elapsed(clock, target, now)
    if deadline.kind is DeadlineKind.ESCALATE and clock.step < last:
        # One step at a time, each at its own due time: a late firing gives the same history
        # as a punctual one (the next step, if already due, is armed in the past and fires next).
        to = clock.step + 1
        moved = advance(clock, target, to, deadline.budget, now)
        moved = replace(moved, breached=clock.breached or carries_breach)
        tier = target.ladder[to].tier
        kind = DeadlineKind.ESCALATE if to < last else DeadlineKind.REMIND
        return Fired(
            moved,
            NotificationKind.ESCALATED,
            f"{holder} did not {verb} within "
            f"{format_duration(target.ladder[clock.step].within)}: escalated to {tier}"
            f"{breach_note}",
            to_tier=tier,
            arm=(_next(moved, target, kind),),
        )
    reminded = replace(
        clock, reminded=clock.reminded + 1, breached=clock.breached or carries_breach
    )
    reminded = skip_reminders(reminded, target, spent)
    following = _next(reminded, target, DeadlineKind.REMIND)
    return Fired(
        reminded,
        NotificationKind.REMINDER,
        f"{holder} still has not {verb}d ({name}){breach_note}; "
        f"next reminder at {_at(following.due_at)}",
        arm=(following,),
    )
