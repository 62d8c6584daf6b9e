"""What a backtest reads: the recorded events of a period's issues, and what really happened to
them. Queries only, a chunk of issues at a time, on the caller's (read-only) session.

The issues are those with an event that occurred in [since, until). Each comes with all its
recorded events that occurred before `until` (from its first, so that its state is right when
the period starts), in the order ingest applied them: batch after batch (`processed_at`), by
time of occurrence within a batch, an issue's open first among events of the same time (the
events parked for it are applied right after it). What happened is read from the timeline
(the firings' lines carry their target, the tier and whether they breached) and the outbox
(one row per channel a notification was written for, its payload naming the tier and the
person assigned).
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, select
from sqlalchemy.orm import Session

from schemas.events import EventType, IssueEvent
from worker.domain.backtest import Course, Line, Mark, Notice
from worker.store.event_bodies import PROCESSED, unpack
from worker.store.models import Deadline, Issue, OutboxMessage, TimelineEntry

ISSUES = cast(Table, Issue.__table__)
TIMELINE = cast(Table, TimelineEntry.__table__)
OUTBOX = cast(Table, OutboxMessage.__table__)
DEADLINES = cast(Table, Deadline.__table__)
CHUNK = 500  # issues per round of queries
FIRING_KINDS = ("warn", "breach", "escalate", "remind")  # the timeline lines of firings
PRUNED = "its events' contents were pruned (ESCALATOR_EVENT_RETENTION_DAYS) or never recorded"


@dataclass(slots=True)
class Recorded:
    """One issue of the period: its events to replay (None: cannot be), and what happened."""

    issue_id: int
    key: str
    events: list[IssueEvent] | None
    real: Course
    skipped: str = PRUNED  # why `events` is None


def issue_ids(session: Session, since: datetime, until: datetime) -> list[int]:
    """The issues with an event that occurred in [since, until), in id order."""
    query = (
        select(PROCESSED.c.issue_id)
        .where(
            PROCESSED.c.occurred_at >= since,
            PROCESSED.c.occurred_at < until,
            PROCESSED.c.issue_id.is_not(None),
        )
        .distinct()
    )
    return sorted(session.scalars(query))


def recorded(
    session: Session, ids: Sequence[int], since: datetime, until: datetime
) -> Iterator[list[Recorded]]:
    """The issues of `ids`, a chunk at a time."""
    for start in range(0, len(ids), CHUNK):
        yield _chunk(session, ids[start : start + CHUNK], since, until)


def _stream_order(stream_id: str | None) -> tuple[int, ...]:
    try:
        return tuple(int(part) for part in (stream_id or "").split("-"))
    except ValueError:
        return ()


def _chunk(
    session: Session, ids: Sequence[int], since: datetime, until: datetime
) -> list[Recorded]:
    keys = {
        row.id: f"{row.source}:{row.external_id}"
        for row in session.execute(
            select(ISSUES.c.id, ISSUES.c.source, ISSUES.c.external_id).where(ISSUES.c.id.in_(ids))
        )
    }
    rows: dict[int, list[Any]] = {i: [] for i in ids}
    query = select(
        PROCESSED.c.issue_id,
        PROCESSED.c.event_id,
        PROCESSED.c.type,
        PROCESSED.c.occurred_at,
        PROCESSED.c.processed_at,
        PROCESSED.c.stream_id,
        PROCESSED.c.body,
    ).where(PROCESSED.c.issue_id.in_(ids), PROCESSED.c.occurred_at < until)
    for row in session.execute(query):
        rows[row.issue_id].append(row)
    real = _happened(session, ids, keys, since, until)
    found = []
    for issue_id in ids:
        key = keys.get(issue_id, f"#{issue_id}")
        mine = rows[issue_id]
        events: list[IssueEvent] | None = None
        why = PRUNED
        if mine and all(r.body is not None for r in mine):
            mine.sort(
                key=lambda r: (
                    r.processed_at,
                    r.occurred_at,
                    r.type != EventType.OPENED,
                    _stream_order(r.stream_id),
                )
            )
            events, why = _unpacked(mine)
        found.append(Recorded(issue_id, key, events, real.get(issue_id) or Course(key), why))
    return found


def _unpacked(rows: Sequence[Any]) -> tuple[list[IssueEvent] | None, str]:
    """An issue's events, or None and why when one cannot be read (its contents do not
    decompress or parse, or name a field `IssueEvent` does not know): that issue is skipped,
    the backtest goes on."""
    events = []
    for r in rows:
        try:
            events.append(unpack(r.event_id, r.type, r.occurred_at, r.body))
        except (zlib.error, ValueError, TypeError, AttributeError) as exc:  # ValidationError too
            why = f"the recorded contents of event {r.event_id} cannot be read"
            return None, f"{why} ({type(exc).__name__})"
    return events, ""


def _happened(
    session: Session, ids: Sequence[int], keys: dict[int, str], since: datetime, until: datetime
) -> dict[int, Course]:
    """What really happened to these issues in [since, until): the firings and notifications
    (the timeline's lines are read for the issues that are shown: `lines`)."""
    courses = {i: Course(keys.get(i, f"#{i}")) for i in ids}
    data = TIMELINE.c.data
    firings = session.execute(
        select(
            TIMELINE.c.issue_id,
            TIMELINE.c.at,
            TIMELINE.c.kind,
            data["deadline_id"].as_integer().label("deadline_id"),
            data["target"].as_string().label("target"),
            data["tier"].as_string().label("tier"),
            data["breached"].as_boolean().label("breached"),
        )
        .where(
            TIMELINE.c.issue_id.in_(ids),
            TIMELINE.c.at >= since,
            TIMELINE.c.at < until,
            TIMELINE.c.kind.in_(FIRING_KINDS),
        )
        .order_by(TIMELINE.c.at, TIMELINE.c.id)
    ).all()
    old = [r.deadline_id for r in firings if r.target is None and r.deadline_id is not None]
    targets = _targets(session, old)
    for r in firings:
        course = courses[r.issue_id]
        target = r.target or targets.get(r.deadline_id, "?")
        tier = r.tier or "?"
        if r.kind == "escalate":
            course.escalations.append(Mark(r.at, target, tier))
        if r.breached or (r.breached is None and r.kind == "breach"):
            course.breaches.append(Mark(r.at, target, tier))
    payload = OUTBOX.c.payload
    messages = session.execute(
        select(
            OUTBOX.c.issue_id,
            OUTBOX.c.channel,
            OUTBOX.c.kind,
            OUTBOX.c.target,
            payload["occurred_at"].as_string().label("at"),
            payload["tier"].as_string().label("tier"),
            payload["assignee"].as_string().label("person"),
        )
        .where(OUTBOX.c.issue_id.in_(ids), OUTBOX.c.created_at >= since)
        .order_by(OUTBOX.c.created_at)
    )
    grouped: dict[tuple[Any, ...], list[str]] = {}
    for m in messages:
        try:
            at = datetime.fromisoformat(m.at)
            within = since <= at < until
        except (TypeError, ValueError):  # no occurred_at, not a time, or a time without a zone
            continue  # that row is left out; the others count
        if within:
            key = (m.issue_id, at, m.kind, m.target, m.tier or "?", m.person)
            grouped.setdefault(key, []).append(m.channel)
    for (issue_id, at, kind, target, tier, person), channels in grouped.items():
        courses[issue_id].notices.append(Notice(at, kind, target, tier, tuple(channels), person))
    return courses


def lines(session: Session, issue_id: int, since: datetime, until: datetime) -> list[Line]:
    """The issue's timeline in [since, until)."""
    query = (
        select(TIMELINE.c.at, TIMELINE.c.kind, TIMELINE.c.message)
        .where(TIMELINE.c.issue_id == issue_id, TIMELINE.c.at >= since, TIMELINE.c.at < until)
        .order_by(TIMELINE.c.at, TIMELINE.c.id)
    )
    return [Line(r.at, r.kind, r.message) for r in session.execute(query)]


def _targets(session: Session, deadline_ids: list[int]) -> dict[int, str]:
    """The targets of these deadlines (timeline lines written before they carried theirs)."""
    if not deadline_ids:
        return {}
    query = select(DEADLINES.c.id, DEADLINES.c.target).where(DEADLINES.c.id.in_(deadline_ids))
    return {row.id: row.target for row in session.execute(query)}
