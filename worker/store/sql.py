"""The repositories of one transaction over SQLAlchemy (`worker.services.repositories`); the
outbox's are in `worker.store.outbox`.

Every query the write paths run lives here: ingest, firing and re-planning change rows in
memory (`worker.store.rows`) and call these for what they read, lock, claim and add. What they
add and change is written when the store flushes (before a query that must see it, at a
savepoint, and at the commit) with set-based statements (`worker.store.bulk`): per table, one
INSERT of the new rows (their ids reserved first) and one UPDATE by primary key of the rows
that changed since they were loaded or last written.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import fields
from datetime import datetime
from operator import attrgetter
from typing import Any, cast

from sqlalchemy import Table, delete, select, update
from sqlalchemy.orm import Session

from schemas.policy import PolicyFile
from worker.domain.states import DeadlineState
from worker.store.bulk import Bulk
from worker.store.models import (
    Deadline,
    Issue,
    Key,
    OutboxMessage,
    ParkedEvent,
    ProcessedEvent,
    TimelineEntry,
)
from worker.store.outbox import SqlOutbox
from worker.store.policy_versions import policies_for
from worker.store.repository import by_key, unindexed
from worker.store.rows import DeadlineRow, IssueRow, OutboxRow, ParkedRow

ISSUES = cast(Table, Issue.__table__)
DEADLINES = cast(Table, Deadline.__table__)
OUTBOX = cast(Table, OutboxMessage.__table__)
PARKED = cast(Table, ParkedEvent.__table__)
TIMELINE = cast(Table, TimelineEntry.__table__)
PROCESSED = cast(Table, ProcessedEvent.__table__)

_ISSUE_COLUMNS = tuple(c.name for c in ISSUES.columns if c.name != "id")
_ISSUE_CHANGING = tuple(
    c for c in _ISSUE_COLUMNS if c not in ("source", "external_id", "created_at")
)
_DEADLINE_COLUMNS = tuple(c.name for c in DEADLINES.columns if c.name != "id")
_DEADLINE_CHANGING = ("state", "fired_at", "note")
_OUTBOX_CHANGING = ("state", "last_error")
_PARKED_COLUMNS = tuple(c.name for c in PARKED.columns if c.name != "id")
_OUTBOX_COLUMNS = (
    "id",
    "issue_id",
    "channel",
    "kind",
    "target",
    "payload",
    "state",
    "attempts",
    "next_attempt_at",
    "lease_until",
    "last_error",
    "created_at",
    "sent_at",
)
_TIMELINE_COLUMNS = ("issue_id", "at", "kind", "message", "data")
_PROCESSED_COLUMNS = (
    "issue_id",
    "event_id",
    "stream_id",
    "type",
    "occurred_at",
    "outcome",
    "processed_at",
    "body",
)
# What a row is built from, in the order of its class's fields (the id last)
ISSUE_FIELDS = tuple(f.name for f in fields(IssueRow))
DEADLINE_FIELDS = tuple(f.name for f in fields(DeadlineRow) if f.name != "issue")


class Tracked:
    """Rows of one table as last written, to find those that changed since. The services
    change a row's attributes by assignment, never in place (a list is replaced, not
    appended to): the snapshot holds the values, not copies."""

    def __init__(self, table: Table, columns: Sequence[str]) -> None:
        self.table, self.columns = table, tuple(columns)
        self.snapshot = attrgetter(*self.columns)
        self.rows: dict[int, tuple[Any, tuple[Any, ...]]] = {}

    def watch(self, row: Any) -> None:
        self.rows[id(row)] = (row, self.snapshot(row))

    def write(self, bulk: Bulk) -> None:
        """One UPDATE of the rows that changed."""
        changed = []
        snapshot = self.snapshot
        for key, (row, before) in self.rows.items():
            now = snapshot(row)
            if now != before:
                changed.append((row.id, *now) if len(self.columns) > 1 else (row.id, now))
                self.rows[key] = (row, now)
        bulk.update(self.table, self.columns, changed)


class Pending:
    """What one transaction added and changed, written in bulk at each flush."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self.bulk = Bulk(session)
        self.outbox: list[OutboxRow] = []  # `SqlOutbox` adds to this list: never replaced
        self.forget()

    def forget(self) -> None:
        """Nothing added, nothing in memory (also when a savepoint rolled back: the next load
        reads the rows again as the database holds them)."""
        self.outbox.clear()
        self.issues: list[IssueRow] = []
        self.deadlines: list[DeadlineRow] = []
        self.parked: list[ParkedRow] = []
        self.unparked: list[int] = []
        self.timeline: list[list[Any]] = []  # rows of _TIMELINE_COLUMNS, the issue's row first
        self.processed: list[list[Any]] = []  # rows of _PROCESSED_COLUMNS, likewise
        self.issue_rows: dict[int, IssueRow] = {}  # the identity maps: one row per id
        self.deadline_rows: dict[int, DeadlineRow] = {}
        self.tracked = (
            Tracked(ISSUES, _ISSUE_CHANGING),
            Tracked(DEADLINES, _DEADLINE_CHANGING),
            Tracked(OUTBOX, _OUTBOX_CHANGING),
        )

    def flush(self) -> None:
        """Write what was added and changed, parents before children: issues, deadlines,
        outbox rows, parked events, timeline lines, processed event ids."""
        bulk = self.bulk
        issues, deadlines, outbox = self.tracked
        if self.issues:
            new_issues, self.issues = self.issues, []
            self._insert(ISSUES, _ISSUE_COLUMNS, new_issues)
            for issue in new_issues:
                self.issue_rows[issue.id or 0] = issue
                issues.watch(issue)
        issues.write(bulk)
        if self.deadlines:
            new_deadlines, self.deadlines = self.deadlines, []
            for deadline in new_deadlines:
                if deadline.issue is not None:
                    deadline.issue_id = deadline.issue.id
            self._insert(DEADLINES, _DEADLINE_COLUMNS, new_deadlines)
            for deadline in new_deadlines:
                self.deadline_rows[deadline.id or 0] = deadline
                deadlines.watch(deadline)
        deadlines.write(bulk)
        if self.outbox:
            new_messages = self.outbox[:]
            self.outbox.clear()
            bulk.insert(OUTBOX, _OUTBOX_COLUMNS, [_outbox_values(row) for row in new_messages])
            for message in new_messages:
                outbox.watch(message)
        outbox.write(bulk)
        if self.parked:
            parked, self.parked = self.parked, []
            self._insert(PARKED, _PARKED_COLUMNS, parked)
        if self.unparked:
            gone, self.unparked = self.unparked, []
            self.session.execute(delete(PARKED).where(PARKED.c.id.in_(gone)))
        for table, columns, lines in (
            (TIMELINE, _TIMELINE_COLUMNS, self.timeline),
            (PROCESSED, _PROCESSED_COLUMNS, self.processed),
        ):
            for line in lines:
                if isinstance(issue := line[0], IssueRow):
                    line[0] = issue.id
            bulk.insert(table, columns, lines)
        self.timeline, self.processed = [], []
        self.session.flush()  # ORM rows of the delivery path (`SqlOutbox`)

    def _insert(self, table: Table, columns: Sequence[str], rows: Sequence[Any]) -> None:
        """Give the rows their ids, reserved in one statement, then insert them in one."""
        for row, row_id in zip(rows, self.bulk.reserve(table, len(rows)), strict=True):
            row.id = row_id
        values = attrgetter("id", *columns)
        self.bulk.insert(table, ("id", *columns), [values(row) for row in rows])

    def issue(self, values: Sequence[Any]) -> IssueRow:
        """The row of these values (`ISSUE_FIELDS`, the id last), or the one this
        transaction already holds."""
        row = self.issue_rows.get(values[-1])
        if row is None:
            row = self.issue_rows[values[-1]] = IssueRow(*values)
            self.tracked[0].watch(row)
        return row

    def deadline(self, values: Sequence[Any]) -> DeadlineRow:
        """Likewise for a deadline (`DEADLINE_FIELDS`, the id last)."""
        row = self.deadline_rows.get(values[-1])
        if row is None:
            row = self.deadline_rows[values[-1]] = DeadlineRow(*values)
            row.issue = self.issue_rows.get(row.issue_id or 0)
            self.tracked[1].watch(row)
        return row


