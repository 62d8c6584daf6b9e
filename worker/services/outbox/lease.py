"""Leasing outbox rows for an attempt: the one lease for one message and for many.

One implementation for one message and for many (`worker.services.deliver` uses both ways):
a message is leased with a conditional UPDATE before it is sent, so the retry task and the
periodic sweep never send it at the same moment; if the sender dies, the lease runs out and
the sweep hands the message out again with the same id.

Lock order, the same for every writer on PostgreSQL (ingest, firing, delivery, the CLI), so no
two transactions ever wait on each other in a cycle:

1. issue rows, in id order (ingest and firing: FOR UPDATE; delivery: FOR KEY SHARE, taken by
   `lock_issues` before anything else, for every issue whose messages the transaction writes
   or whose timeline it extends);
2. deadline rows;
3. outbox rows (the conditional lease UPDATE, or the record of an attempt);
4. timeline inserts (their foreign key takes KEY SHARE on the issue, already held by then).

One exception never waits, so it cannot close a cycle: a digest gathers the other issues'
held messages with FOR UPDATE SKIP LOCKED (a row someone holds is left for its own delivery).
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import and_, not_, or_, select, update
from sqlalchemy.orm import Session

from worker.domain.states import OutboxState
from worker.services.outbox import digest
from worker.services.outbox.outcomes import Delivery
from worker.store.models import Issue, OutboxMessage


@dataclass(frozen=True, slots=True)
class Leased:
    """What a lease took (`rows`, each for one attempt) and cancelled as moot instead."""

    rows: list[OutboxMessage]
    cancelled: list[str]


def lock_issues(session: Session, message_ids: Collection[str]) -> None:
    """The first locks of the order (see the module): KEY SHARE on the messages' issues, in
    id order. It waits for an ingest or a firing that holds one of them, before this
    transaction holds any outbox row they may need (on SQLite, one writer, a plain SELECT)."""
    if not message_ids:
        return
    session.execute(
        select(Issue.id)
        .where(
            Issue.id.in_(
                select(OutboxMessage.issue_id).where(OutboxMessage.id.in_(list(message_ids)))
            )
        )
        .order_by(Issue.id)
        .with_for_update(read=True, key_share=True)
    ).all()


def lease(
    session: Session, message_ids: Sequence[str], now: datetime, lease_s: float, heads: bool
) -> Leased:
    """Lease the pending, due, unheld rows among these ids for one attempt each, each with its
    issue's state checked: a row that has become moot (its target met, its issue resolved) is
    cancelled instead.

    A row held for a digest window (never tried, due after it was written) is leased only with
    `heads`, one at a time: its delivery folds the window (`digest.gather`).
    """
    held = and_(
        OutboxMessage.attempts == 0, OutboxMessage.next_attempt_at > OutboxMessage.created_at
    )
    # RETURNING: exactly the rows this statement leased (another task may have taken others
    # with the same lease_until in the same instant).
    mine = session.scalars(
        update(OutboxMessage)
        .where(
            OutboxMessage.id.in_(list(message_ids)),
            OutboxMessage.state == OutboxState.PENDING,
            OutboxMessage.next_attempt_at <= now,
            or_(OutboxMessage.lease_until.is_(None), OutboxMessage.lease_until < now),
            *(() if heads else (not_(held),)),
        )
        .values(lease_until=now + timedelta(seconds=lease_s), attempts=OutboxMessage.attempts + 1)
        .returning(OutboxMessage.id)
        .execution_options(synchronize_session=False)
    ).all()
    if not mine:
        return Leased([], [])
    leased = session.execute(
        select(OutboxMessage, Issue.lifecycle, Issue.clocks)
        .join(Issue, Issue.id == OutboxMessage.issue_id)
        .where(OutboxMessage.id.in_(mine))
        .execution_options(populate_existing=True)
    ).all()
    taken = Leased([], [])
    for row, lifecycle, clocks in leased:
        # its target met or the issue resolved since it was written: checked again here
        if digest.cancel_if_moot(session, row, lifecycle, clocks):
            taken.cancelled.append(row.id)
        else:
            taken.rows.append(row)
    return taken


def waiting(
    session: Session, message_ids: Sequence[str], now: datetime
) -> dict[str, Delivery | None]:
    """What became of ids a lease did not take, in one SELECT: held for a digest window (come
    back when it closes), skipped (another task holds it, or it is done), or None: at the head
    of a digest window that has closed, to be leased with `heads`."""
    windows = dict(
        session.execute(
            select(OutboxMessage.id, OutboxMessage.next_attempt_at).where(
                OutboxMessage.id.in_(list(message_ids)),
                OutboxMessage.state == OutboxState.PENDING,
                OutboxMessage.attempts == 0,
                OutboxMessage.next_attempt_at > OutboxMessage.created_at,
            )
        ).all()
    )
    outcomes: dict[str, Delivery | None] = {}
    for message_id in message_ids:
        due = windows.get(message_id)
        if due is None:
            outcomes[message_id] = Delivery("skipped")
        elif due > now:
            outcomes[message_id] = Delivery("held", (due - now).total_seconds())
        else:
            outcomes[message_id] = None
    return outcomes


def retry_dead(session: Session, message_ids: Sequence[str] | None, now: datetime) -> list[str]:
    """Make dead messages (these, or all with None) pending again with a fresh count of
    attempts, due now; the ids that were dead."""
    where = [OutboxMessage.state == OutboxState.DEAD]
    if message_ids is not None:
        where.append(OutboxMessage.id.in_(list(message_ids)))
    chosen = list(session.scalars(select(OutboxMessage.id).where(*where)))
    if chosen:
        lock_issues(session, chosen)  # the lock order: issues first, then outbox rows
        session.execute(
            update(OutboxMessage)
            .where(OutboxMessage.id.in_(chosen), OutboxMessage.state == OutboxState.DEAD)
            .values(state=OutboxState.PENDING, attempts=0, next_attempt_at=now, lease_until=None)
            .execution_options(synchronize_session=False)
        )
    return chosen


def due_messages(session: Session, now: datetime, grace_s: float, limit: int) -> list[str]:
    """Pending messages whose next attempt is overdue by `grace_s` and that nobody holds."""
    cutoff = now - timedelta(seconds=grace_s)
    return list(
        session.scalars(
            select(OutboxMessage.id)
            .where(
                OutboxMessage.state == OutboxState.PENDING,
                OutboxMessage.next_attempt_at <= cutoff,
                or_(OutboxMessage.lease_until.is_(None), OutboxMessage.lease_until < now),
            )
            .order_by(OutboxMessage.next_attempt_at)
            .limit(limit)
        )
    )
