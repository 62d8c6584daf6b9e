"""Read views for the CLI and the management API: queries only, each on the caller's Session.

A list of issues comes with each issue's next armed deadline in the same statement, however
many issues it lists.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session, aliased

from worker.domain.states import OutboxState
from worker.store.models import Deadline, Issue, OutboxMessage, TimelineEntry
from worker.store.repository import ARMED


@dataclass(frozen=True)
class Listed:
    """An issue and its next armed deadline (None when nothing is armed)."""

    issue: Issue
    next_deadline: Deadline | None


def _with_next(query: Select[Issue]) -> Select[Issue, Deadline]:
    """`query`'s issues, each joined to its armed deadline due first (ties: the older one)."""
    other = aliased(Deadline)
    first = (
        select(other.id)
        .where(other.issue_id == Issue.id, other.state == ARMED)
        .order_by(other.due_at, other.id)
        .limit(1)
        .correlate(Issue)
        .scalar_subquery()
    )
    return query.add_columns(Deadline).outerjoin(Deadline, Deadline.id == first)


def _listed(session: Session, query: Select[Issue]) -> list[Listed]:
    return [Listed(issue, nxt) for issue, nxt in session.execute(_with_next(query))]


def issues_by_urgency(session: Session, include_resolved: bool = False) -> list[Listed]:
    """Issues by severity, then by when their clock started (the CLI's `issues`)."""
    query = select(Issue).order_by(Issue.severity, Issue.cycle_started_at)
    if not include_resolved:
        query = query.where(Issue.lifecycle != "resolved")
    return _listed(session, query)


def issue_page(session: Session, open_only: bool, offset: int, limit: int) -> list[Listed]:
    """Up to `limit` issues by id from `offset` (the API's `/v1/issues`)."""
    query = select(Issue).order_by(Issue.id).offset(offset).limit(limit)
    if open_only:
        query = query.where(Issue.lifecycle != "resolved")
    return _listed(session, query)


def issue_by_key(session: Session, source: str, external_id: str) -> Listed | None:
    """The issue `source:external_id` with its next armed deadline, without locking it."""
    query = select(Issue).where(Issue.source == source, Issue.external_id == external_id)
    found = _listed(session, query)
    return found[0] if found else None


def deadlines(session: Session, issue_id: int) -> Sequence[Deadline]:
    """Every deadline of the issue, armed or not, in the order they were armed."""
    return session.scalars(
        select(Deadline).where(Deadline.issue_id == issue_id).order_by(Deadline.id)
    ).all()


def armed(session: Session, issue_id: int) -> Sequence[Deadline]:
    """The issue's armed deadlines, in the order they were armed."""
    return session.scalars(
        select(Deadline)
        .where(Deadline.issue_id == issue_id, Deadline.state == ARMED)
        .order_by(Deadline.id)
    ).all()


def timeline(session: Session, issue_id: int) -> Sequence[TimelineEntry]:
    """The issue's whole timeline, in order of time."""
    return session.scalars(
        select(TimelineEntry)
        .where(TimelineEntry.issue_id == issue_id)
        .order_by(TimelineEntry.at, TimelineEntry.id)
    ).all()


def recent_timeline(session: Session, issue_id: int, last: int) -> list[TimelineEntry]:
    """The issue's `last` newest timeline entries, in the order they were written."""
    newest = session.scalars(
        select(TimelineEntry)
        .where(TimelineEntry.issue_id == issue_id)
        .order_by(TimelineEntry.id.desc())
        .limit(last)
    ).all()
    return list(reversed(newest))


def dead_messages(session: Session, issue_id: int) -> Sequence[OutboxMessage]:
    """The issue's outbox messages that gave up."""
    return session.scalars(
        select(OutboxMessage)
        .where(OutboxMessage.issue_id == issue_id, OutboxMessage.state == OutboxState.DEAD)
        .order_by(OutboxMessage.created_at, OutboxMessage.id)
    ).all()


def outbox(session: Session, dead_only: bool, limit: int) -> list[tuple[OutboxMessage, Issue]]:
    """The newest outbox messages (or dead ones only), each with its issue."""
    query = (
        select(OutboxMessage, Issue)
        .join(Issue, Issue.id == OutboxMessage.issue_id)
        .order_by(OutboxMessage.created_at.desc())
        .limit(limit)
    )
    if dead_only:
        query = query.where(OutboxMessage.state == OutboxState.DEAD)
    return [(message, issue) for message, issue in session.execute(query)]


def outbox_counts(session: Session) -> dict[str, int]:
    """How many outbox rows are pending and dead (`escalator status`, metrics)."""
    states = (OutboxState.PENDING, OutboxState.DEAD)
    rows = session.execute(
        select(OutboxMessage.state, func.count())
        .where(OutboxMessage.state.in_(states))
        .group_by(OutboxMessage.state)
    ).all()
    counts = {str(state): 0 for state in states}
    counts.update({str(state): int(n) for state, n in rows})
    return counts


# --- the web console (worker/gateway/console) ---------------------------------------------


def open_issues(
    session: Session,
    source: str | None = None,
    severity: str | None = None,
    tier: str | None = None,
    policy: str | None = None,
    limit: int = 500,
) -> list[Issue]:
    """Open (not resolved) issues by severity, then clock start, narrowed by what is given."""
    query = select(Issue).where(Issue.lifecycle != "resolved")
    for column, value in (
        (Issue.source, source),
        (Issue.severity, severity),
        (Issue.tier, tier),
        (Issue.policy_name, policy),
    ):
        if value:
            query = query.where(column == value)
    query = query.order_by(Issue.severity, Issue.cycle_started_at, Issue.id).limit(limit)
    return list(session.scalars(query).all())


def open_choices(session: Session) -> dict[str, list[str]]:
    """The sources, severities, tiers and policies open issues have: the board's filters."""
    columns = {
        "source": Issue.source,
        "severity": Issue.severity,
        "tier": Issue.tier,
        "policy": Issue.policy_name,
    }
    return {
        name: list(
            session.scalars(
                select(column).where(Issue.lifecycle != "resolved").distinct().order_by(column)
            ).all()
        )
        for name, column in columns.items()
    }


def issue_messages(session: Session, issue_id: int) -> Sequence[OutboxMessage]:
    """Every outbox message of the issue (notifications, write-backs), oldest first."""
    return session.scalars(
        select(OutboxMessage)
        .where(OutboxMessage.issue_id == issue_id)
        .order_by(OutboxMessage.created_at, OutboxMessage.id)
    ).all()


def change_marker(session: Session) -> tuple[object, ...]:
    """A cheap value that changes whenever an issue or its timeline does (the console's live
    updates): the newest timeline id, the latest issue update and the number of issues."""
    newest = session.execute(select(func.max(TimelineEntry.id))).scalar()
    updated, count = session.execute(select(func.max(Issue.updated_at), func.count(Issue.id))).one()
    return (newest, str(updated), count)


def open_issue_counts(session: Session) -> list[tuple[str, str, int]]:
    """(severity, tier, count) of the issues not resolved: one grouped statement (the
    metrics' `escalator_open_issues`)."""
    rows = session.execute(
        select(Issue.severity, Issue.tier, func.count(Issue.id))
        .where(Issue.lifecycle != "resolved")
        .group_by(Issue.severity, Issue.tier)
    )
    return [(severity, tier, count) for severity, tier, count in rows]
