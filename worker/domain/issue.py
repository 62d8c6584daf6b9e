"""An issue's SLA state as the rules see it, and the outcome of one change to it. Pure.

`IssueClock` is the part of an issue the SLA rules read and write: where it is in its life, the
policy and tier it is under, its clock cycle, the times that order its events, its status and
snooze, and one `TargetClock` per target of its policy. A `Transition` is what one event (or a
snooze's end) does to it: the new clock, and the effects to write with it.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime

from schemas.events import Severity
from schemas.messages import NotificationKind
from schemas.policy import TARGET_NAMES
from worker.domain.sla import SNOOZE, DeadlineSpec, Lifecycle, TargetClock

EVERYTHING = frozenset((*TARGET_NAMES, SNOOZE))  # every target's deadlines, and a snooze's
RESPONSES = ("acknowledge", "first_response", "next_response")  # the targets a response meets


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


def ignored(clock: IssueClock | None, note: str) -> Transition:
    """The event is recorded with `note` and changes nothing."""
    return Transition(applied=False, note=note, clock=clock)
