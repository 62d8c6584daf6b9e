"""Events that arrived before their issue's `issue.opened`, kept in the database until it does.

Ingest parks such an event (`history.Loaded.park`) and applies it right after the open, in the
same transaction, when the open comes later in the same or a later batch. Two consumers can
race (one parks an acknowledgement while the other commits the open): each checks again after
its commit (`settle` for the keys it touched), and whichever commits last sees the other's row,
so the parked event is applied within moments. A parked event whose issue has not opened after
the parking window becomes a dead letter, with that reason (`expired`, then `drop`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import structlog
from sqlalchemy import delete, select

from schemas.policy import PolicyFile
from worker.domain.clock import Clock
from worker.services.history import lock_issues
from worker.services.ingest import unpark_safely
from worker.services.uow import Effects, Units
from worker.store import repository as repo
from worker.store.db import SessionFactory
from worker.store.models import Issue, Key, ParkedEvent

log = structlog.get_logger("escalator.parking")


@dataclass(frozen=True, slots=True)
class Expired:
    """A parked event whose issue never opened within the window: a dead letter to be."""

    row_id: int
    stream_id: str
    body: str
    reason: str


@dataclass
class Settled:
    """What `settle` applied: effects to run after its commit, and for how many issues."""

    effects: Effects = field(default_factory=Effects)
    issues: int = 0  # issues whose parked events were applied


def settle(
    units: Units,
    policies: PolicyFile,
    clock: Clock,
    keys: Iterable[Key] | None = None,
) -> Settled:
    """Apply the parked events whose issue is open by now (of these issues, or all). The look
    is a read (no write lock on SQLite); a transaction is opened only when there is work."""
    settled = Settled()
    wanted = list(keys) if keys is not None else None
    if wanted == []:
        return settled
    query = select(Issue.source, Issue.external_id).join(
        ParkedEvent,
        (ParkedEvent.source == Issue.source) & (ParkedEvent.external_id == Issue.external_id),
    )
    if wanted is not None:
        query = query.where(repo.by_key(ParkedEvent.__table__, wanted))
    with units.readers() as session:
        opened = list({(source, external_id) for source, external_id in session.execute(query)})
    if not opened:
        return settled
    with units() as uow:
        now = clock.now()
        lock_issues(uow.store, opened)
        for key in opened:  # each in a savepoint: one that fails stays parked, alone
            if loaded := unpark_safely(uow, key, policies, now):
                uow.effects.merge(loaded.effects())
                settled.issues += 1
        settled.effects = uow.effects
    if settled.issues:
        log.info("parking.settled", issues=settled.issues)
    return settled


def expired(sessions: SessionFactory, clock: Clock, window_s: float) -> list[Expired]:
    """Parked events older than the window: their issue never opened, or applying them kept
    failing after it did."""
    cutoff = clock.now() - timedelta(seconds=window_s)
    with sessions() as session:
        rows = session.execute(
            select(ParkedEvent, Issue.id)
            .outerjoin(
                Issue,
                (Issue.source == ParkedEvent.source)
                & (Issue.external_id == ParkedEvent.external_id),
            )
            .where(ParkedEvent.parked_at < cutoff)
            .order_by(ParkedEvent.id)
        ).all()
        return [
            Expired(row.id, row.stream_id or "", row.body, _reason(row, issue_id, window_s))
            for row, issue_id in rows
        ]


def _reason(row: ParkedEvent, issue_id: int | None, window_s: float) -> str:
    key = f"{row.source}:{row.external_id}"
    if issue_id is not None:
        return (
            f"issue {key} is open, but applying this event after its issue.opened kept "
            f"failing (see the ingest log) for {_minutes(window_s)}"
        )
    return (
        f"issue {key} was never opened: parked at {_at(row.parked_at)}, it waited "
        f"{_minutes(window_s)} for its issue.opened"
    )


def drop(sessions: SessionFactory, row_ids: list[int]) -> None:
    """Forget parked events once they are in the dead-letter stream."""
    if row_ids:
        with sessions() as session, session.begin():
            session.execute(delete(ParkedEvent).where(ParkedEvent.id.in_(row_ids)))


def _at(when: datetime) -> str:
    return when.isoformat(timespec="seconds")


def _minutes(seconds: float) -> str:
    return f"{seconds / 60:g} min"
