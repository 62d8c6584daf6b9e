"""The repositories of one transaction over SQLAlchemy (`worker.services.repositories`); the
outbox's are in `worker.store.outbox`.

Every query the write paths run lives here: ingest, firing and delivery change rows in memory
and call these for what they read, lock, claim, lease and write in bulk.
"""

from __future__ import annotations

from collections.abc import Collection
from contextlib import AbstractContextManager
from datetime import datetime

from sqlalchemy import select, tuple_, update
from sqlalchemy.orm import Session

from schemas.policy import PolicyFile
from worker.domain.states import DeadlineState
from worker.store.models import (
    Deadline,
    Issue,
    Key,
    ParkedEvent,
    ProcessedEvent,
    TimelineEntry,
)
from worker.store.outbox import SqlOutbox
from worker.store.policy_versions import policies_for


class SqlIssues:
    def __init__(self, session: Session) -> None:
        self.session = session

    def lock(self, keys: Collection[Key]) -> list[Issue]:
        wanted = list(set(keys))
        if not wanted:
            return []
        # Locked in id order, so concurrent writers on PostgreSQL never deadlock.
        return list(
            self.session.scalars(
                select(Issue)
                .where(tuple_(Issue.source, Issue.external_id).in_(wanted))
                .order_by(Issue.id)
                .with_for_update()
            )
        )

    def key_of_deadline(self, deadline_id: int) -> Key | None:
        found = self.session.execute(
            select(Issue.source, Issue.external_id)
            .join(Deadline, Deadline.issue_id == Issue.id)
            .where(Deadline.id == deadline_id)
        ).one_or_none()
        return None if found is None else (found.source, found.external_id)

    def keys_of_deadlines(self, deadline_ids: Collection[int]) -> dict[int, Key]:
        rows = self.session.execute(
            select(Deadline.id, Issue.source, Issue.external_id)
            .join(Deadline, Deadline.issue_id == Issue.id)
            .where(Deadline.id.in_(list(deadline_ids)))
        )
        return {row.id: (row.source, row.external_id) for row in rows}

    def add(self, issue: Issue) -> None:
        self.session.add(issue)


class SqlDeadlines:
    def __init__(self, session: Session) -> None:
        self.session = session

    def armed(self, issue_ids: Collection[int]) -> list[Deadline]:
        if not issue_ids:
            return []
        return list(
            self.session.scalars(
                select(Deadline).where(
                    Deadline.issue_id.in_(list(issue_ids)), Deadline.state == DeadlineState.ARMED
                )
            )
        )

    def lock(self, deadline_id: int) -> Deadline:
        return self.session.scalars(
            select(Deadline).where(Deadline.id == deadline_id).with_for_update()
        ).one()

    def lock_many(self, deadline_ids: Collection[int]) -> dict[int, Deadline]:
        query = (
            select(Deadline)
            .where(Deadline.id.in_(list(deadline_ids)))
            .order_by(Deadline.id)
            .with_for_update()
        )
        return {d.id: d for d in self.session.scalars(query)}

    def claim(self, deadline_id: int, now: datetime) -> bool:
        won = self.session.execute(
            update(Deadline)
            .where(Deadline.id == deadline_id, Deadline.state == DeadlineState.ARMED)
            .values(state=DeadlineState.FIRED, fired_at=now)
            .execution_options(synchronize_session=False)
        ).rowcount  # type: ignore[attr-defined]
        return bool(won)

    def add(self, deadline: Deadline) -> None:
        self.session.add(deadline)


class SqlEvents:
    def __init__(self, session: Session) -> None:
        self.session = session

    def processed(self, event_ids: Collection[str]) -> dict[str, Issue | None]:
        if not event_ids:
            return {}
        rows = self.session.scalars(
            select(ProcessedEvent).where(ProcessedEvent.event_id.in_(list(event_ids)))
        )
        return {row.event_id: row.issue for row in rows}

    def add_processed(self, row: ProcessedEvent) -> None:
        self.session.add(row)

    def parked(self, keys: Collection[Key]) -> list[ParkedEvent]:
        if not keys:
            return []
        return list(
            self.session.scalars(
                select(ParkedEvent)
                .where(tuple_(ParkedEvent.source, ParkedEvent.external_id).in_(list(keys)))
                .order_by(ParkedEvent.id)
            )
        )

    def park(self, row: ParkedEvent) -> None:
        self.session.add(row)

    def unpark(self, row: ParkedEvent) -> None:
        if row in self.session.new:
            self.session.expunge(row)
        else:
            self.session.delete(row)


class SqlTimeline:
    def __init__(self, session: Session) -> None:
        self.session = session

    def add(self, entry: TimelineEntry) -> None:
        self.session.add(entry)


class SqlPolicies:
    def __init__(self, session: Session) -> None:
        self.session = session

    def under(self, version: str, current: PolicyFile) -> PolicyFile:
        return policies_for(self.session, version, current)


class SqlStore:
    """Every repository over one session: the transaction of a unit of work."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self.issues = SqlIssues(session)
        self.deadlines = SqlDeadlines(session)
        self.events = SqlEvents(session)
        self.timeline = SqlTimeline(session)
        self.outbox = SqlOutbox(session)
        self.policies = SqlPolicies(session)

    def flush(self) -> None:
        self.session.flush()

    def savepoint(self) -> AbstractContextManager[object]:
        return self.session.begin_nested()