def _outbox_values(row: OutboxRow) -> tuple[Any, ...]:
    return (
        row.id,
        row.issue.id,
        row.channel,
        row.kind,
        row.target,
        row.payload,
        row.state,
        row.attempts,
        row.next_attempt_at,
        None,  # lease_until
        row.last_error,
        row.created_at,
        None,  # sent_at
    )


class SqlIssues:
    def __init__(self, session: Session, pending: Pending) -> None:
        self.session, self.pending = session, pending

    def lock(self, keys: Collection[Key]) -> list[IssueRow]:
        wanted = list(set(keys))
        if not wanted:
            return []
        # Locked in id order, so concurrent writers on PostgreSQL never deadlock.
        query = (
            select(*(ISSUES.c[name] for name in ISSUE_FIELDS))
            .where(by_key(ISSUES, wanted))
            .order_by(ISSUES.c.id)
            .with_for_update()
        )
        return [self.pending.issue(values) for values in self.session.execute(query)]

    def keys_of_deadlines(self, deadline_ids: Collection[int]) -> dict[int, Key]:
        rows = self.session.execute(
            select(DEADLINES.c.id, ISSUES.c.source, ISSUES.c.external_id)
            .join(ISSUES, DEADLINES.c.issue_id == ISSUES.c.id)
            .where(DEADLINES.c.id.in_(list(deadline_ids)))
        )
        return {row.id: (row.source, row.external_id) for row in rows}

    def add(self, issue: IssueRow) -> None:
        self.pending.issues.append(issue)


