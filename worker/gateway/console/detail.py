"""What the issue page shows: the issue, its countdowns, timeline, deadlines, messages, policy."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from schemas.policy import Policy, PolicyFile
from worker.domain.states import DeadlineState
from worker.gateway.console.board import Row, policies_of, row_of
from worker.store import views
from worker.store.models import Deadline, OutboxMessage

TIMELINE_MAX = 2000  # the newest entries of a very long history


@dataclass(frozen=True, slots=True)
class Entry:
    """A timeline line, with what its data says in words: who, how late, which message."""

    at: datetime
    kind: str
    message: str
    actor: str | None
    late_ms: int | None
    delivery: OutboxMessage | None
    attempts: int | None


@dataclass(frozen=True, slots=True)
class Detail:
    """An issue as its page shows it."""

    row: Row
    labels: list[str]
    snoozed_until: datetime | None
    timeline: list[Entry]
    truncated: bool
    next_deadlines: list[Deadline]
    messages: list[OutboxMessage]
    policy: Policy | None
    policy_version: str


def _entry(
    at: datetime, kind: str, message: str, data: dict[str, Any], by_id: dict[str, OutboxMessage]
) -> Entry:
    late = data.get("late_ms")
    attempts = data.get("attempts")
    return Entry(
        at=at,
        kind=kind,
        message=message,
        actor=str(who) if (who := data.get("actor") or data.get("author")) else None,
        late_ms=int(late) if isinstance(late, int | float) else None,
        delivery=by_id.get(str(data.get("message_id", ""))),
        attempts=int(attempts) if isinstance(attempts, int) else None,
    )


def detail(
    session: Session, source: str, external_id: str, current: PolicyFile | None, now: datetime
) -> Detail | None:
    """The issue `source:external_id` with everything its page shows; None if unknown."""
    found = views.issue_by_key(session, source, external_id)
    if found is None:
        return None
    issue = found.issue
    policies = policies_of(session, issue, current)
    messages = list(views.issue_messages(session, issue.id))
    by_id = {m.id: m for m in messages}
    lines = views.recent_timeline(session, issue.id, TIMELINE_MAX + 1)
    truncated = len(lines) > TIMELINE_MAX
    lines = lines[-TIMELINE_MAX:]
    lines.sort(key=lambda t: (t.at, t.id))
    armed = [d for d in views.deadlines(session, issue.id) if d.state == DeadlineState.ARMED]
    armed.sort(key=lambda d: (d.due_at, d.id))
    return Detail(
        row=row_of(issue, policies, now),
        labels=list(issue.labels or []),
        snoozed_until=issue.snoozed_until,
        timeline=[_entry(t.at, t.kind, t.message, t.data or {}, by_id) for t in lines],
        truncated=truncated,
        next_deadlines=armed,
        messages=messages,
        policy=policies.policy(issue.policy_name) if policies is not None else None,
        policy_version=issue.policy_version,
    )
