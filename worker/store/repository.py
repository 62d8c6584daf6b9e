"""Queries and writes the services share. Each takes a Session; the caller owns the transaction."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from schemas.events import Severity
from worker.domain.lifecycle import IssueClock
from worker.domain.sla import DeadlineSpec, Lifecycle
from worker.store.models import Deadline, Issue, TimelineEntry

ARMED = "armed"


def issue_by_key(
    session: Session, source: str, external_id: str, lock: bool = True
) -> Issue | None:
    """The issue `source:external_id`, locked for update where the backend can."""
    query = select(Issue).where(Issue.source == source, Issue.external_id == external_id)
    if lock:
        query = query.with_for_update()
    return session.scalars(query).one_or_none()


def issue_by_ref(session: Session, ref: str) -> Issue | None:
    """An issue named as `source:id`, or by its numeric id."""
    if ":" in ref:
        source, external_id = ref.split(":", 1)
        return issue_by_key(session, source, external_id, lock=False)
    return session.get(Issue, int(ref)) if ref.isdigit() else None


def clock_of(issue: Issue) -> IssueClock:
    """The domain's view of an issue's SLA clock."""
    return IssueClock(
        lifecycle=Lifecycle(issue.lifecycle),
        severity=Severity(issue.severity),
        policy_name=issue.policy_name,
        tier_index=issue.tier_index,
        clock_version=issue.clock_version,
        cycle_started_at=issue.cycle_started_at,
        lifecycle_at=issue.lifecycle_at,
        snapshot_at=issue.snapshot_at,
    )


def write_clock(issue: Issue, clock: IssueClock) -> None:
    """Copy a domain clock back onto the row."""
    issue.lifecycle = clock.lifecycle.value
    issue.severity = clock.severity.value
    issue.policy_name = clock.policy_name
    issue.tier_index = clock.tier_index
    issue.clock_version = clock.clock_version
    issue.cycle_started_at = clock.cycle_started_at
    issue.lifecycle_at = clock.lifecycle_at
    issue.snapshot_at = clock.snapshot_at


def add_deadlines(
    session: Session, issue: Issue, specs: Iterable[DeadlineSpec]
) -> list[tuple[int, datetime]]:
    """Arm deadlines for the issue's current clock version; returns (id, due) to index."""
    rows = [
        Deadline(
            issue_id=issue.id,
            kind=spec.kind.value,
            tier_index=spec.tier_index,
            clock_version=issue.clock_version,
            due_at=spec.due_at,
            state=ARMED,
        )
        for spec in specs
    ]
    if not rows:
        return []
    session.add_all(rows)
    session.flush()
    return [(row.id, row.due_at) for row in rows]


def armed_deadlines(
    session: Session, issue_ids: Sequence[int] | None = None, after_id: int = 0, limit: int = 5000
) -> list[tuple[int, datetime]]:
    """Armed deadlines as (id, due), for the given issues or a page of all of them."""
    query = select(Deadline.id, Deadline.due_at).where(Deadline.state == ARMED)
    if issue_ids is not None:
        query = query.where(Deadline.issue_id.in_(issue_ids))
    else:
        query = query.where(Deadline.id > after_id).order_by(Deadline.id).limit(limit)
    return [(row.id, row.due_at) for row in session.execute(query)]


def not_armed(session: Session, deadline_ids: Sequence[int]) -> list[int]:
    """Which of these ids the database does not hold as armed (fired, cancelled or gone)."""
    armed = set(
        session.scalars(
            select(Deadline.id).where(Deadline.id.in_(deadline_ids), Deadline.state == ARMED)
        )
    )
    return [i for i in deadline_ids if i not in armed]


def add_timeline(
    session: Session, issue_id: int, at: datetime, kind: str, message: str, **data: Any
) -> None:
    """Append to the issue's timeline."""
    session.add(TimelineEntry(issue_id=issue_id, at=at, kind=kind, message=message, data=data))
