"""Firing a deadline: the fenced transaction that escalates, reminds or reports a breach.

The fence is twofold. The deadline row moves from `armed` to `fired` with a conditional UPDATE,
so of any number of concurrent or repeated firings exactly one wins; and the domain's `decide`
applies the winner only if the issue still has the clock version and tier it was armed for.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta

import structlog
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from schemas.messages import NotificationKind
from schemas.policy import PolicyFile
from worker.clock import Clock
from worker.domain.firing import FiringDeadline, Stale, decide
from worker.domain.lifecycle import IssueClock, end_snooze
from worker.domain.sla import SNOOZE, DeadlineKind, DeadlineSpec
from worker.effects import Effects
from worker.oncall import on_call
from worker.outbox import queue_notifications
from worker.policy_versions import policies_for
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
        won = session.execute(
            update(Deadline)
            .where(Deadline.id == deadline_id, Deadline.state == repo.ARMED)
            .values(state="fired", fired_at=now)
        ).rowcount  # type: ignore[attr-defined]
        if not won:
            return FireResult(False, "lost the race", effects, issue.key)
        under = policies_for(session, issue.policy_version, policies)
        kind = DeadlineKind(deadline.kind)
        state = repo.clock_of(issue)
        if kind is DeadlineKind.RESUME:
            outcome = _resume(session, issue, deadline, state, under, now)
        else:
            outcome = _fire_target(issue, deadline, state, under, now)
        message, notify, reason, arm, cancel = outcome
        if notify is None and not arm and not cancel:  # the fence: nothing to do
            deadline.state, deadline.note = "stale", message
            return FireResult(False, message, effects, issue.key)
        late_ms = int((now - deadline.due_at).total_seconds() * 1000)
        effects.disarm = repo.cancel_deadlines(session, issue, cancel, kind.value)
        effects.arm = repo.add_deadlines(session, issue, arm)
        issue.updated_at = now
        session.flush()
        repo.add_timeline(
            session, issue.id, now, kind.value, message, deadline_id=deadline_id, late_ms=late_ms
        )
        if notify is not None:
            deadlines = [deadline, *session.scalars(repo.armed_of(issue.id))]
            effects.outbox = queue_notifications(
                session, issue, notify, under, now, now, reason, deadlines, deadline.target
            )
    log.info(
        "escalation.fired",
        issue=issue.key,
        kind=kind.value,
        target=deadline.target,
        tier=issue.tier,
        late_ms=late_ms,
    )
    return FireResult(True, message, effects, issue.key)


# (timeline message, what to notify, its reason, deadlines to arm, targets to cancel)
Outcome = tuple[str, NotificationKind | None, str, tuple[DeadlineSpec, ...], frozenset[str]]


def _fire_target(
    issue: Issue, deadline: Deadline, state: IssueClock, policies: PolicyFile, now: datetime
) -> Outcome:
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
        now,
    )
    if isinstance(decision, Stale):
        return decision.reason, None, "", (), frozenset()
    new = state.with_target(decision.clock)
    message = decision.message
    if decision.to_tier is not None:
        previous = issue.tier
        new = replace(new, tier=decision.to_tier)
        issue.assignee = on_call(policies, decision.to_tier, now) or issue.assignee
        message = f"escalated {previous} → {decision.to_tier}: {message}"
    repo.write_clock(issue, new, policies)
    return message, decision.notify, decision.message, decision.arm, frozenset()


def _resume(
    session: Session,
    issue: Issue,
    deadline: Deadline,
    state: IssueClock,
    policies: PolicyFile,
    now: datetime,
) -> Outcome:
    """A snooze's end: the clocks it held run again."""
    if deadline.clock_version != state.clock_version:
        return "armed for an older clock cycle", None, "", (), frozenset()
    transition = end_snooze(state, policies, deadline.due_at)
    if not transition.applied or transition.clock is None:
        return transition.note, None, "", (), frozenset()
    repo.write_clock(issue, transition.clock, policies)
    for note in transition.notes:
        repo.add_timeline(session, issue.id, deadline.due_at, "clock", note)
    return transition.note, None, "", transition.arm, transition.cancel | {SNOOZE}
