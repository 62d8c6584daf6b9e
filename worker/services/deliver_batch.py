"""Delivering many outbox messages with two transactions instead of two per message.

The batch leases every id it is given in one UPDATE, sends them up to
ESCALATOR_DELIVERY_CONCURRENCY at a time on the channels' kept-alive connections, and records
every outcome in one transaction. The rules are
those of `dispatcher.deliver` (it shares the recording): a message that is moot is cancelled,
and a message held for a digest window is left to `deliver`, which knows how to fold windows.
The ids it could not lease (held by another task, already done, or waiting for a digest window)
are told apart in one SELECT, not one transaction each. Locks are taken in the order
`worker.services.deliver` documents: the messages' issues first, then their outbox rows.
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta

from sqlalchemy import and_, insert, not_, or_, select, update
from sqlalchemy.orm import Session

from config.settings import Settings
from schemas.messages import Notification
from worker.domain.clock import Clock
from worker.notify.channels import Channel
from worker.services import digest
from worker.services.deliver import (
    Attempt,
    Delivery,
    attempt,
    deliver,
    lock_issues,
    record_failure,
    record_sent,
    what_of,
)
from worker.store.db import SessionFactory
from worker.store.models import Issue, OutboxMessage, TimelineEntry

CHUNK = 50  # messages leased at once: a lease must outlast sending all of them


def deliver_many(
    sessions: SessionFactory,
    channels: dict[str, Channel],
    clock: Clock,
    settings: Settings,
    message_ids: list[str],
) -> dict[str, Delivery]:
    """Attempt each message once, CHUNK at a time; the outcome of each."""
    outcomes: dict[str, Delivery] = {}
    for start in range(0, len(message_ids), CHUNK):
        chunk = message_ids[start : start + CHUNK]
        outcomes.update(_deliver_chunk(sessions, channels, clock, settings, chunk))
    return outcomes


def _deliver_chunk(
    sessions: SessionFactory,
    channels: dict[str, Channel],
    clock: Clock,
    settings: Settings,
    message_ids: list[str],
) -> dict[str, Delivery]:
    if not message_ids:
        return {}
    now = clock.now()
    lease_until = now + timedelta(seconds=settings.delivery_lease_s)
    outcomes: dict[str, Delivery] = {}
    work: list[tuple[OutboxMessage, Notification]] = []
    with sessions() as session, session.begin():
        lock_issues(session, message_ids)
        # RETURNING: exactly the rows this statement leased (another batch may have taken
        # others with the same lease_until in the same instant).
        mine = session.scalars(
            update(OutboxMessage)
            .where(
                OutboxMessage.id.in_(message_ids),
                OutboxMessage.state == "pending",
                OutboxMessage.next_attempt_at <= now,
                or_(OutboxMessage.lease_until.is_(None), OutboxMessage.lease_until < now),
                # held for a digest window: one at a time, through deliver()
                not_(
                    and_(
                        OutboxMessage.attempts == 0,
                        OutboxMessage.next_attempt_at > OutboxMessage.created_at,
                    )
                ),
            )
            .values(lease_until=lease_until, attempts=OutboxMessage.attempts + 1)
            .returning(OutboxMessage.id)
            .execution_options(synchronize_session=False)
        ).all()
        leased = (
            session.execute(
                select(OutboxMessage, Issue.lifecycle, Issue.clocks)
                .join(Issue, Issue.id == OutboxMessage.issue_id)
                .where(OutboxMessage.id.in_(mine))
            ).all()
            if mine
            else []
        )
        for row, lifecycle, clocks in leased:
            if digest.cancel_if_moot(session, row, lifecycle, clocks):
                outcomes[row.id] = Delivery("cancelled")
            else:
                work.append((row, Notification.model_validate(row.payload)))
        session.flush()
        session.expunge_all()
    order = {message_id: n for n, message_id in enumerate(message_ids)}
    work.sort(key=lambda item: order[item[0].id])  # in the order they were written
    sent = _send_all(channels, work, settings.delivery_concurrency)
    done = clock.now()
    if sent:
        with sessions() as session, session.begin():
            lock_issues(
                session, [r.id for r, m, _ in sent] + [i for _, m, _ in sent for i in m.covers]
            )
            plain = [(r, m) for r, m, result in sent if result.error is None and not m.covers]
            _record_plain(session, plain, done)
            outcomes.update((r.id, Delivery("sent")) for r, _ in plain)
            others = [item for item in sent if item[2].error is not None or item[1].covers]
            rows = {
                r.id: r
                for r in session.scalars(
                    select(OutboxMessage).where(OutboxMessage.id.in_([r.id for r, _, _ in others]))
                )
            }
            for leased_row, message, result in others:
                row = rows[leased_row.id]
                if result.error is None:
                    record_sent(session, row, message, leased_row.attempts, done)
                    outcomes[row.id] = Delivery("sent")
                else:
                    outcomes[row.id] = record_failure(
                        session, row, message, leased_row.attempts, result, done, settings
                    )
    unleased = [m for m in message_ids if m not in outcomes]
    outcomes.update(_unleased(sessions, channels, clock, settings, unleased))
    return outcomes


def _unleased(
    sessions: SessionFactory,
    channels: dict[str, Channel],
    clock: Clock,
    settings: Settings,
    message_ids: list[str],
) -> dict[str, Delivery]:
    """What became of the ids the batch could not lease, one SELECT for the lot: held for a
    digest window (come back when it closes), skipped (another task holds it, or it is done),
    or at the head of a digest window that has closed, which `deliver` folds (one per window:
    the others join its digest, and the next SELECT finds them merged)."""
    outcomes: dict[str, Delivery] = {}
    while message_ids:
        now = clock.now()
        with sessions() as session:
            rows = {
                message_id: (next_at, created_at)
                for message_id, next_at, created_at in session.execute(
                    select(
                        OutboxMessage.id, OutboxMessage.next_attempt_at, OutboxMessage.created_at
                    ).where(
                        OutboxMessage.id.in_(message_ids),
                        OutboxMessage.state == "pending",
                        OutboxMessage.attempts == 0,
                        OutboxMessage.next_attempt_at > OutboxMessage.created_at,
                    )
                )
            }
        closing = []
        for message_id in message_ids:
            if message_id not in rows:
                outcomes[message_id] = Delivery("skipped")
            elif rows[message_id][0] > now:
                outcomes[message_id] = Delivery("held", (rows[message_id][0] - now).total_seconds())
            else:
                closing.append(message_id)
        if not closing:
            break
        head, *message_ids = closing
        outcomes[head] = deliver(sessions, channels, clock, settings, head)
    return outcomes


_pools: dict[tuple[int, int], ThreadPoolExecutor] = {}  # (pid, size): this process's threads
_pools_lock = threading.Lock()


def _senders(threads: int) -> ThreadPoolExecutor:
    """This process's sending threads, started once (not per batch) and not shared over fork."""
    key = (os.getpid(), threads)
    with _pools_lock:
        if key not in _pools:
            _pools[key] = ThreadPoolExecutor(threads, "escalator-send")
        return _pools[key]


