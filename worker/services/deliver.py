"""Delivering outbox messages at least once: lease, send, record; back off and retry; dead after N.

A message is leased with a conditional UPDATE before it is sent, so the retry task and the
periodic sweep never send it at the same moment; if the sender dies, the lease runs out and the
sweep hands the message out again with the same id. The sweep sends only messages that no
delivery task holds (`worker.broker.inflight`): a backlog is never sent twice.

Lock order, the same for every writer on PostgreSQL (ingest, firing, delivery, the CLI), so no
two transactions ever wait on each other in a cycle:

1. issue rows, in id order (ingest and firing: FOR UPDATE; delivery: FOR KEY SHARE, taken by
   `lock_issues` before anything else, for every issue whose messages the transaction writes
   or whose timeline it extends);
2. deadline rows;
3. outbox rows (delivery's conditional lease UPDATE, or the record of an attempt);
4. timeline inserts (their foreign key takes KEY SHARE on the issue, already held by then).

One exception never waits, so it cannot close a cycle: a digest gathers the other issues'
held messages with FOR UPDATE SKIP LOCKED (a row someone holds is left for its own delivery).
"""

from __future__ import annotations

import random
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

import structlog
from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from config.settings import Settings
from schemas.messages import Notification
from worker.broker.effects import DELIVER_BATCH, INFRASTRUCTURE
from worker.broker.inflight import inflight
from worker.domain.clock import Clock
from worker.errors import EscalatorError, PermanentError, RateLimited
from worker.notify.channels import Channel
from worker.roles.celery_app import app
from worker.services import digest
from worker.store import repository as repo
from worker.store.db import SessionFactory
from worker.store.models import Issue, OutboxMessage

if TYPE_CHECKING:
    from worker.bootstrap import Container

log = structlog.get_logger("escalator.dispatcher")

FINISHED = frozenset({"sent", "cancelled", "dead"})  # outcomes after which no task needs the id
SWEEP_SCAN = 5000  # due messages the sweep looks at, oldest first
SWEEP_TASK = 100  # message ids per delivery task the sweep sends, so workers share them


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


@dataclass(frozen=True, slots=True)
class Delivery:
    """The outcome of one attempt: sent, skipped, cancelled, dead, or retry (or, held for a
    digest window, try again) in `retry_in` seconds."""

    state: str
    retry_in: float | None = None


def backoff(attempt: int, base: float, cap: float, rng: random.Random | None = None) -> float:
    """Exponential backoff with full jitter: uniform in [base, min(cap, base * 2**(attempt-1))]."""
    ceiling = min(cap, base * 2 ** max(attempt - 1, 0))
    return (rng or random).uniform(min(base, ceiling), ceiling)


def _lease(
    sessions: SessionFactory, settings: Settings, message_id: str, now: datetime
) -> tuple[Delivery, OutboxMessage | None, Notification | None]:
    """Take the message for one attempt; cancel it if moot; fold its digest window into it."""
    with sessions() as session, session.begin():
        lock_issues(session, [message_id])
        leased = session.execute(
            update(OutboxMessage)
            .where(
                OutboxMessage.id == message_id,
                OutboxMessage.state == "pending",
                OutboxMessage.next_attempt_at <= now,
                or_(OutboxMessage.lease_until.is_(None), OutboxMessage.lease_until < now),
            )
            .values(
                lease_until=now + timedelta(seconds=settings.delivery_lease_s),
                attempts=OutboxMessage.attempts + 1,
            )
        ).rowcount  # type: ignore[attr-defined]
        if not leased:
            row = session.get(OutboxMessage, message_id)
            if row and row.state == "pending" and row.attempts == 0 and row.next_attempt_at > now:
                # held for a digest window: come back when it closes
                return Delivery("held", (row.next_attempt_at - now).total_seconds()), None, None
            return Delivery("skipped"), None, None
        row, lifecycle, clocks = session.execute(
            select(OutboxMessage, Issue.lifecycle, Issue.clocks)
            .join(Issue, Issue.id == OutboxMessage.issue_id)
            .where(OutboxMessage.id == message_id)
        ).one()
        if digest.cancel_if_moot(session, row, lifecycle, clocks):
            # its target met or the issue resolved since it was written: checked again here
            return Delivery("cancelled"), None, None
        message = None
        if row.attempts == 1 and digest.held(row):
            message = digest.gather(session, row, now)
            if message is not None:
                row.payload = message.model_dump(mode="json")
        if message is None:
            message = Notification.model_validate(row.payload)
        session.flush()
        session.expunge(row)
        return Delivery("leased"), row, message


def _writeback(row: OutboxMessage) -> bool:
    return row.channel.startswith("writeback:")


@dataclass(frozen=True, slots=True)
class Attempt:
    """What sending once gave: no error, or the error and how to treat it."""

    error: str | None = None
    permanent: bool = False
    retry_after: float | None = None


def attempt(channels: dict[str, Channel], channel_name: str, message: Notification) -> Attempt:
    """Send through the channel; every failure becomes an Attempt, never an exception."""
    try:
        channel = channels.get(channel_name)
        if channel is None:
            raise PermanentError(f"no channel named {channel_name!r} in the policy file")
        channel.send(message)
    except EscalatorError as exc:
        retry_after = exc.retry_after if isinstance(exc, RateLimited) else None
        return Attempt(str(exc), isinstance(exc, PermanentError), retry_after)
    except Exception as exc:  # a channel bug must not lose the message
        return Attempt(f"{type(exc).__name__}: {exc}")
    return Attempt()