class SqlDeadlines:
    def __init__(self, session: Session, pending: Pending) -> None:
        self.session, self.pending = session, pending

    def armed(self, issue_ids: Collection[int]) -> list[DeadlineRow]:
        if not issue_ids:
            return []
        query = select(*(DEADLINES.c[name] for name in DEADLINE_FIELDS)).where(
            DEADLINES.c.issue_id.in_(list(issue_ids)),
            unindexed(DEADLINES.c.state) == DeadlineState.ARMED,
        )
        return [self.pending.deadline(values) for values in self.session.execute(query)]

    def lock_many(self, deadline_ids: Collection[int]) -> dict[int, DeadlineRow]:
        query = (
            select(*(DEADLINES.c[name] for name in DEADLINE_FIELDS))
            .where(DEADLINES.c.id.in_(list(deadline_ids)))
            .order_by(DEADLINES.c.id)
            .with_for_update()
        )
        rows = (self.pending.deadline(values) for values in self.session.execute(query))
        return {row.id: row for row in rows if row.id is not None}

    def claim(self, deadline_id: int, now: datetime) -> bool:
        return deadline_id in self.claim_many([deadline_id], now)

    def claim_many(self, deadline_ids: Collection[int], now: datetime) -> set[int]:
        if not deadline_ids:
            return set()
        won = self.session.scalars(
            update(DEADLINES)
            .where(DEADLINES.c.id.in_(list(deadline_ids)), DEADLINES.c.state == DeadlineState.ARMED)
            .values(state=DeadlineState.FIRED, fired_at=now)
            .returning(DEADLINES.c.id)
        )
        return set(won)

    def add(self, deadline: DeadlineRow) -> None:
        self.pending.deadlines.append(deadline)


class SqlEvents:
    def __init__(self, session: Session, pending: Pending) -> None:
        self.session, self.pending = session, pending

    def processed(self, event_ids: Collection[str]) -> dict[str, int | None]:
        if not event_ids:
            return {}
        query = select(PROCESSED.c.event_id, PROCESSED.c.issue_id).where(
            PROCESSED.c.event_id.in_(list(event_ids))
        )
        return {row.event_id: row.issue_id for row in self.session.execute(query)}

    def add_processed(
        self,
        event_id: str,
        issue: IssueRow,
        stream_id: str | None,
        type: str,
        occurred_at: datetime,
        outcome: str,
        processed_at: datetime,
        body: bytes | None = None,
    ) -> None:
        self.pending.processed.append(
            [issue, event_id, stream_id, type, occurred_at, outcome, processed_at, body]
        )

    def parked(self, keys: Collection[Key]) -> list[ParkedRow]:
        if not keys:
            return []
        query = select(PARKED).where(by_key(PARKED, keys)).order_by(PARKED.c.id)
        return [ParkedRow(**values._mapping) for values in self.session.execute(query)]

    def park(self, row: ParkedRow) -> None:
        self.pending.parked.append(row)

    def unpark(self, row: ParkedRow) -> None:
        if row in self.pending.parked:
            self.pending.parked.remove(row)
        elif row.id is not None:
            self.pending.unparked.append(row.id)


class SqlTimeline:
    def __init__(self, pending: Pending) -> None:
        self.pending = pending

    def add(
        self,
        issue: IssueRow | int,
        at: datetime,
        kind: str,
        message: str,
        data: dict[str, Any] | None = None,
    ) -> None:
        self.pending.timeline.append([issue, at, kind, message, data or {}])


class SqlPolicies:
    def __init__(self, session: Session) -> None:
        self.session = session

    def under(self, version: str, current: PolicyFile) -> PolicyFile:
        return policies_for(self.session, version, current)


class SqlStore:
    """Every repository over one session: the transaction of a unit of work."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self.pending = pending = Pending(session)
        self.issues = SqlIssues(session, pending)
        self.deadlines = SqlDeadlines(session, pending)
        self.events = SqlEvents(session, pending)
        self.timeline = SqlTimeline(pending)
        self.outbox = SqlOutbox(session, pending.outbox)
        self.policies = SqlPolicies(session)

    def flush(self) -> None:
        self.pending.flush()

    def savepoint(self) -> AbstractContextManager[object]:
        return self._savepoint()

    @contextmanager
    def _savepoint(self) -> Iterator[object]:
        self.flush()  # what came before is not the savepoint's to undo
        nested = self.session.begin_nested()
        try:
            yield nested
            self.flush()
        except BaseException:
            nested.rollback()
            self.pending.forget()
            raise
        nested.commit()
