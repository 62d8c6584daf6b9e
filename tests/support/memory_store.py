"""An in-memory store and unit of work: the services run on it without a database.

`MemoryUnits` stands where `worker.services.uow.Units` does: ingest, firing and delivery open
units of work on it and read and write through `uow.store`, the repositories of
`worker.services.repositories`, here held in dicts. The write paths' rows (`worker.store.rows`)
are given their id when they are added; outbox rows become `OutboxMessage`s, as the delivery
path reads them, when the unit of work ends (or the store flushes). What it does not do: roll
back (a unit that fails keeps what it changed, so tests of rollbacks and races use a real
database), lock, or enforce constraints.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from datetime import datetime
from itertools import count
from types import TracebackType
from typing import Any

from sqlalchemy.orm import sessionmaker

from schemas.policy import PolicyFile
from worker.domain.states import DeadlineState, OutboxState, is_writeback
from worker.services.outbox import Outbox as OutboxWriter
from worker.services.repositories import Held, Key
from worker.services.uow import AfterCommit, Effects, UnitOfWork, Units, ignore
from worker.store.models import OutboxMessage, TimelineEntry
from worker.store.policy_versions import version_of
from worker.store.rows import DeadlineRow, IssueRow, OutboxRow, ParkedRow


class MemoryStore:
    """Every table the write paths use, as dicts; one instance is the whole database."""

    def __init__(self) -> None:
        self.issue_rows: dict[int, IssueRow] = {}
        self.deadline_rows: dict[int, DeadlineRow] = {}
        self.processed_rows: dict[str, int | None] = {}  # event id -> its issue's id
        self.parked_rows: dict[int, ParkedRow] = {}
        self.timeline_rows: list[TimelineEntry] = []
        self.outbox_rows: dict[str, OutboxMessage] = {}
        self.added: list[OutboxRow] = []  # outbox rows of the unit of work under way
        self.claimed: set[int] = set()  # deadlines claimed for a firing
        self._ids = count(1)
        self.issues = self
        self.deadlines = _Deadlines(self)
        self.events = _Events(self)
        self.timeline = self
        self.outbox = _Outbox(self)
        self.policies = self

    def _new(self, row: Any) -> None:
        """Give a new row its id, and its issue id from the relationship it was built with."""
        if getattr(row, "id", None) is None:
            row.id = next(self._ids)
        issue = getattr(row, "issue", None)
        if issue is not None:
            row.issue_id = issue.id

    # Issues and the timeline
    def lock(self, keys: Collection[Key]) -> list[IssueRow]:
        wanted = set(keys)
        found = (i for i in self.issue_rows.values() if (i.source, i.external_id) in wanted)
        return sorted(found, key=lambda issue: issue.id or 0)

    def keys_of_deadlines(self, deadline_ids: Collection[int]) -> dict[int, Key]:
        found = (self.deadline_rows.get(i) for i in deadline_ids)
        issues = ((d.id, self.issue_rows[d.issue_id or 0]) for d in found if d is not None)
        return {i or 0: (issue.source, issue.external_id) for i, issue in issues}

    def add(
        self,
        row: IssueRow | int,
        at: datetime | None = None,
        kind: str = "",
        message: str = "",
        data: dict[str, Any] | None = None,
    ) -> None:
        """An issue (`issues.add`), or a timeline line of one (`timeline.add`)."""
        if isinstance(row, IssueRow) and at is None:
            self._new(row)
            self.issue_rows[row.id or 0] = row
            return
        issue_id = row.id if isinstance(row, IssueRow) else row
        entry = TimelineEntry(issue_id=issue_id, at=at, kind=kind, message=message, data=data or {})
        self.timeline_rows.append(entry)

    def under(self, version: str, current: PolicyFile) -> PolicyFile:
        return current

    def flush(self) -> None:
        """Rows have their ids from the moment they are added; the outbox rows written are
        stored as the delivery path reads them."""
        for row in self.added:
            self.outbox_rows[row.id] = OutboxMessage(
                id=row.id,
                issue_id=row.issue.id,
                channel=row.channel,
                kind=row.kind,
                target=row.target,
                payload=row.payload,
                state=row.state,
                attempts=row.attempts,
                next_attempt_at=row.next_attempt_at,
                lease_until=None,
                last_error=row.last_error,
                created_at=row.created_at,
                sent_at=None,
            )
        self.added.clear()

    def savepoint(self) -> AbstractContextManager[object]:
        return nullcontext()

    # What tests look at
    def timeline_of(self, issue: IssueRow) -> list[TimelineEntry]:
        return sorted((e for e in self.timeline_rows if e.issue_id == issue.id), key=lambda e: e.at)

    def issue(self, external_id: str, source: str = "jira") -> IssueRow:
        [found] = self.lock([(source, external_id)])
        return found


class _Deadlines:
    def __init__(self, store: MemoryStore) -> None:
        self.store = store

    def armed(self, issue_ids: Collection[int]) -> list[DeadlineRow]:
        rows = self.store.deadline_rows.values()
        return [d for d in rows if d.issue_id in issue_ids and d.state == DeadlineState.ARMED]

    def lock_many(self, deadline_ids: Collection[int]) -> dict[int, DeadlineRow]:
        rows = self.store.deadline_rows
        return {i: rows[i] for i in sorted(deadline_ids) if i in rows}

    def claim_many(self, deadline_ids: Collection[int], now: datetime) -> set[int]:
        return {i for i in deadline_ids if self.claim(i, now)}

    def claim(self, deadline_id: int, now: datetime) -> bool:
        """As the database's conditional UPDATE: the first claim of an armed row wins. (The
        row itself is the service's to change, as it changes the rows it loads.)"""
        deadline = self.store.deadline_rows[deadline_id]
        if deadline.state != DeadlineState.ARMED or deadline_id in self.store.claimed:
            return False
        self.store.claimed.add(deadline_id)
        return True

    def add(self, deadline: DeadlineRow) -> None:
        self.store._new(deadline)
        self.store.deadline_rows[deadline.id or 0] = deadline


