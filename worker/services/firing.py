"""How a fired deadline changes its issue: decide it (the domain's `decide`, behind the fence of
the clock version and tier it was armed for), write it onto the issue's clock, and record it:
the timeline line at the due time, where it belongs in history, and the notifications.

Both paths that fire run this: the scheduler's task (`worker.services.fire`) and ingest, for
the deadlines an event finds overdue (`worker.services.history.Loaded.catch_up`).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from schemas.messages import NotificationKind
from schemas.policy import PolicyFile
from worker.domain import (
    SNOOZE,
    DeadlineKind,
    DeadlineSpec,
    FiringDeadline,
    IssueClock,
    Stale,
    decide,
    end_snooze,
    on_call,
    wording,
)
from worker.domain.clock_facts import SLA_KEY
from worker.services.clock_facts import facts_data
from worker.services.outbox import Outbox, queue_notifications
from worker.services.repositories import Store
from worker.store import repository as repo
from worker.store.rows import DeadlineRow, IssueRow


@dataclass(frozen=True, slots=True)
class Firing:
    """What a deadline's firing changes: its timeline line, what to notify, what to (re)arm."""

    message: str
    notify: NotificationKind | None = None
    reason: str = ""
    arm: tuple[DeadlineSpec, ...] = ()
    cancel: frozenset[str] = frozenset()
    to_tier: str | None = None  # an escalation: the tier that takes the issue
    breached: bool = False  # this firing marked its target breached
    sla: dict[str, Any] | None = None  # its clock facts (`worker.services.clock_facts`)

    @property
    def changes(self) -> bool:
        """False when the fence turned it into a no-op."""
        return self.notify is not None or bool(self.arm) or bool(self.cancel)


@dataclass(frozen=True, slots=True)
class Happened:
    """What a firing that counted did, for whoever records it (metrics, logs): the deadline's
    kind and target, the issue's severity and tier after it, and how late it fired."""

    kind: str
    target: str
    severity: str
    tier: str
    escalated: bool
    breached: bool
    due_at: datetime
    fired_at: datetime

    @property
    def lateness_s(self) -> float:
        return max(0.0, (self.fired_at - self.due_at).total_seconds())


def happened(issue: IssueRow, deadline: DeadlineRow, firing: Firing, now: datetime) -> Happened:
    """The record of a firing that changed something (after `decide_firing` wrote it)."""
    return Happened(
        deadline.kind,
        deadline.target,
        issue.severity,
        issue.tier,
        firing.to_tier is not None,
        firing.breached,
        deadline.due_at,
        now,
    )


def late_ms(deadline: DeadlineRow, now: datetime) -> int:
    return int((now - deadline.due_at).total_seconds() * 1000)


def decide_firing(
    store: Store, issue: IssueRow, deadline: DeadlineRow, policies: PolicyFile, now: datetime
) -> Firing:
    """Decide what firing the (claimed) deadline does and write it onto the issue's clock.

    `now` is when it is processed: the ladder moves from the deadline's own budget, and
    reminders that fell due before `now` collapse into this one.
    """
    state = repo.clock_of(issue)
    if DeadlineKind(deadline.kind) is DeadlineKind.RESUME:
        return _resume(store, issue, deadline, state, policies)
    return _fire_target(issue, deadline, state, policies, now)


def record_firing(
    store: Store,
    outbox: Outbox,
    issue: IssueRow,
    deadline: DeadlineRow,
    firing: Firing,
    policies: PolicyFile,
    now: datetime,
    armed: list[DeadlineRow],
) -> list[str]:
    """The timeline line (at the due time, where the firing belongs in history) and the
    notifications of a firing that changed something; returns the outbox ids."""
    issue.updated_at = now
    late = late_ms(deadline, now)
    data: dict[str, object] = {"deadline_id": deadline.id, "late_ms": late}
    if deadline.target != SNOOZE:  # what a backtest compares (worker.store.backtest_views)
        data.update(target=deadline.target, tier=issue.tier, breached=firing.breached)
    if firing.sla is not None:
        data[SLA_KEY] = firing.sla
    store.timeline.add(issue, deadline.due_at, deadline.kind, firing.message, data)
    if firing.notify is None:
        return []
    return queue_notifications(
        outbox,
        issue,
        firing.notify,
        policies,
        deadline.due_at,
        now,
        firing.reason,
        [deadline, *armed],
        deadline.target,
    )


def _fire_target(
    issue: IssueRow, deadline: DeadlineRow, state: IssueClock, policies: PolicyFile, now: datetime
) -> Firing:
    """A target's deadline: warn, breach, escalate or remind, if the fence lets it."""
    policy = policies.policy(state.policy_name)
    target = policy.target(deadline.target) if policy else None
    decision = decide(
        state.lifecycle,
        state.clock_version,
        state.target(deadline.target),
        target,
        FiringDeadline(
            DeadlineKind(deadline.kind),
            deadline.target,
            deadline.tier_index,
            timedelta(seconds=deadline.budget_s),
            deadline.clock_version,
            deadline.due_at,
            deadline.fraction,
        ),
        max(now, deadline.due_at),
    )
    if isinstance(decision, Stale):
        return Firing(decision.reason)
    before = state.target(deadline.target)
    breached = decision.clock.breached and not (before is not None and before.breached)
    new = state.with_target(decision.clock)
    message = decision.message
    if decision.to_tier is not None:
        previous = issue.tier
        new = replace(new, tier=decision.to_tier)
        issue.assignee = on_call(policies, decision.to_tier, deadline.due_at) or issue.assignee
        message = wording.escalated_from(previous, decision.to_tier, message)
    repo.write_clock(issue, new, policies)
    at = deadline.due_at
    return Firing(
        message,
        decision.notify,
        decision.message,
        decision.arm,
        to_tier=decision.to_tier,
        breached=breached,
        sla=facts_data(issue, state, new, policies, policies, at, decision.to_tier),
    )


def _resume(
    store: Store,
    issue: IssueRow,
    deadline: DeadlineRow,
    state: IssueClock,
    policies: PolicyFile,
) -> Firing:
    """A snooze's end: the clocks it held run again."""
    if deadline.clock_version != state.clock_version:
        return Firing("armed for an older clock cycle")
    transition = end_snooze(state, policies, deadline.due_at)
    if not transition.applied or transition.clock is None:
        return Firing(transition.note)
    repo.write_clock(issue, transition.clock, policies)
    for note in transition.notes:
        store.timeline.add(issue, deadline.due_at, "clock", note)
    sla = facts_data(issue, state, transition.clock, policies, policies, deadline.due_at)
    return Firing(transition.note, arm=transition.arm, cancel=transition.cancel | {SNOOZE}, sla=sla)
