"""The rows the write paths change in memory: plain objects, not ORM instances.

Ingest, firing and re-planning load the few rows a batch touches, change them in memory and
write them back with a few set-based statements per table (`worker.store.sql.SqlStore.flush`):
an executemany INSERT (with RETURNING where the database makes the ids) for new rows, and an
executemany UPDATE by primary key for the rows that changed. Building and tracking an ORM
instance costs ~50 times more than one of these, and most of a batch is new rows.

Each class names the columns of its table (`worker.store.models`), attribute for attribute;
`id` is None until the row is written. Rows compare by identity: a batch keys dictionaries by
its issue rows.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


@dataclass(eq=False, slots=True)
class IssueRow:
    """An issue with its SLA clock (the `issues` table)."""

    source: str
    external_id: str
    created_at: datetime
    updated_at: datetime
    cycle_started_at: datetime
    lifecycle_at: datetime
    snapshot_at: datetime
    title: str = ""
    severity: str = ""
    status: str = ""
    assignee: str | None = None
    labels: list[str] = field(default_factory=list)
    url: str | None = None
    policy_name: str = ""
    policy_version: str = ""
    lifecycle: str = ""
    tier_index: int = 0
    tier: str = ""
    clock_version: int = 1
    snoozed_until: datetime | None = None
    clocks: list[dict[str, Any]] = field(default_factory=list)
    id: int | None = None

    @property
    def key(self) -> str:
        """`source:external_id`, how people name the issue."""
        return f"{self.source}:{self.external_id}"


@dataclass(eq=False, slots=True)
class DeadlineRow:
    """A point in time at which something must happen (the `deadlines` table)."""

    kind: str
    target: str
    tier_index: int
    budget_s: float
    fraction: float | None
    clock_version: int
    due_at: datetime
    state: str
    fired_at: datetime | None = None
    note: str | None = None
    issue_id: int | None = None
    id: int | None = None
    issue: IssueRow | None = None  # not a column: the row it belongs to, in memory


@dataclass(eq=False, slots=True)
class OutboxRow:
    """A notification written with the change that caused it (the `outbox` table)."""

    id: str
    issue: IssueRow
    channel: str
    kind: str
    target: str | None
    payload: dict[str, Any]
    state: str
    next_attempt_at: datetime
    created_at: datetime
    attempts: int = 0
    last_error: str | None = None


@dataclass(eq=False, slots=True)
class ParkedRow:
    """An event that arrived before its issue's `issue.opened` (the `parked_events` table)."""

    event_id: str
    source: str
    external_id: str
    occurred_at: datetime
    stream_id: str | None
    body: str
    parked_at: datetime
    id: int | None = None
