"""Outbox delivery: lease, send, retry with backoff, dead after N (worker/services/deliver.py)."""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import timedelta

import pytest
from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from config.settings import Settings
from schemas.messages import Notification, NotificationKind
from schemas.policy import PolicyFile
from worker.domain.clock import ManualClock
from worker.domain.ports import Channel
from worker.domain.retry import jittered as backoff
from worker.errors import DeliveryError, PermanentError
from worker.services.deliver import deliver
from worker.services.ingest import apply_batch
from worker.services.uow import Units
from worker.store.models import OutboxMessage, TimelineEntry
from worker.store.outbox import SqlOutbox

from .factories import T0, event_json

Action = Callable[[Notification], None]


class FakeChannel:
    """A channel that runs one scripted action per send and records what it was given."""

    def __init__(self, *actions: Action) -> None:
        self.actions = list(actions)
        self.received: list[Notification] = []

    def send(self, message: Notification) -> None:
        self.received.append(message)
        if self.actions:
            self.actions.pop(0)(message)


def ok(_: Notification) -> None:
    """The receiver took it."""


def fails(exc: Exception) -> Action:
    """An action that raises `exc`."""

    def action(_: Notification) -> None:
        raise exc

    return action


@pytest.fixture
def message_id(sessions: sessionmaker[Session], clock: ManualClock, policies: PolicyFile) -> str:
    """One pending ASSIGNED message for channel `log`, due at T0."""
    batch = apply_batch(Units(sessions), [("1-0", event_json(at=T0))], policies, clock)
    [mid] = batch.effects.outbox
    return mid


def row(sessions: sessionmaker[Session], message_id: str) -> OutboxMessage:
    """The outbox row as stored now."""
    with sessions() as session:
        return session.get_one(OutboxMessage, message_id)


def timeline_kinds(sessions: sessionmaker[Session]) -> list[str]:
    """Timeline entry kinds, oldest first."""
    with sessions() as session:
        return list(session.scalars(select(TimelineEntry.kind).order_by(TimelineEntry.id)))


@pytest.mark.parametrize("seed", range(5))
def test_backoff_stays_within_its_bounds(seed: int) -> None:
    """Attempt n waits between base and min(cap, base * 2**(n-1)) seconds."""
    rng = random.Random(seed)
    base, cap = 2.0, 60.0
    for attempt in range(1, 15):
        ceiling = min(cap, base * 2 ** (attempt - 1))
        for _ in range(50):
            assert base <= backoff(attempt, base, cap, rng) <= ceiling


def test_backoff_first_attempt_is_the_base_and_the_cap_holds() -> None:
    """The first retry waits exactly `base`; a late attempt never exceeds `cap`."""
    assert backoff(1, 2.0, 60.0) == 2.0
    assert max(backoff(40, 2.0, 60.0, random.Random(i)) for i in range(100)) <= 60.0


def test_success_marks_sent_and_adds_a_timeline_entry(
    sessions: sessionmaker[Session], clock: ManualClock, settings: Settings, message_id: str
) -> None:
    """A delivered message is `sent`, unleased, and the issue's timeline says so."""
    channel = FakeChannel(ok)
    result = deliver(Units(sessions), {"log": channel}, clock, settings, message_id)
    assert result.state == "sent"
    stored = row(sessions, message_id)
    assert (stored.state, stored.attempts, stored.sent_at, stored.lease_until) == (
        "sent",
        1,
        T0,
        None,
    )
    assert [m.id for m in channel.received] == [message_id]
    assert channel.received[0].kind is NotificationKind.ASSIGNED
    assert timeline_kinds(sessions)[-1] == "notified"


def test_delivery_error_schedules_a_retry(
    sessions: sessionmaker[Session], clock: ManualClock, settings: Settings, message_id: str
) -> None:
    """A transient failure keeps the message pending with attempts+1 and a later next attempt."""
    channel = FakeChannel(fails(DeliveryError("log: HTTP 503")))
    result = deliver(Units(sessions), {"log": channel}, clock, settings, message_id)
    assert result.state == "retry" and result.retry_in is not None
    stored = row(sessions, message_id)
    assert (stored.state, stored.attempts, stored.last_error) == ("pending", 1, "log: HTTP 503")
    assert stored.next_attempt_at == T0 + timedelta(seconds=result.retry_in)
    assert stored.next_attempt_at > clock.now()
    assert stored.lease_until is None


def test_unexpected_channel_exception_is_retried_not_lost(
    sessions: sessionmaker[Session], clock: ManualClock, settings: Settings, message_id: str
) -> None:
    """A bug in a channel (any exception) counts as a failed attempt, not a lost message."""
    channel = FakeChannel(fails(KeyError("oops")))
    assert deliver(Units(sessions), {"log": channel}, clock, settings, message_id).state == "retry"
    assert "KeyError" in (row(sessions, message_id).last_error or "")


