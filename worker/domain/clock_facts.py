"""Clock facts: what one change did to each target clock, as the reports read it. Pure.

The services compare an issue's clock before and after each event or firing (`diff`) and write
what changed into the `data` of the timeline line of that event or firing, under the key `sla`
(`to_data`): the issue cycle, its severity, policy, tier and assignee then, and one fact per
target clock that started, paused, resumed, was met, was stopped or breached, with the time it
had counted by then in the target's own time (business or wall, as its policy says). Nothing
else is written: no extra rows, one small JSON object on a line that is written anyway.

A target clock is named by its issue, its target and its `started_at` (`started`): a clock of
a new cycle is a new clock, while a first response met before a reopen stays the one clock.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from schemas.policy import Policy
from worker.domain.issue import IssueClock
from worker.domain.sla import ClockState, TargetClock, elapsed

SLA_KEY = "sla"  # the key of a timeline line's `data` that holds the facts


class Change(StrEnum):
    """What happened to a target clock."""

    STARTED = "started"
    PAUSED = "paused"
    RESUMED = "resumed"
    MET = "met"
    STOPPED = "stopped"  # the cycle ended (resolved, reopened) before the target was met
    BREACHED = "breached"


@dataclass(frozen=True, slots=True)
class ClockFact:
    """One change of one target clock: counted `spent_s` (target time) by then."""

    target: str
    change: Change
    started: datetime
    spent_s: float
    breached: bool = False


def _counted(clock: TargetClock, policy: Policy | None, at: datetime) -> float:
    target = policy.target(clock.target) if policy is not None else None
    spent = elapsed(clock, target, at) if target is not None else clock.spent
    return round(spent.total_seconds(), 3)


def _changed(
    before: TargetClock, after: TargetClock, policy: Policy | None, at: datetime
) -> list[ClockFact]:
    """The facts of one clock that is the same clock before and after."""
    started = after.started_at
    assert started is not None
    facts: list[ClockFact] = []
    if after.breached and not before.breached:
        facts.append(
            ClockFact(after.target, Change.BREACHED, started, _counted(before, policy, at))
        )
    old, new = before.state, after.state
    if old is ClockState.RUNNING and new is ClockState.PAUSED:
        facts.append(ClockFact(after.target, Change.PAUSED, started, _counted(after, policy, at)))
    elif old is ClockState.PAUSED and new is ClockState.RUNNING:
        facts.append(ClockFact(after.target, Change.RESUMED, started, _counted(after, policy, at)))
    elif before.live and new is ClockState.MET:
        spent = round(after.spent.total_seconds(), 3)
        facts.append(ClockFact(after.target, Change.MET, started, spent, after.breached))
    elif before.live and new is ClockState.IDLE:
        spent = _counted(before, policy, at)
        facts.append(ClockFact(after.target, Change.STOPPED, started, spent, after.breached))
    return facts


def diff(
    before: IssueClock | None,
    after: IssueClock,
    policy_before: Policy | None,
    policy_after: Policy | None,
    at: datetime,
) -> list[ClockFact]:
    """What changed between two states of an issue's clocks at `at`, target by target."""
    facts: list[ClockFact] = []
    old = {t.target: t for t in before.targets} if before is not None else {}
    for tc in after.targets:
        was = old.pop(tc.target, None)
        same = was is not None and was.started_at is not None and was.started_at == tc.started_at
        if was is not None and same:
            facts += _changed(was, tc, policy_after, at)
            continue
        if was is not None and was.live and was.started_at is not None:
            spent = _counted(was, policy_before, at)
            facts.append(ClockFact(was.target, Change.STOPPED, was.started_at, spent, was.breached))
        if tc.live and tc.started_at is not None:
            spent = round(tc.spent.total_seconds(), 3)
            facts.append(ClockFact(tc.target, Change.STARTED, tc.started_at, spent))
            if tc.state is ClockState.PAUSED:
                facts.append(ClockFact(tc.target, Change.PAUSED, tc.started_at, spent))
    for was in old.values():  # targets the new policy does not have
        if was.live and was.started_at is not None:
            spent = _counted(was, policy_before, at)
            facts.append(ClockFact(was.target, Change.STOPPED, was.started_at, spent, was.breached))
    return facts


def to_data(
    clock: IssueClock,
    facts: list[ClockFact],
    assignee: str | None,
    escalated_to: str | None = None,
) -> dict[str, Any] | None:
    """The `sla` object of a timeline line (None when nothing changed)."""
    if not facts and escalated_to is None:
        return None
    data: dict[str, Any] = {
        "cycle": clock.cycle_started_at.isoformat(),
        "severity": clock.severity.value,
        "policy": clock.policy_name,
        "tier": clock.tier,
        "assignee": assignee,
        "clocks": [
            {
                "target": f.target,
                "change": f.change.value,
                "started": f.started.isoformat(),
                "spent_s": f.spent_s,
                **({"breached": True} if f.breached else {}),
            }
            for f in facts
        ],
    }
    if escalated_to is not None:
        data["escalated_to"] = escalated_to
    return data
