"""Delivering outbox messages at least once: lease, send, record; back off and retry; dead after N.

`deliver` attempts one message (a retry, or the head of a digest window, which it folds);
`deliver_many` attempts the messages one transaction wrote with two transactions for every
CHUNK of them, sending up to ESCALATOR_DELIVERY_CONCURRENCY at a time on the channels' kept-alive
connections. Both lease and record with `worker.services.outbox`. What a delivery leaves for
Redis and Celery (forget the in-flight marks of finished messages, schedule retries) is
registered on its unit of work and runs after the commit.
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from config.settings import Settings
from schemas.messages import Notification
from worker.domain.clock import Clock
from worker.domain.ports import Channel
from worker.domain.states import FINISHED
from worker.errors import EscalatorError, PermanentError, RateLimited
from worker.services.outbox import (
    Attempt,
    Delivery,
    Sent,
    digest,
    lease,
    record,
    waiting,
)
from worker.services.uow import Effects, Units
from worker.store.models import OutboxMessage

CHUNK = 50  # messages leased at once: a lease must outlast sending all of them


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


def _after(effects: Effects, outcomes: dict[str, Delivery]) -> None:
    """What the outcomes ask after the commit: no task holds the finished ones any more; the
    ones to try again are sent with their countdown."""
    for message_id, outcome in outcomes.items():
        if outcome.state in FINISHED:
            effects.finished.append(message_id)
        if outcome.retry_in is not None:
            effects.retry.append((message_id, outcome.retry_in))


def deliver(
    units: Units, channels: dict[str, Channel], clock: Clock, settings: Settings, message_id: str
) -> Delivery:
    """Attempt one outbox message; at the head of a digest window, the window as one."""
    return Delivering(units, channels, clock, settings).one(message_id)


def deliver_many(
    units: Units,
    channels: dict[str, Channel],
    clock: Clock,
    settings: Settings,
    message_ids: list[str],
) -> dict[str, Delivery]:
    """Attempt each message once, CHUNK at a time; the outcome of each."""
    delivering = Delivering(units, channels, clock, settings)
    outcomes: dict[str, Delivery] = {}
    for start in range(0, len(message_ids), CHUNK):
        outcomes.update(delivering.chunk(message_ids[start : start + CHUNK]))
    return outcomes


@dataclass(frozen=True, slots=True)
class Delivering:
    """What a delivery runs with: its units of work, the channels, the clock, the settings."""

    units: Units
    channels: dict[str, Channel]
    clock: Clock
    settings: Settings

    def one(self, message_id: str) -> Delivery:
        now = self.clock.now()
        with self.units() as uow:
            store = uow.store
            store.outbox.lock_issues([message_id])
            taken = lease(store, [message_id], now, self.settings.delivery_lease_s, heads=True)
            if taken.cancelled:
                outcome = taken.moot[message_id]
            elif not taken.rows:  # another task holds it, it is done, or its window is open
                outcome = waiting(store, [message_id], now)[message_id] or Delivery("skipped")
            else:
                [row] = taken.rows
                message: Notification | None = None
                if row.attempts == 1 and digest.held(row):
                    message = digest.gather(store.outbox, row, now)
                    if message is not None:
                        row.payload = message.model_dump(mode="json")
                store.flush()
            if taken.cancelled or not taken.rows:
                _after(uow.effects, {message_id: outcome})
                return outcome
        sending = message or Notification.model_validate(row.payload)
        return self.record([(row, sending, attempt(self.channels, row.channel, sending))])[
            message_id
        ]

    def chunk(self, message_ids: list[str]) -> dict[str, Delivery]:
        """Lease the lot in one transaction, send them, record them in another."""
        now = self.clock.now()
        outcomes: dict[str, Delivery] = {}
        with self.units() as uow:
            store = uow.store
            store.outbox.lock_issues(message_ids)
            taken = lease(store, message_ids, now, self.settings.delivery_lease_s, heads=False)
            outcomes.update((m, taken.moot[m]) for m in taken.cancelled)
            leased = {row.id for row in taken.rows}
            rest = [m for m in message_ids if m not in leased and m not in outcomes]
            waits = waiting(store, rest, now) if rest else {}
            outcomes.update((m, w) for m, w in waits.items() if w is not None)
            _after(uow.effects, outcomes)
        order = {message_id: n for n, message_id in enumerate(message_ids)}
        work = sorted(taken.rows, key=lambda row: order[row.id])  # in the order they were written
        if work:
            outcomes.update(self.record(_send_all(self.channels, work, self.settings)))
        outcomes.update(self.close_windows([m for m, w in waits.items() if w is None]))
        return outcomes

    def record(self, sent: list[Sent]) -> dict[str, Delivery]:
        """Record what the sends gave, in one transaction; its effects after the commit."""
        with self.units() as uow:
            outcomes = record(uow.store, sent, self.clock.now(), self.settings)
            _after(uow.effects, outcomes)
        return outcomes

    def close_windows(self, heads: list[str]) -> dict[str, Delivery]:
        """Ids at the head of a digest window that has closed: `deliver` folds each window
        (the others of the same window join its digest, and the next look finds them merged)."""
        outcomes: dict[str, Delivery] = {}
        while heads:
            head, *heads = heads
            outcomes[head] = deliver(self.units, self.channels, self.clock, self.settings, head)
            if not heads:
                break
            with self.units.reading() as store:
                again = waiting(store, heads, self.clock.now())
            decided = {m: w for m, w in again.items() if w is not None}
            effects = Effects()  # decided by a read alone: nothing to commit first
            _after(effects, decided)
            if effects:
                self.units.after_commit(effects)
            outcomes.update(decided)
            heads = [m for m, w in again.items() if w is None]
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
    channels: dict[str, Channel], work: list[OutboxMessage], settings: Settings
) -> list[Sent]:
    """Send every message, up to `delivery_concurrency` at once (receivers are slow; the sends
    overlap)."""
    threads = settings.delivery_concurrency
    messages = [(row, Notification.model_validate(row.payload)) for row in work]
    if threads <= 1 or len(messages) <= 1:
        return [
            (row, message, attempt(channels, row.channel, message)) for row, message in messages
        ]
    results = _senders(threads).map(
        lambda item: attempt(channels, item[0].channel, item[1]), messages
    )
    return [(row, m, result) for (row, m), result in zip(messages, results, strict=True)]
