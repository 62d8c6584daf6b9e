"""Recording what an attempt gave: sent (with a timeline entry), dead, or pending again after
the backoff; the plain successes of a batch in two statements."""

from __future__ import annotations

from datetime import datetime, timedelta

import structlog
from sqlalchemy import insert, select, update
from sqlalchemy.orm import Session

from config.settings import Settings
from schemas.messages import Notification
from worker.domain.retry import jittered
from worker.domain.states import OutboxState, is_writeback
from worker.services.outbox import digest
from worker.services.outbox.lease import lock_issues
from worker.services.outbox.outcomes import Attempt, Delivery, Sent
from worker.store import repository as repo
from worker.store.models import OutboxMessage, TimelineEntry

log = structlog.get_logger("escalator.dispatcher")


def what_of(row: OutboxMessage, message: Notification) -> str:
    return "write-back" if is_writeback(row.channel) else message.kind.value


def record(
    session: Session, sent: list[Sent], done: datetime, settings: Settings
) -> dict[str, Delivery]:
    """Record every attempt: the plain successes in two statements, the rest (digests,
    failures) one by one. Takes the lock order's first locks itself."""
    if not sent:
        return {}
    lock_issues(session, [r.id for r, _, _ in sent] + [i for _, m, _ in sent for i in m.covers])
    plain = [(r, m) for r, m, result in sent if result.error is None and not m.covers]
    _record_plain(session, plain, done)
    outcomes = {r.id: Delivery(OutboxState.SENT) for r, _ in plain}
    others = [item for item in sent if item[2].error is not None or item[1].covers]
    if not others:
        return outcomes
    rows = {
        r.id: r
        for r in session.scalars(
            select(OutboxMessage)
            .where(OutboxMessage.id.in_([r.id for r, _, _ in others]))
            .execution_options(populate_existing=True)
        )
    }
    for leased, message, result in others:
        row = rows[leased.id]
        if result.error is None:
            record_sent(session, row, message, leased.attempts, done)
            outcomes[row.id] = Delivery(OutboxState.SENT)
        else:
            outcomes[row.id] = record_failure(
                session, row, message, leased.attempts, result, done, settings
            )
    return outcomes


def _record_plain(
    session: Session, sent: list[tuple[OutboxMessage, Notification]], done: datetime
) -> None:
    """The common case in two statements: mark them sent, add their timeline entries."""
    if not sent:
        return
    session.execute(
        update(OutboxMessage)
        .where(OutboxMessage.id.in_([r.id for r, _ in sent]))
        .values(state=OutboxState.SENT, sent_at=done, lease_until=None, last_error=None)
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


def record_sent(
    session: Session, row: OutboxMessage, message: Notification, attempts: int, done: datetime
) -> None:
    """Mark the row (and what its digest carries) sent, with a timeline entry each."""
    row.lease_until, row.last_error = None, None
    for carried in [row, *digest.merged_rows(session, message)]:
        carried.state, carried.sent_at = OutboxState.SENT, done
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
    if row.state != OutboxState.PENDING:  # cancelled while it was being sent
        return Delivery(row.state)
    if outcome.permanent or attempts >= settings.delivery_max_attempts:
        row.state = OutboxState.DEAD
        repo.add_timeline(
            session,
            row.issue_id,
            done,
            "notification_dead",
            f"{what_of(row, message)} to {channel_name} is dead after {attempts} attempts: {error}",
            message_id=row.id,
        )
        log.error("notification.dead", message_id=row.id, channel=channel_name, error=error)
        return Delivery(OutboxState.DEAD)
    delay = jittered(attempts, settings.delivery_backoff_s, settings.delivery_backoff_max_s)
    if outcome.retry_after is not None:  # the receiver's rate limit wins over our backoff
        delay = max(delay, outcome.retry_after)
    row.next_attempt_at = done + timedelta(seconds=delay)
    if is_writeback(row.channel):
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
