"""What would happen to a hypothetical issue: its SLA timeline from the policy alone.

Pure: the same domain functions the workers use (`apply_event`, `decide`, `end_snooze`) run
against a virtual clock that jumps from one deadline or event to the next. No Redis, no
database.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime

from schemas.events import EventType, IssueEvent, IssueSnapshot, Severity
from schemas.messages import NotificationKind
from schemas.policy import PolicyFile
from worker.domain import wording
from worker.domain.events import apply_event, end_snooze
from worker.domain.firing import Fired, FiringDeadline, decide
from worker.domain.issue import IssueClock, Transition
from worker.domain.sla import DeadlineKind, DeadlineSpec

MAX_STEPS = 1000
_KIND = {
    NotificationKind.WARNING: "warn",
    NotificationKind.BREACH: "breach",
    NotificationKind.ESCALATED: "escalate",
    NotificationKind.REMINDER: "remind",
}


@dataclass(frozen=True, slots=True)
class Step:
    """One line of the timeline."""

    at: datetime
    kind: str  # opened | event | ignored | clock | armed | warn | breach | escalate | remind | stop
    tier: str
    message: str
    due: datetime | None = None  # for `armed`: when that deadline falls due


@dataclass(frozen=True, slots=True)
class PlannedEvent:
    """Something that happens to the hypothetical issue at `at` (from `--events`)."""

    type: EventType
    at: datetime
    severity: Severity | None = None
    status: str | None = None
    until: datetime | None = None  # issue.snoozed


@dataclass(slots=True)
class _Armed:
    spec: DeadlineSpec
    version: int


class _Run:
    """The virtual issue: its clock, its armed deadlines and the timeline so far."""

    def __init__(self, policies: PolicyFile, reminders: int) -> None:
        self.policies = policies
        self.reminders = reminders
        self.reminded = 0
        self.clock: IssueClock | None = None
        self.armed: list[_Armed] = []
        self.steps: list[Step] = []

    def effects(self, at: datetime, transition: Transition) -> None:
        if transition.clock is None:
            return
        self.clock = transition.clock
        if transition.cancel:
            self.armed = [a for a in self.armed if a.spec.target not in transition.cancel]
        for note in transition.notes:
            self.steps.append(Step(at, "clock", self.clock.tier, note))
        for spec in transition.arm:
            self.arm(at, spec)

    def arm(self, at: datetime, spec: DeadlineSpec) -> None:
        assert self.clock is not None
        self.armed.append(_Armed(spec, self.clock.clock_version))
        self.steps.append(
            Step(
                at,
                "armed",
                self.clock.tier,
                wording.armed(spec.kind, spec.target, spec.step, spec.fraction),
                spec.due_at,
            )
        )

    def fire(self, armed: _Armed, at: datetime) -> None:
        assert self.clock is not None
        spec = armed.spec
        if spec.kind is DeadlineKind.RESUME:
            transition = end_snooze(self.clock, self.policies, spec.due_at)
            if transition.applied:
                self.steps.append(Step(at, "clock", self.clock.tier, transition.note))
                self.effects(at, transition)
            return
        policy = self.policies.policy(self.clock.policy_name)
        target = policy.target(spec.target) if policy else None
        decision = decide(
            self.clock.lifecycle,
            self.clock.clock_version,
            self.clock.target(spec.target),
            target,
            FiringDeadline(
                spec.kind,
                spec.target,
                spec.step,
                spec.budget,
                armed.version,
                spec.due_at,
                spec.fraction,
            ),
            at,
        )
        if not isinstance(decision, Fired):
            return
        self.clock = self.clock.with_target(decision.clock)
        if decision.to_tier is not None:
            self.clock = replace(self.clock, tier=decision.to_tier)
        self.steps.append(Step(at, _KIND[decision.notify], self.clock.tier, decision.message))
        if decision.notify is NotificationKind.REMINDER:
            self.reminded += 1
            if self.reminded >= self.reminders:
                self.steps.append(Step(at, "stop", self.clock.tier, wording.SIMULATION_STOPPED))
                self.armed = [a for a in self.armed if a.spec.kind is not DeadlineKind.REMIND]
                return
        for spec in decision.arm:
            self.arm(at, spec)


def simulate(
    policies: PolicyFile,
    severity: Severity,
    opened: datetime,
    events: list[PlannedEvent] | None = None,
    source: str = "simulated",
    labels: tuple[str, ...] = (),
    reminders: int = 2,
    status: str = "open",
) -> list[Step]:
    """The timeline of a hypothetical issue opened at `opened`, until nothing more is due."""
    snapshot = IssueSnapshot(id="SIM-1", severity=severity, labels=labels, status=status)
    run = _Run(policies, reminders)
    queue = sorted(events or [], key=lambda e: e.at)
    queue.insert(0, PlannedEvent(EventType.OPENED, opened, severity))
    now = opened  # the virtual clock: a deadline already past fires when it is noticed
    for n in range(MAX_STEPS):
        due = min(run.armed, key=lambda a: a.spec.due_at) if run.armed else None
        if queue and (due is None or queue[0].at <= due.spec.due_at):
            planned = queue.pop(0)
            now = max(now, planned.at)
            snapshot = snapshot.model_copy(
                update={
                    "severity": planned.severity or snapshot.severity,
                    "status": planned.status or snapshot.status,
                }
            )
            event = IssueEvent(
                event_id=f"sim-{n}",
                type=planned.type,
                occurred_at=planned.at,
                source=source,
                issue=snapshot,
                snooze_until=planned.until,
            )
            transition = apply_event(run.clock, event, policies)
            kind = (
                "opened"
                if planned.type is EventType.OPENED and run.clock is None
                else ("event" if transition.applied else "ignored")
            )
            tier = transition.clock.tier if transition.clock else ""
            message = f"{planned.type.value}: {transition.note}"
            run.steps.append(Step(planned.at, kind, tier, message))
            if transition.applied:
                run.effects(planned.at, transition)
            continue
        if due is None:
            break
        run.armed.remove(due)
        now = max(now, due.spec.due_at)
        run.fire(due, now)
    return run.steps