def _send_all(
    channels: dict[str, Channel], work: list[tuple[OutboxMessage, Notification]], threads: int
) -> list[tuple[OutboxMessage, Notification, Attempt]]:
    """Send every message, up to `threads` at once (receivers are slow; the sends overlap)."""
    if threads <= 1 or len(work) <= 1:
        return [(row, message, attempt(channels, row.channel, message)) for row, message in work]
    results = _senders(threads).map(lambda item: attempt(channels, item[0].channel, item[1]), work)
    return [(row, message, result) for (row, message), result in zip(work, results, strict=True)]


def _record_plain(
    session: Session, sent: list[tuple[OutboxMessage, Notification]], done: datetime
) -> None:
    """The common case in two statements: mark them sent, add their timeline entries."""
    if not sent:
        return
    session.execute(
        update(OutboxMessage)
        .where(OutboxMessage.id.in_([r.id for r, _ in sent]))
        .values(state="sent", sent_at=done, lease_until=None, last_error=None)
        .execution_options(synchronize_session=False)
    )
    session.execute(
        insert(TimelineEntry),
        [
            {
                "issue_id": row.issue_id,
                "at": done,
                "kind": "notified",
                "message": f"{what_of(row, message)} sent to {message.tier} via {row.channel}",
                "data": {"message_id": row.id, "attempts": row.attempts},
            }
            for row, message in sent
        ],
    )
