"""The SLA reports' reads: the timeline lines that carry clock facts, outbox rows, notes.

Each is one statement over a period; the rows come back as the domain's report inputs
(`worker.domain.report_records`).
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from worker.domain.report_records import Dims, Line, MessageRecord
from worker.store.models import Issue, OutboxMessage, TimelineEntry

# the timeline kinds whose lines may carry clock facts: events and firings
FACT_KINDS = ("event", "warn", "breach", "escalate", "remind", "resume")
NOTE = "note"  # the timeline kind of a post-resolution note


@dataclass(frozen=True, slots=True)
class Note:
    """A post-resolution note of an issue."""

    issue: str
    title: str
    at: datetime
    author: str
    text: str


def fact_lines(session: Session, since: datetime, until: datetime) -> list[Line]:
    """The lines of [since, until) that may carry clock facts, in order of time."""
    rows = session.execute(
        select(
            TimelineEntry.at,
            TimelineEntry.kind,
            TimelineEntry.data,
            Issue.source,
            Issue.external_id,
            Issue.labels,
        )
        .join(Issue, Issue.id == TimelineEntry.issue_id)
        .where(
            TimelineEntry.at >= since,
            TimelineEntry.at < until,
            TimelineEntry.kind.in_(FACT_KINDS),
        )
        .order_by(TimelineEntry.at, TimelineEntry.id)
    )
    return [
        Line(f"{r.source}:{r.external_id}", r.source, tuple(r.labels or ()), r.at, r.kind, r.data)
        for r in rows
        if r.data
    ]


def messages(session: Session, since: datetime, until: datetime) -> list[MessageRecord]:
    """The outbox rows written in [since, until), with their issues' current details."""
    rows = session.execute(
        select(OutboxMessage.channel, OutboxMessage.kind, OutboxMessage.state)
        .add_columns(OutboxMessage.created_at, OutboxMessage.sent_at)
        .add_columns(Issue.severity, Issue.source, Issue.policy_name, Issue.tier)
        .add_columns(Issue.assignee, Issue.labels)
        .join(Issue, Issue.id == OutboxMessage.issue_id)
        .where(OutboxMessage.created_at >= since, OutboxMessage.created_at < until)
    )
    return [
        MessageRecord(
            r.channel,
            r.kind,
            r.state,
            r.created_at,
            (r.sent_at - r.created_at).total_seconds() if r.sent_at else None,
            Dims(r.severity, r.source, r.policy_name, r.tier, r.assignee or "", tuple(r.labels)),
        )
        for r in rows
    ]


def notes_of(session: Session, keys: Collection[str]) -> list[Note]:
    """The notes of these issues (`source:id`), oldest first."""
    wanted: dict[str, list[str]] = {}
    for key in keys:
        source, _, external_id = key.partition(":")
        wanted.setdefault(source, []).append(external_id)
    found: list[Note] = []
    for source, ids in sorted(wanted.items()):
        for start in range(0, len(ids), 500):
            rows = session.execute(
                select(TimelineEntry, Issue.external_id, Issue.title)
                .join(Issue, Issue.id == TimelineEntry.issue_id)
                .where(
                    Issue.source == source,
                    Issue.external_id.in_(ids[start : start + 500]),
                    TimelineEntry.kind == NOTE,
                )
            )
            found += [
                Note(f"{source}:{xid}", title, e.at, str(e.data.get("author", "")), e.message)
                for e, xid, title in rows
            ]
    return sorted(found, key=lambda n: (n.at, n.issue))
