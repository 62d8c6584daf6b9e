"""Delivering outbox messages at least once: lease, send, record; back off and retry; dead after N.

A message is leased with a conditional UPDATE before it is sent, so the retry task and the
periodic sweep never send it at the same moment; if the sender dies, the lease runs out and the
sweep hands the message out again with the same id.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import timedelta

import structlog
from sqlalchemy import or_, select, update

from config.settings import Settings
from schemas.messages import Notification
from worker.clock import Clock
from worker.errors import EscalatorError, PermanentError
from worker.notify.channels import Channel
from worker.store import repository as repo
from worker.store.db import SessionFactory
from worker.store.models import OutboxMessage

log = structlog.get_logger("escalator.dispatcher")


@dataclass(frozen=True, slots=True)
class Delivery:
    """The outcome of one attempt: sent, skipped, retry in `retry_in` seconds, or dead."""

    state: str
    retry_in: float | None = None


def backoff(attempt: int, base: float, cap: float, rng: random.Random | None = None) -> float:
    """Exponential backoff with full jitter: uniform in [base, min(cap, base * 2**(attempt-1))]."""
    ceiling = min(cap, base * 2 ** max(attempt - 1, 0))
    return (rng or random).uniform(min(base, ceiling), ceiling)


def deliver(
    sessions: SessionFactory,
    channels: dict[str, Channel],
    clock: Clock,
    settings: Settings,
    message_id: str,
) -> Delivery:
    """Attempt one outbox message."""
    now = clock.now()
    with sessions() as session, session.begin():
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
            return Delivery("skipped")
        row = session.get_one(OutboxMessage, message_id)
        channel_name, attempts, payload = row.channel, row.attempts, row.payload
    message = Notification.model_validate(payload)
    error: str | None = None
    permanent = False
    try:
        channel = channels.get(channel_name)
        if channel is None:
            raise PermanentError(f"no channel named {channel_name!r} in the policy file")
        channel.send(message)
    except EscalatorError as exc:
        error, permanent = str(exc), isinstance(exc, PermanentError)
    except Exception as exc:  # a channel bug must not lose the message
        error = f"{type(exc).__name__}: {exc}"
    done = clock.now()
    with sessions() as session, session.begin():
        row = session.get_one(OutboxMessage, message_id)
        row.lease_until = None
        if error is None:
            row.state, row.sent_at, row.last_error = "sent", done, None
            repo.add_timeline(
                session,
                row.issue_id,
                done,
                "notified",
                f"{message.kind.value} sent to {message.tier} via {channel_name}",
                message_id=message_id,
                attempts=attempts,
            )
            return Delivery("sent")
        row.last_error = error
        if permanent or attempts >= settings.delivery_max_attempts:
            row.state = "dead"
            repo.add_timeline(
                session,
                row.issue_id,
                done,
                "notification_dead",
                f"{message.kind.value} to {channel_name} is dead after {attempts} attempts: "
                f"{error}",
                message_id=message_id,
            )
            log.error("notification.dead", message_id=message_id, channel=channel_name, error=error)
            return Delivery("dead")
        delay = backoff(attempts, settings.delivery_backoff_s, settings.delivery_backoff_max_s)
        row.next_attempt_at = done + timedelta(seconds=delay)
    log.warning(
        "notification.retry",
        message_id=message_id,
        channel=channel_name,
        attempt=attempts,
        retry_in_s=round(delay, 2),
        error=error,
    )
    return Delivery("retry", delay)


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
