"""SLA target clocks and the deadlines they arm. Pure: no I/O, no clock of its own.

Each target of a policy (acknowledge, first response, next response, resolve) has a clock of
its own on its own calendar. A clock counts *spent* time: business time while it runs, nothing
while it is paused (a pausing status, a snooze) and nothing once met. Every deadline is a point
on that count, its *budget*: a warning at a fraction of the target time, the breach at the
target time, and the ladder steps. While the clock runs, a budget becomes a wall-clock due time
with `calendar.add(running_since, budget - spent)`; pausing and resuming re-plans them all.

Ladder step `i` holds the issue for `ladder[i].within`, counted from `step_base`, the budget at
which the step began (when the step before it ended, or when someone escalated by hand). The last
step is reminded at its end and then every `renotify`.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import StrEnum
from functools import lru_cache

from schemas.calendar import CalendarSpec
from schemas.policy import Target
from worker.domain.calendar import ALWAYS_OPEN, Calendar, business_calendar

ZERO = timedelta()
EPSILON = timedelta(microseconds=1)


class Lifecycle(StrEnum):
    """Where an issue is in its life."""

    OPEN = "open"
    ACKNOWLEDGED = "acknowledged"
    RESOLVED = "resolved"


class ClockState(StrEnum):
    """Where one target's clock is."""

    IDLE = "idle"  # not started (next response before a customer update), or stopped
    RUNNING = "running"
    PAUSED = "paused"  # a pausing status or a snooze holds it
    MET = "met"


class DeadlineKind(StrEnum):
    """What happens when a deadline passes."""

    WARN = "warn"  # a fraction of the target time has passed
    BREACH = "breach"  # the target time has passed (when no ladder step marks it)
    ESCALATE = "escalate"  # a ladder step's time passed: the next tier takes the issue
    REMIND = "remind"  # the last tier still has not met the target
    RESUME = "resume"  # a snooze ends


SNOOZE = "snooze"  # the `target` of a RESUME deadline


@dataclass(frozen=True, slots=True)
class DeadlineSpec:
    """A deadline to arm: what it is, for which target and step, at which budget, and when."""

    kind: DeadlineKind
    target: str
    step: int
    budget: timedelta
    due_at: datetime
    fraction: float | None = None


@lru_cache(maxsize=256)
def _business(spec: CalendarSpec) -> Calendar:
    return business_calendar(spec)


def calendar_of(spec: CalendarSpec | None) -> Calendar:
    """The calendar a target's time runs on: 24x7 unless it names a business calendar."""
    return ALWAYS_OPEN if spec is None else _business(spec)


@dataclass(frozen=True, slots=True)
class TargetClock:
    """One target's clock for the issue's current cycle."""

    target: str
    state: ClockState = ClockState.IDLE
    started_at: datetime | None = None
    running_since: datetime | None = None  # set while RUNNING
    spent: timedelta = ZERO  # time counted before `running_since`
    step: int = 0  # the ladder step holding the issue
    step_base: timedelta = ZERO  # the budget at which `step` began
    reminded: int = 0  # reminders sent at the last step
    warned: tuple[float, ...] = ()
    breached: bool = False

    @property
    def live(self) -> bool:
        """Started and not met: running or paused."""
        return self.state in (ClockState.RUNNING, ClockState.PAUSED)


def start(name: str, at: datetime, paused: bool = False) -> TargetClock:
    """A fresh clock for a new cycle of the target, started at `at`."""
    if paused:
        return TargetClock(name, ClockState.PAUSED, started_at=at)
    return TargetClock(name, ClockState.RUNNING, started_at=at, running_since=at)


def elapsed(clock: TargetClock, target: Target, at: datetime) -> timedelta:
    """The time the clock has counted by `at`."""
    if clock.state is not ClockState.RUNNING or clock.running_since is None:
        return clock.spent
    if at <= clock.running_since:
        return clock.spent
    return clock.spent + calendar_of(target.calendar_spec).elapsed(clock.running_since, at)