class _Events:
    def __init__(self, store: MemoryStore) -> None:
        self.store = store

    def processed(self, event_ids: Collection[str]) -> dict[str, int | None]:
        rows = self.store.processed_rows
        return {e: rows[e] for e in event_ids if e in rows}

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
        self.store.processed_rows[event_id] = issue.id

    def parked(self, keys: Collection[Key]) -> list[ParkedRow]:
        wanted = set(keys)
        rows = self.store.parked_rows.values()
        found = (r for r in rows if (r.source, r.external_id) in wanted)
        return sorted(found, key=lambda r: r.id or 0)

    def park(self, row: ParkedRow) -> None:
        self.store._new(row)
        self.store.parked_rows[row.id or 0] = row

    def unpark(self, row: ParkedRow) -> None:
        self.store.parked_rows.pop(row.id or 0, None)


class _Outbox:
    def __init__(self, store: MemoryStore) -> None:
        self.store = store

    def _held(self, row: OutboxMessage) -> Held:
        issue = self.store.issue_rows[row.issue_id]
        return row, issue.lifecycle, list(issue.clocks or [])

    def add(self, row: OutboxRow) -> None:
        self.store.added.append(row)

    def window_end(self, channel: str, now: datetime) -> datetime | None:
        ends = [
            r.next_attempt_at
            for r in self.store.outbox_rows.values()
            if r.channel == channel
            and r.state == OutboxState.PENDING
            and r.attempts == 0
            and r.next_attempt_at > now
        ]
        return min(ends, default=None)

    def moot_candidates(
        self,
        issue_ids: Collection[int],
        kinds: Collection[str],
        targets: Collection[str] | None,
        written: Collection[str],
    ) -> list[tuple[str, dict[str, Any]]]:
        return [
            (r.id, r.payload)
            for r in self.store.outbox_rows.values()
            if r.issue_id in issue_ids
            and r.state == OutboxState.PENDING
            and r.kind in kinds
            and (targets is None or r.target in targets)
            and not is_writeback(r.channel)
            and r.id not in written
        ]

    def cancel(self, message_ids: Collection[str], note: str) -> int:
        cancelled = 0
        for message_id in message_ids:
            row = self.store.outbox_rows[message_id]
            if row.state == OutboxState.PENDING:
                row.state, row.last_error = OutboxState.CANCELLED, note
                cancelled += 1
        return cancelled

    def lock_issues(self, message_ids: Collection[str]) -> None:
        """Nothing to lock in memory."""

    def lease(
        self, message_ids: Sequence[str], now: datetime, until: datetime, heads: bool
    ) -> list[Held]:
        taken = []
        for message_id in message_ids:
            row = self.store.outbox_rows.get(message_id)
            if (
                row is None
                or row.state != OutboxState.PENDING
                or row.next_attempt_at > now
                or (row.lease_until is not None and row.lease_until >= now)
                or (not heads and row.attempts == 0 and row.next_attempt_at > row.created_at)
            ):
                continue
            row.lease_until, row.attempts = until, row.attempts + 1
            taken.append(self._held(row))
        return taken

    def held(self, message_ids: Sequence[str]) -> dict[str, datetime]:
        rows = (self.store.outbox_rows.get(m) for m in message_ids)
        return {
            r.id: r.next_attempt_at
            for r in rows
            if r is not None
            and r.state == OutboxState.PENDING
            and r.attempts == 0
            and r.next_attempt_at > r.created_at
        }

    def window(self, leader: OutboxMessage) -> list[Held]:
        rows = [
            r
            for r in self.store.outbox_rows.values()
            if r.channel == leader.channel
            and r.state == OutboxState.PENDING
            and r.attempts == 0
            and r.next_attempt_at == leader.next_attempt_at
            and r.id != leader.id
            and r.lease_until is None
        ]
        return [self._held(r) for r in sorted(rows, key=lambda r: (r.created_at, r.id))]

    def carried(self, message_ids: Collection[str]) -> list[Held]:
        return [self._held(self.store.outbox_rows[m]) for m in message_ids]

    def rows(self, message_ids: Collection[str]) -> dict[str, OutboxMessage]:
        return {m: self.store.outbox_rows[m] for m in message_ids}

    def mark_sent(self, sent: Sequence[tuple[OutboxMessage, str]], done: datetime) -> None:
        for row, line in sent:
            row.state, row.sent_at = OutboxState.SENT, done
            row.lease_until = row.last_error = None
            data = {"message_id": row.id, "attempts": row.attempts}
            self.store.add(row.issue_id, done, "notified", line, data)