def what_of(row: OutboxMessage, message: Notification) -> str:
    return "write-back" if _writeback(row) else message.kind.value


def record_sent(
    session: Session, row: OutboxMessage, message: Notification, attempts: int, done: datetime
) -> None:
    """Mark the row (and what its digest carries) sent, with a timeline entry each."""
    row.lease_until, row.last_error = None, None
    for carried in [row, *digest.merged_rows(session, message)]:
        carried.state, carried.sent_at = "sent", done
        repo.add_timeline(
            session,
            carried.issue_id,
            done,
            "notified",
            f"{what_of(row, message)} sent to {message.tier} via {row.channel}"
            + (f" (digest {row.id})" if message.covers else ""),
            message_id=carried.id,
            attempts=attempts,
        )


def record_failure(
    session: Session,
    row: OutboxMessage,
    message: Notification,
    attempts: int,
    outcome: Attempt,
    done: datetime,
    settings: Settings,
) -> Delivery:
    """Dead, or pending again after the backoff (or the receiver's Retry-After)."""
    error, channel_name = outcome.error or "", row.channel
    row.lease_until, row.last_error = None, error
    if row.state != "pending":  # cancelled while it was being sent
        return Delivery(row.state)
    if outcome.permanent or attempts >= settings.delivery_max_attempts:
        row.state = "dead"
        repo.add_timeline(
            session,
            row.issue_id,
            done,
            "notification_dead",
            f"{what_of(row, message)} to {channel_name} is dead after {attempts} attempts: {error}",
            message_id=row.id,
        )
        log.error("notification.dead", message_id=row.id, channel=channel_name, error=error)
        return Delivery("dead")
    delay = backoff(attempts, settings.delivery_backoff_s, settings.delivery_backoff_max_s)
    if outcome.retry_after is not None:  # the receiver's rate limit wins over our backoff
        delay = max(delay, outcome.retry_after)
    row.next_attempt_at = done + timedelta(seconds=delay)
    if _writeback(row):
        repo.add_timeline(
            session,
            row.issue_id,
            done,
            "writeback_failed",
            f"write-back via {channel_name} failed (attempt {attempts}), retry in "
            f"{delay:.1f}s: {error}",
            message_id=row.id,
        )
    log.warning(
        "notification.retry",
        message_id=row.id,
        channel=channel_name,
        attempt=attempts,
        retry_in_s=round(delay, 2),
        error=error,
    )
    return Delivery("retry", delay)


def deliver(
    sessions: SessionFactory,
    channels: dict[str, Channel],
    clock: Clock,
    settings: Settings,
    message_id: str,
) -> Delivery:
    """Attempt one outbox message."""
    lease, leased_row, message = _lease(sessions, settings, message_id, clock.now())
    if leased_row is None or message is None:
        return lease
    outcome = attempt(channels, leased_row.channel, message)
    done = clock.now()
    with sessions() as session, session.begin():
        lock_issues(session, [message_id, *message.covers])
        row = session.get_one(OutboxMessage, message_id)
        if outcome.error is None:
            record_sent(session, row, message, leased_row.attempts, done)
            return Delivery("sent")
        return record_failure(session, row, message, leased_row.attempts, outcome, done, settings)


def due_messages(
    sessions: SessionFactory, clock: Clock, grace_s: float, limit: int = 1000
) -> list[str]:
    """Pending messages whose next attempt is overdue by `grace_s` and that nobody holds."""
    now = clock.now()
    cutoff = now - timedelta(seconds=grace_s)
    with sessions() as session:
        return list(
            session.scalars(
                select(OutboxMessage.id)
                .where(
                    OutboxMessage.state == "pending",
                    OutboxMessage.next_attempt_at <= cutoff,
                    or_(OutboxMessage.lease_until.is_(None), OutboxMessage.lease_until < now),
                )
                .order_by(OutboxMessage.next_attempt_at)
                .limit(limit)
            )
        )


def sweep_outbox(c: Container) -> None:
    """Send again the pending, due messages whose delivery task is gone (the scheduler calls
    this): those without a live in-flight mark, marked in the same atomic step, so several
    schedulers never both send one, and a message waiting in a backlog is never sent twice."""
    settings = c.settings
    due = due_messages(c.readers, c.clock, settings.outbox_sweep_every_s, SWEEP_SCAN)
    if not due:
        return
    marks = inflight(c.redis)
    now = c.clock.now().timestamp()
    lost = marks.take(due, now, now + settings.delivery_queued_lease_s)
    if not lost:
        return
    log.warning("outbox.swept", count=len(lost), due=len(due))
    for start in range(0, len(lost), SWEEP_TASK):
        chunk = lost[start : start + SWEEP_TASK]
        try:
            app.send_task(DELIVER_BATCH, args=[chunk])
        except INFRASTRUCTURE:
            marks.unmark(lost[start:])  # not sent: the next sweep tries again
            raise
        marks.counted(len(chunk))
