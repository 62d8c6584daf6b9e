"""Firing a deadline: the fenced transaction that escalates, reminds or reports a breach.

The fence is twofold. The deadline row moves from `armed` to `fired` with a conditional UPDATE
(`claim`), so of any number of concurrent or repeated firings exactly one wins; and the domain's
`decide` applies the winner only if the issue still has the clock version and tier it was armed
for.

A firing takes its place in the issue's history at the deadline's due time, whenever it is
processed: `fire` runs it for the scheduler, and ingest runs the ones an event finds overdue
before applying that event (`worker/services/ingest.py`), so an acknowledgement processed after an
overdue escalation finds the issue escalated, as it was at the time.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta

import structlog
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from schemas.messages import NotificationKind
from schemas.policy import PolicyFile
from worker.domain import (
    SNOOZE,
    Clock,
    DeadlineKind,
    DeadlineSpec,
    FiringDeadline,
    IssueClock,
    Stale,
    decide,
    end_snooze,
    on_call,
)
from worker.services.outbox import Outbox, queue_notifications
from worker.services.uow import Effects, Units
from worker.store import repository as repo
from worker.store.models import Deadline, Issue
from worker.store.policy_versions import policies_for

log = structlog.get_logger("escalator.escalation")


@dataclass(frozen=True, slots=True)
class FireResult:
    """What one firing did: `fired` is False for a fenced no-op."""

    fired: bool
    note: str
    effects: Effects
    issue_key: str | None = None


@dataclass(frozen=True, slots=True)
class Firing:
    """What a deadline's firing changes: its timeline line, what to notify, what to (re)arm."""

    message: str
    notify: NotificationKind | None = None
    reason: str = ""
    arm: tuple[DeadlineSpec, ...] = ()
    cancel: frozenset[str] = frozenset()

    @property
    def changes(self) -> bool:
        """False when the fence turned it into a no-op."""
        return self.notify is not None or bool(self.arm) or bool(self.cancel)


def claim(session: Session, deadline_id: int, now: datetime) -> bool:
    """Move the deadline from armed to fired; True for the one caller that wins."""
    won = session.execute(
        update(Deadline)
        .where(Deadline.id == deadline_id, Deadline.state == repo.ARMED)
        .values(state=repo.FIRED, fired_at=now)
        .execution_options(synchronize_session=False)
    ).rowcount  # type: ignore[attr-defined]
    return bool(won)


def fire(units: Units, policies: PolicyFile, clock: Clock, deadline_id: int) -> FireResult:
    """Fire one deadline, at most once in effect however often it is called; what it arms,
    cancels and queues is indexed and dispatched after the commit (the unit of work)."""
    with units() as uow:
        session, effects = uow.session, uow.effects
        # Lock the issue first, then the deadline: the same order as ingest, so the two never
        # deadlock on PostgreSQL.
        issue_id = session.scalar(select(Deadline.issue_id).where(Deadline.id == deadline_id))
        if issue_id is None:
            return FireResult(False, "no such deadline", effects)
        issue = session.scalars(select(Issue).where(Issue.id == issue_id).with_for_update()).one()
        deadline = session.scalars(
            select(Deadline).where(Deadline.id == deadline_id).with_for_update()
        ).one()
        if deadline.state != repo.ARMED:
            # A repeat: make sure what the first firing armed is indexed, then do nothing.
            effects.arm = repo.armed_deadlines(session, [issue.id])
            return FireResult(False, f"already {deadline.state}", effects, issue.key)
        now = clock.now()
        if not claim(session, deadline_id, now):
            return FireResult(False, "lost the race", effects, issue.key)
        deadline.state, deadline.fired_at = repo.FIRED, now
        under = policies_for(session, issue.policy_version, policies)
        firing = decide_firing(session, issue, deadline, under, now)
        if not firing.changes:  # the fence: nothing to do
            deadline.state, deadline.note = repo.STALE, firing.message
            return FireResult(False, firing.message, effects, issue.key)
        kind = deadline.kind
        effects.disarm = repo.cancel_deadlines(session, issue, firing.cancel, kind)
        effects.arm = repo.add_deadlines(session, issue, firing.arm)
        armed = list(session.scalars(repo.armed_of(issue.id)))
        effects.outbox = record_firing(uow.outbox, issue, deadline, firing, under, now, armed)
    log.info(
        "escalation.fired",
        issue=issue.key,
        kind=kind,
        target=deadline.target,
        tier=issue.tier,
        late_ms=_late_ms(deadline, now),
    )
    return FireResult(True, firing.message, effects, issue.key)


def _late_ms(deadline: Deadline, now: datetime) -> int:
    return int((now - deadline.due_at).total_seconds() * 1000)


def decide_firing(
    session: Session, issue: Issue, deadline: Deadline, policies: PolicyFile, now: datetime
) -> Firing:
    """Decide what firing the (claimed) deadline does and write it onto the issue's clock.

    `now` is when it is processed: the ladder moves from the deadline's own budget, and
    reminders that fell due before `now` collapse into this one.
    """
    state = repo.clock_of(issue)
    if DeadlineKind(deadline.kind) is DeadlineKind.RESUME:
        return _resume(session, issue, deadline, state, policies)
    return _fire_target(issue, deadline, state, policies, now)


def record_firing(
    outbox: Outbox,
    issue: Issue,
    deadline: Deadline,
    firing: Firing,
    policies: PolicyFile,
    now: datetime,
    armed: list[Deadline],
) -> list[str]:
    """The timeline line (at the due time, where the firing belongs in history) and the
    notifications of a firing that changed something; returns the outbox ids."""
    issue.updated_at = now
    late_ms = _late_ms(deadline, now)
    repo.add_timeline(
        outbox.session,
        issue.id,
        deadline.due_at,
        deadline.kind,
        firing.message,
        deadline_id=deadline.id,
        late_ms=late_ms,
    )
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
    issue: Issue, deadline: Deadline, state: IssueClock, policies: PolicyFile, now: datetime
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
    new = state.with_target(decision.clock)
    message = decision.message
    if decision.to_tier is not None:
        previous = issue.tier
        new = replace(new, tier=decision.to_tier)
        issue.assignee = on_call(policies, decision.to_tier, deadline.due_at) or issue.assignee
        message = f"escalated {previous} → {decision.to_tier}: {message}"
    repo.write_clock(issue, new, policies)
    return Firing(message, decision.notify, decision.message, decision.arm)


def _resume(
    session: Session,
    issue: Issue,
    deadline: Deadline,
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
        repo.add_timeline(session, issue.id, deadline.due_at, "clock", note)
    return Firing(transition.note, arm=transition.arm, cancel=transition.cancel | {SNOOZE})
