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

from schemas.messages import NotificationKind
from schemas.policy import Target
from worker.domain import wording
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
    name = deadline.target
    if deadline.cycle != cycle:
        return Stale(wording.stale_cycle(deadline.cycle, cycle))
    if lifecycle is Lifecycle.RESOLVED:
        return Stale(wording.IS_RESOLVED)
    if clock is None or target is None:
        return Stale(wording.no_target(name))
    if clock.state is not ClockState.RUNNING:
        return Stale(wording.clock_is(name, clock.state))
    if deadline.kind is DeadlineKind.WARN:
        fraction = deadline.fraction or 0.0
        if fraction in clock.warned:
            return Stale(wording.already_warned(fraction))
        breach = due_at(clock, target, target.target_time)
        return Fired(
            replace(clock, warned=(*clock.warned, fraction)),
            NotificationKind.WARNING,
            wording.warned(name, fraction, target.target_time, breach),
        )
    if deadline.kind is DeadlineKind.BREACH:
        if clock.breached:
            return Stale(wording.already_breached(name))
        return Fired(
            replace(clock, breached=True),
            NotificationKind.BREACH,
            wording.breached(name, target.target_time),
        )
    if not target.ladder or deadline.step != clock.step:
        return Stale(wording.stale_step(deadline.step, clock.step))
    if abs(deadline.budget - step_end(clock, target)) > TOLERANCE:
        return Stale(wording.REPLANNED)
    last = len(target.ladder) - 1
    carries_breach = ladder_marks_breach(clock, target) and not clock.breached
    breach_note = wording.breach_carried(name) if carries_breach else ""
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
            wording.escalated(name, holder, target.ladder[clock.step].within, tier, breach_note),
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
        wording.reminded(name, holder, following.due_at, breach_note),
        arm=(following,),
    )