class MemoryUnitOfWork(UnitOfWork):
    """A unit of work on the memory store: its effects run after the block, as after a commit."""

    def __init__(self, memory: MemoryStore, after_commit: AfterCommit) -> None:
        super().__init__(sessionmaker(), after_commit)
        self.memory = memory

    def __enter__(self) -> MemoryUnitOfWork:
        self.store = self.memory
        self.outbox = OutboxWriter(self.memory.outbox)
        self.effects = Effects()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.memory.flush()
        if kind is None and self.effects:
            self._after_commit(self.effects)


class MemoryUnits(Units):
    """Units of work on one memory store (the services take it where they take `Units`)."""

    def __init__(self, memory: MemoryStore | None = None, after_commit: AfterCommit = ignore):
        super().__init__(sessionmaker(), after_commit)
        self.memory = memory or MemoryStore()

    def __call__(self) -> MemoryUnitOfWork:
        return MemoryUnitOfWork(self.memory, self.after_commit)

    def running(self, after_commit: AfterCommit) -> MemoryUnits:
        return MemoryUnits(self.memory, after_commit)

    @contextmanager
    def reading(self) -> Iterator[MemoryStore]:
        yield self.memory

    def remember(self, policies: PolicyFile, now: datetime) -> str:
        return version_of(policies)
