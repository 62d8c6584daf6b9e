"""Recording what an attempt gave: sent (with a timeline entry), dead, or pending again after
the backoff; the plain successes of a batch in two statements."""

from __future__ import annotations

from datetime import datetime, timedelta

import structlog

from config.settings import Settings
from schemas.messages import Notification
from worker.domain import wording
from worker.domain.retry import jittered
from worker.domain.states import OutboxState, is_writeback
from worker.services.outbox import digest
from worker.services.outbox.outcomes import Attempt, Delivery, Sent
from worker.services.repositories import Store
from worker.store.models import OutboxMessage

log = structlog.get_logger("escalator.dispatcher")


def what_of(row: OutboxMessage, message: Notification) -> str:
    return wording.what(message.kind.value, is_writeback(row.channel))


def sent_line(row: OutboxMessage, message: Notification) -> str:
    """The timeline line of a message sent."""
    digest = row.id if message.covers else None
    return wording.sent(what_of(row, message), message.tier, row.channel, digest)


def record(
    store: Store, sent: list[Sent], done: datetime, settings: Settings
) -> dict[str, Delivery]:
    """Record every attempt: the plain successes in bulk, the rest (digests, failures) one
    by one. Takes the lock order's first locks itself."""
    if not sent:
        return {}
    rows = store.outbox
    rows.lock_issues([r.id for r, _, _ in sent] + [i for _, m, _ in sent for i in m.covers])
    plain = [(r, m) for r, m, result in sent if result.error is None and not m.covers]
    rows.mark_sent([(r, sent_line(r, m)) for r, m in plain], done)
    outcomes = {r.id: _sent(r, done) for r, _ in plain}
    others = [item for item in sent if item[2].error is not None or item[1].covers]
    if not others:
        return outcomes
    now_held = rows.rows([r.id for r, _, _ in others])
    for leased, message, result in others:
        row = now_held[leased.id]
        if result.error is None:
            record_sent(store, row, message, leased.attempts, done)
            outcomes[row.id] = _sent(row, done)
        else:
            outcomes[row.id] = record_failure(
                store, row, message, leased.attempts, result, done, settings
            )
    return outcomes


def _sent(row: OutboxMessage, done: datetime) -> Delivery:
    return Delivery.of(row, OutboxState.SENT, latency_s=(done - row.created_at).total_seconds())


def record_sent(
    store: Store, row: OutboxMessage, message: Notification, attempts: int, done: datetime
) -> None:
    """Mark the row (and what its digest carries) sent, with a timeline entry each."""
    row.lease_until, row.last_error = None, None
    line = sent_line(row, message)
    for carried in [row, *digest.merged_rows(store.outbox, message)]:
        carried.state, carried.sent_at = OutboxState.SENT, done
        data = {"message_id": carried.id, "attempts": attempts}
        store.timeline.add(carried.issue_id, done, "notified", line, data)


def record_failure(
    store: Store,
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
        return Delivery.of(row, row.state)
    if outcome.permanent or attempts >= settings.delivery_max_attempts:
        row.state = OutboxState.DEAD
        what = what_of(row, message)
        line = wording.dead(what, channel_name, attempts, error)
        store.timeline.add(row.issue_id, done, "notification_dead", line, {"message_id": row.id})
        log.error("notification.dead", message_id=row.id, channel=channel_name, error=error)
        return Delivery.of(row, OutboxState.DEAD)
    delay = jittered(attempts, settings.delivery_backoff_s, settings.delivery_backoff_max_s)
    if outcome.retry_after is not None:  # the receiver's rate limit wins over our backoff
        delay = max(delay, outcome.retry_after)
    row.next_attempt_at = done + timedelta(seconds=delay)
    if is_writeback(row.channel):
        line = wording.writeback_failed(channel_name, attempts, delay, error)
        store.timeline.add(row.issue_id, done, "writeback_failed", line, {"message_id": row.id})
    log.warning(
        "notification.retry",
        message_id=row.id,
        channel=channel_name,
        attempt=attempts,
        retry_in_s=round(delay, 2),
        error=error,
    )
    return Delivery.of(row, "retry", delay)
