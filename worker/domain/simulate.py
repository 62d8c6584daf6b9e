"""What would happen to a hypothetical issue: its SLA timeline from the policy alone.

Pure: the same domain functions the workers use (`apply_event`, `plan`, `decide`) run against a
virtual clock that jumps from one deadline or event to the next. No Redis, no database.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime

from schemas.events import EventType, IssueEvent, IssueSnapshot, Severity
from schemas.policy import Policy, PolicyFile
from worker.domain.lifecycle import Cancel, IssueClock, apply_event
from worker.domain.sla import (
    Breach,
    ClockView,
    DeadlineKind,
    DeadlineSpec,
    Escalate,
    FiringDeadline,
    Remind,
    decide,
)

MAX_STEPS = 1000


@dataclass(frozen=True, slots=True)
class Step:
    """One line of the timeline."""

    at: datetime
    kind: str  # opened | event | ignored | armed | escalate | remind | breach | stop
    tier: str
    message: str
    due: datetime | None = None  # for `armed`: when that deadline falls due


@dataclass(frozen=True, slots=True)
class PlannedEvent:
    """Something that happens to the hypothetical issue at `at` (from `--events`)."""

    type: EventType
    at: datetime
    severity: Severity | None = None


@dataclass(slots=True)
class _Armed:
    spec: DeadlineSpec
    version: int


def _tier(policy: Policy, index: int) -> str:
    ladder = policy.acknowledge.ladder
    return ladder[min(index, len(ladder) - 1)].tier


def _describe(spec: DeadlineSpec, policy: Policy) -> str:
    tier = _tier(policy, spec.tier_index)
    if spec.kind is DeadlineKind.RESOLVE:
        return "resolve target"
    if spec.kind is DeadlineKind.REMIND:
        return f"{tier} must acknowledge, else a reminder"
    return f"{tier} must acknowledge, else escalation"


def simulate(
    policies: PolicyFile,
    severity: Severity,
    opened: datetime,
    events: list[PlannedEvent] | None = None,
    source: str = "simulated",
    labels: tuple[str, ...] = (),
    reminders: int = 2,
) -> list[Step]:
    """The timeline of a hypothetical issue opened at `opened`, until nothing more is due."""
    snapshot = IssueSnapshot(id="SIM-1", severity=severity, labels=labels)
    steps: list[Step] = []
    armed: list[_Armed] = []
    clock: IssueClock | None = None
    queue = sorted(events or [], key=lambda e: e.at)
    queue.insert(0, PlannedEvent(EventType.OPENED, opened, severity))
    reminded = 0
    now = opened  # the virtual clock: a deadline already past fires when it is noticed
    for n in range(MAX_STEPS):
        due = min(armed, key=lambda a: a.spec.due_at) if armed else None
        if queue and (due is None or queue[0].at <= due.spec.due_at):
            planned = queue.pop(0)
            now = max(now, planned.at)
            snapshot = snapshot.model_copy(
                update={"severity": planned.severity or snapshot.severity}
            )
            event = IssueEvent(
                event_id=f"sim-{n}",
                type=planned.type,
                occurred_at=planned.at,
                source=source,
                issue=snapshot,
            )
            transition = apply_event(clock, event, policies)
            if transition.applied and transition.clock is not None:
                if transition.cancel is Cancel.ALL:
                    armed = []
                elif transition.cancel is Cancel.ACKNOWLEDGE:
                    armed = [a for a in armed if a.spec.kind is DeadlineKind.RESOLVE]
                clock = transition.clock
                reminded = 0 if transition.cancel is Cancel.ALL else reminded
            policy = policies.policy(clock.policy_name) if clock else None
            assert clock is not None and policy is not None
            kind = (
                "opened"
                if planned.type is EventType.OPENED
                else ("event" if transition.applied else "ignored")
            )
            steps.append(
                Step(
                    planned.at,
                    kind,
                    _tier(policy, clock.tier_index),
                    f"{planned.type.value}: {transition.note}",
                )
            )
            for spec in transition.arm if transition.applied else ():
                armed.append(_Armed(spec, clock.clock_version))
                steps.append(
                    Step(
                        planned.at,
                        "armed",
                        _tier(policy, spec.tier_index),
                        _describe(spec, policy),
                        spec.due_at,
                    )
                )
            continue
        if due is None or clock is None:
            break
        armed.remove(due)
        policy = policies.policy(clock.policy_name)
        assert policy is not None
        spec = due.spec
        at = now = max(now, spec.due_at)
        decision = decide(
            ClockView(clock.lifecycle, clock.clock_version, clock.tier_index),
            FiringDeadline(spec.kind, due.version, spec.tier_index, spec.due_at),
            policy,
            at,
        )
        if isinstance(decision, Escalate):
            before = _tier(policy, clock.tier_index)
            clock = replace(clock, tier_index=decision.to_tier)
            steps.append(
                Step(
                    at,
                    "escalate",
                    _tier(policy, decision.to_tier),
                    f"{before} did not acknowledge: escalated to {_tier(policy, decision.to_tier)}",
                )
            )
            armed.append(_Armed(decision.next, clock.clock_version))
        elif isinstance(decision, Remind):
            reminded += 1
            tier = _tier(policy, clock.tier_index)
            steps.append(Step(at, "remind", tier, f"{tier} still has not acknowledged: reminder"))
            if reminded < reminders:
                armed.append(_Armed(decision.next, clock.clock_version))
            else:
                steps.append(
                    Step(
                        at,
                        "stop",
                        tier,
                        "reminders go on at the same interval "
                        "until acknowledged (not simulated further)",
                    )
                )
        elif isinstance(decision, Breach):
            steps.append(
                Step(
                    at,
                    "breach",
                    _tier(policy, clock.tier_index),
                    "resolve target passed: breach notification",
                )
            )
    return steps
