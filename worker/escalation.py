"""Firing a deadline: the fenced transaction that escalates, reminds or reports a breach.

The fence is twofold. The deadline row moves from `armed` to `fired` with a conditional UPDATE,
so of any number of concurrent or repeated firings exactly one wins; and the domain's `decide`
applies the winner only if the issue still has the clock version and tier it was armed for.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import structlog
from sqlalchemy import select, update

from schemas.messages import NotificationKind
from schemas.policy import PolicyFile
from worker.clock import Clock
from worker.domain.sla import (
    Breach,
    ClockView,
    DeadlineKind,
    Escalate,
    FiringDeadline,
    Lifecycle,
    Remind,
    Stale,
    decide,
)
from worker.effects import Effects
from worker.oncall import on_call
from worker.outbox import queue_notifications
from worker.store import repository as repo
from worker.store.db import SessionFactory
from worker.store.models import Deadline, Issue

log = structlog.get_logger("escalator.escalation")


@dataclass(frozen=True, slots=True)
class FireResult:
    """What one firing did: `fired` is False for a fenced no-op."""

    fired: bool
    note: str
    effects: Effects
    issue_key: str | None = None


def _describe(kind: DeadlineKind, due_at: datetime, issue: Issue) -> str:
    if kind is DeadlineKind.RESOLVE:
        return f"not resolved by {due_at.isoformat(timespec='seconds')}"
    return f"{issue.tier} did not acknowledge by {due_at.isoformat(timespec='seconds')}"


def fire(
    sessions: SessionFactory, policies: PolicyFile, clock: Clock, deadline_id: int
) -> FireResult:
    """Fire one deadline, at most once in effect however often it is called."""
    effects = Effects()
    with sessions() as session, session.begin():
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
        policy = policies.policy(issue.policy_name) or policies.match(
            repo.clock_of(issue).severity, issue.source, tuple(issue.labels)
        )
        kind = DeadlineKind(deadline.kind)
        decision = decide(
            ClockView(Lifecycle(issue.lifecycle), issue.clock_version, issue.tier_index),
            FiringDeadline(kind, deadline.clock_version, deadline.tier_index, deadline.due_at),
            policy,
            now,
        )
        won = session.execute(
            update(Deadline)
            .where(Deadline.id == deadline_id, Deadline.state == repo.ARMED)
            .values(
                state="fired" if not isinstance(decision, Stale) else "stale",
                fired_at=now,
                note=decision.reason if isinstance(decision, Stale) else None,
            )
        ).rowcount  # type: ignore[attr-defined]
        if not won or isinstance(decision, Stale):
            note = decision.reason if isinstance(decision, Stale) else "lost the race"
            return FireResult(False, note, effects, issue.key)
        late_ms = int((now - deadline.due_at).total_seconds() * 1000)
        reason = _describe(kind, deadline.due_at, issue)
        if isinstance(decision, Escalate):
            previous = issue.tier
            step = policy.acknowledge.ladder[decision.to_tier]
            issue.tier_index, issue.tier = decision.to_tier, step.tier
            issue.assignee = on_call(policies, step.tier, now) or issue.assignee
            issue.snapshot_at = max(issue.snapshot_at, now)
            message = f"escalated {previous} → {issue.tier}: {reason}"
            notify = NotificationKind.ESCALATED
            effects.arm = repo.add_deadlines(session, issue, [decision.next])
        elif isinstance(decision, Remind):
            message = f"reminded {issue.tier}: {reason}"
            notify = NotificationKind.REMINDER
            effects.arm = repo.add_deadlines(session, issue, [decision.next])
        else:
            assert isinstance(decision, Breach)
            message = f"breached the resolve target: {reason}"
            notify = NotificationKind.BREACH
        issue.updated_at = now
        session.flush()
        repo.add_timeline(
            session, issue.id, now, kind.value, message, deadline_id=deadline_id, late_ms=late_ms
        )
        effects.outbox = queue_notifications(session, issue, notify, policies, now, now, reason)
    log.info("escalation.fired", issue=issue.key, kind=kind.value, tier=issue.tier, late_ms=late_ms)
    return FireResult(True, message, effects, issue.key)