def due_at(clock: TargetClock, target: Target, budget: timedelta) -> datetime | None:
    """When the running clock reaches `budget` (at once if it already has); None when paused."""
    if clock.state is not ClockState.RUNNING or clock.running_since is None:
        return None
    remaining = budget - clock.spent
    if remaining <= ZERO:
        return clock.running_since
    return calendar_of(target.calendar_spec).add(clock.running_since, remaining)


def pause(clock: TargetClock, target: Target, at: datetime) -> TargetClock:
    """Stop counting at `at`."""
    if clock.state is not ClockState.RUNNING:
        return clock
    return replace(
        clock, state=ClockState.PAUSED, spent=elapsed(clock, target, at), running_since=None
    )


def resume(clock: TargetClock, at: datetime) -> TargetClock:
    """Count again from `at`."""
    if clock.state is not ClockState.PAUSED:
        return clock
    return replace(clock, state=ClockState.RUNNING, running_since=at)


def meet(clock: TargetClock, target: Target, at: datetime) -> TargetClock:
    """The target is met at `at`: the clock stops for this cycle."""
    if not clock.live:
        return clock
    return replace(
        clock, state=ClockState.MET, spent=elapsed(clock, target, at), running_since=None
    )


def step_end(clock: TargetClock, target: Target) -> timedelta:
    """The budget at which the holding ladder step ends (its next reminder, at the last)."""
    last = len(target.ladder) - 1
    step = min(clock.step, last)
    end = clock.step_base + target.ladder[step].within
    if step == last:
        end += target.renotify * clock.reminded
    return end


def ladder_marks_breach(clock: TargetClock, target: Target) -> bool:
    """Whether the holding ladder step ends exactly at the target time (it carries the breach)."""
    return (
        bool(target.ladder)
        and clock.step == 0
        and clock.reminded == 0
        and step_end(clock, target) == target.target_time
    )


def plan(clock: TargetClock, target: Target) -> list[DeadlineSpec]:
    """Every deadline a running clock should have armed."""
    if clock.state is not ClockState.RUNNING:
        return []
    specs: list[DeadlineSpec] = []

    def add(kind: DeadlineKind, budget: timedelta, fraction: float | None = None) -> None:
        due = due_at(clock, target, budget)
        assert due is not None
        specs.append(DeadlineSpec(kind, clock.target, clock.step, budget, due, fraction))

    for fraction in sorted(target.warn_at):
        if fraction not in clock.warned:
            add(DeadlineKind.WARN, target.target_time * fraction, fraction)
    if not clock.breached and not ladder_marks_breach(clock, target):
        add(DeadlineKind.BREACH, target.target_time)
    if target.ladder:
        last = len(target.ladder) - 1
        kind = DeadlineKind.ESCALATE if clock.step < last else DeadlineKind.REMIND
        add(kind, step_end(clock, target))
    return specs


def replan_step(clock: TargetClock, target: Target) -> TargetClock:
    """Put the clock's ladder back on schedule from its start (after a policy change)."""
    if not target.ladder:
        return replace(clock, step=0, step_base=ZERO, reminded=0)
    step = min(clock.step, len(target.ladder) - 1)
    base = sum((s.within for s in target.ladder[:step]), ZERO)
    return replace(clock, step=step, step_base=base, reminded=0)


def advance(
    clock: TargetClock, target: Target, to_step: int, base: timedelta, now: datetime
) -> TargetClock:
    """Move the clock's ladder to `to_step`, begun at budget `base`; reminders already past are
    skipped, so a late or forced move never sends a burst of catch-up reminders."""
    moved = replace(clock, step=to_step, step_base=base, reminded=0)
    if to_step == len(target.ladder) - 1:
        moved = skip_reminders(moved, target, elapsed(clock, target, now))
    return moved


def skip_reminders(clock: TargetClock, target: Target, spent: timedelta) -> TargetClock:
    """The clock at the last ladder step with every reminder that `spent` has passed counted as
    sent, so that its next reminder lies ahead. O(1): the step ends at `base + within +
    renotify * reminded`, so the count is a division, however long the issue waited."""
    end = step_end(clock, target)
    every = target.renotify
    if end > spent or clock.step < len(target.ladder) - 1 or every <= ZERO:
        return clock
    return replace(clock, reminded=clock.reminded + (spent - end) // every + 1)