def test_dead_after_max_attempts(
    sessions: sessionmaker[Session], clock: ManualClock, settings: Settings, message_id: str
) -> None:
    """With delivery_max_attempts=3, the third transient failure makes the message dead."""
    channel = FakeChannel(*(fails(DeliveryError("down")) for _ in range(5)))
    states = []
    for _ in range(settings.delivery_max_attempts):
        states.append(deliver(Units(sessions), {"log": channel}, clock, settings, message_id).state)
        clock.set(row(sessions, message_id).next_attempt_at)
    assert states == ["retry", "retry", "dead"]
    stored = row(sessions, message_id)
    assert (stored.state, stored.attempts) == ("dead", 3)
    assert timeline_kinds(sessions)[-1] == "notification_dead"
    clock.advance(timedelta(days=1))
    assert (
        deliver(Units(sessions), {"log": channel}, clock, settings, message_id).state == "skipped"
    )
    assert len(channel.received) == 3


@pytest.mark.parametrize(
    "channels",
    [
        {"log": FakeChannel(fails(PermanentError("log: HTTP 400 (refused)")))},
        {},  # the policy file no longer has the channel
    ],
    ids=["permanent-error", "unknown-channel"],
)
def test_permanent_error_is_dead_at_once(
    sessions: sessionmaker[Session],
    clock: ManualClock,
    settings: Settings,
    message_id: str,
    channels: dict[str, Channel],
) -> None:
    """A PermanentError (or a channel that does not exist) is dead on the first attempt."""
    assert deliver(Units(sessions), channels, clock, settings, message_id).state == "dead"
    stored = row(sessions, message_id)
    assert (stored.state, stored.attempts) == ("dead", 1)
    assert stored.last_error


def test_message_not_yet_due_is_skipped(
    sessions: sessionmaker[Session], clock: ManualClock, settings: Settings, message_id: str
) -> None:
    """Before next_attempt_at the message is not sent and not counted as an attempt."""
    channel = FakeChannel(fails(DeliveryError("down")), ok)
    deliver(Units(sessions), {"log": channel}, clock, settings, message_id)
    next_at = row(sessions, message_id).next_attempt_at
    clock.set(next_at - timedelta(milliseconds=1))
    assert (
        deliver(Units(sessions), {"log": channel}, clock, settings, message_id).state == "skipped"
    )
    assert row(sessions, message_id).attempts == 1
    clock.set(next_at)
    assert deliver(Units(sessions), {"log": channel}, clock, settings, message_id).state == "sent"


def test_message_leased_by_another_sender_is_skipped(
    sessions: sessionmaker[Session], clock: ManualClock, settings: Settings, message_id: str
) -> None:
    """While one sender holds the lease (mid-send), a second deliver() skips the message."""
    inner: list[str] = []

    def sweep_meanwhile(_: Notification) -> None:
        inner.append(
            deliver(Units(sessions), {"log": FakeChannel(ok)}, clock, settings, message_id).state
        )

    outer = deliver(
        Units(sessions), {"log": FakeChannel(sweep_meanwhile)}, clock, settings, message_id
    )
    assert (outer.state, inner) == ("sent", ["skipped"])
    assert row(sessions, message_id).attempts == 1


def test_expired_lease_is_handed_out_again(
    sessions: sessionmaker[Session], clock: ManualClock, settings: Settings, message_id: str
) -> None:
    """A sender that died mid-send leaves a lease; once it runs out the message goes again."""
    lease_end = T0 + timedelta(seconds=settings.delivery_lease_s)
    with sessions() as session, session.begin():
        session.execute(
            update(OutboxMessage)
            .where(OutboxMessage.id == message_id)
            .values(lease_until=lease_end, attempts=1)
        )
    assert due(sessions, clock) == []
    assert deliver(
        Units(sessions), {"log": FakeChannel(ok)}, clock, settings, message_id
    ).state == ("skipped")
    clock.set(lease_end + timedelta(seconds=1))
    assert due(sessions, clock) == [message_id]
    assert (
        deliver(Units(sessions), {"log": FakeChannel(ok)}, clock, settings, message_id).state
        == "sent"
    )
    assert row(sessions, message_id).attempts == 2


def due(sessions: sessionmaker[Session], clock: ManualClock) -> list[str]:
    """The messages an outbox sweep would send again now."""
    with sessions() as session:
        return SqlOutbox(session).due(clock.now(), grace_s=0, limit=100)
