"""Backpressure in the outbox: one delivery task in flight per message (worker/broker/inflight.py,
`sweep_outbox`, `deliver_messages`), and a batch that tells apart the ids it cannot lease in
one statement (worker/services/deliver.py)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import fakeredis
import pytest
from sqlalchemy import Engine, event, update
from sqlalchemy.orm import Session, sessionmaker

from config.settings import Settings
from schemas.messages import Notification
from worker.bootstrap import Container
from worker.broker import effects as post_commit
from worker.broker.celery_app import app
from worker.broker.inflight import InFlight
from worker.broker.keys import DELIVER, DELIVER_BATCH, DELIVERIES_SENT, OUTBOX_INFLIGHT
from worker.broker.leases import LeaseKeeper
from worker.domain.clock import ManualClock
from worker.errors import DeliveryError
from worker.roles import tasks
from worker.roles.scheduler import sweep_outbox
from worker.services import deliver as dispatcher
from worker.services.deliver import deliver_many
from worker.services.ingest import apply_batch
from worker.services.uow import Units
from worker.store.models import OutboxMessage

from .factories import T0, event_json, run_effects
from .test_dispatcher import FakeChannel, ok
from .test_outbound_delivery import digest_policies


class Sent:
    """Records Celery send_task calls: (task name, message ids, countdown)."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, list[str], float | None]] = []

    def __call__(self, name: str, args: list[Any], countdown: float | None = None) -> None:
        ids = args[0] if isinstance(args[0], list) else [args[0]]
        self.calls.append((name, list(ids), countdown))

    def ids(self) -> list[str]:
        return [i for _, ids, _ in self.calls for i in ids]


class ByIdChannel:
    """A channel that fails the ids it is told to and takes the rest."""

    def __init__(self, failing: set[str]) -> None:
        self.failing = failing
        self.received: list[str] = []

    def send(self, message: Notification) -> None:
        self.received.append(message.id)
        if message.id in self.failing:
            raise DeliveryError("HTTP 503")


@pytest.fixture
def sent(monkeypatch: pytest.MonkeyPatch) -> Sent:
    """Every delivery task sent (post-commit, retry, sweep), recorded instead of queued."""
    recorder = Sent()
    monkeypatch.setattr(app, "send_task", recorder)
    monkeypatch.setattr(post_commit, "BACKOFF_S", 0.0)
    return recorder


def write(container: Container, count: int) -> list[str]:
    """Open `count` issues as ingest does (commit, then run_effects); their message ids."""
    ids: list[str] = []
    for n in range(count):
        result = apply_batch(
            Units(container.sessions),
            [(f"{n}-0", event_json(issue_id=f"BP-{n}", at=T0))],
            container.policies,
            container.clock,
        )
        run_effects(container, result.effects)
        ids += result.effects.outbox
    return ids


def score(redis: fakeredis.FakeRedis, message_id: str) -> float | None:
    """The message's in-flight mark, if any."""
    return redis.zscore(OUTBOX_INFLIGHT, message_id)


def test_take_gives_each_id_to_one_scheduler_only(server: fakeredis.FakeServer) -> None:
    """Two schedulers taking overlapping ids get disjoint sets; live marks are never taken,
    expired ones are."""
    one = InFlight(fakeredis.FakeRedis(server=server, decode_responses=True))
    two = InFlight(fakeredis.FakeRedis(server=server, decode_responses=True))
    ids = [f"msg_{n}" for n in range(10)]
    one.mark(["msg_9"], until=50.0)  # a task that is gone: its lease ran out at 50
    first = one.take(ids[:6], now=100.0, until=700.0)
    second = two.take(ids[3:], now=100.0, until=700.0)
    assert first == ids[:6]
    assert second == ids[6:]
    assert two.take(ids, now=699.0, until=1300.0) == []
    assert one.take(ids, now=700.0, until=1300.0) == ids  # every lease ran out


def test_under_a_backlog_the_sweep_sends_no_message_twice(
    container: Container, redis: fakeredis.FakeRedis, sent: Sent, clock: ManualClock
) -> None:
    """Messages queued behind a backlog for 5 minutes, swept every 5 s by two schedulers:
    each message is handed to exactly one task (1.0 per message, the target is 1.1)."""
    ids = write(container, 30)
    for _ in range(60):
        clock.advance(timedelta(seconds=5))
        sweep_outbox(container)
        sweep_outbox(container)
    assert sorted(sent.ids()) == sorted(ids)
    assert int(redis.get(DELIVERIES_SENT) or 0) / len(ids) <= 1.1


def test_after_redis_is_lost_the_sweep_sends_from_the_database_once(
    container: Container, redis: fakeredis.FakeRedis, sent: Sent, clock: ManualClock
) -> None:
    """A FLUSHALL loses the queue and the marks: the next sweep sends every due message once,
    in tasks of at most SWEEP_TASK ids, and marks them so the sweeps after it send nothing."""
    ids = write(container, 3)
    redis.flushall()
    sent.calls.clear()
    clock.advance(timedelta(seconds=6))
    sweep_outbox(container)
    sweep_outbox(container)
    assert [(name, sorted(got)) for name, got, _ in sent.calls] == [(DELIVER_BATCH, sorted(ids))]
    assert redis.get(DELIVERIES_SENT) == "3"


def test_a_task_gone_longer_than_the_queued_lease_is_sent_again(
    container: Container, sent: Sent, clock: ManualClock, settings: Settings
) -> None:
    """A queued task that never started within the queued lease is presumed lost: resent."""
    [mid] = write(container, 1)
    clock.advance(timedelta(seconds=settings.delivery_queued_lease_s - 1))
    sweep_outbox(container)
    assert sent.ids() == [mid]
    clock.advance(timedelta(seconds=2))
    sweep_outbox(container)
    assert sent.ids() == [mid, mid]


def test_a_started_task_holds_the_short_running_lease_and_a_killed_one_is_noticed(
    container: Container, redis: fakeredis.FakeRedis, sent: Sent, clock: ManualClock
) -> None:
    """Starting shortens the mark to the running lease; if the worker dies there, the sweep
    sends the message again once that lease has run out, not after the queued lease."""
    [mid] = write(container, 1)
    lease = container.settings.delivery_running_lease_s
    with container.keepers.deliveries.holding([mid]):
        assert score(redis, mid) == clock.now().timestamp() + lease
    clock.advance(timedelta(seconds=lease + 1))  # killed: nobody removed or renewed the mark
    sweep_outbox(container)
    assert sent.ids() == [mid, mid]


def test_a_long_delivery_renews_its_running_lease(
    redis: fakeredis.FakeRedis, clock: ManualClock
) -> None:
    """While the block runs the mark is renewed every third of the lease, from the clock."""
    marks = InFlight(redis)
    keeper = LeaseKeeper[str](
        "deliveries", lambda ids, until: marks.mark(ids, until.timestamp()), clock, 0.3
    )
    with keeper.holding(["msg_a"]):
        later = clock.advance(timedelta(seconds=100)).timestamp() + 0.3
        deadline = time.monotonic() + 5
        while score(redis, "msg_a") != later and time.monotonic() < deadline:
            time.sleep(0.02)
        assert score(redis, "msg_a") == later


@pytest.fixture
def worker(container: Container, monkeypatch: pytest.MonkeyPatch) -> Iterator[Container]:
    """The delivery task's process, on the unit test's container."""
    monkeypatch.setattr(tasks, "current", lambda: container)
    yield container


def test_done_messages_are_unmarked_and_a_retry_keeps_its_mark_until_due(
    worker: Container, redis: fakeredis.FakeRedis, sent: Sent, clock: ManualClock
) -> None:
    """After a delivery task: a sent message's mark is gone; a failed one is sent again with a
    countdown and stays marked until that countdown plus the queued lease, so the sweep leaves
    it alone while its retry waits."""
    good, bad = write(worker, 2)
    sent.calls.clear()
    worker.channels = {"log": ByIdChannel({bad})}
    tasks.deliver_messages([good, bad])
    assert score(redis, good) is None
    [(name, ids, countdown)] = sent.calls
    assert (name, ids) == (DELIVER, [bad]) and countdown is not None
    queued = worker.settings.delivery_queued_lease_s
    assert score(redis, bad) == pytest.approx(clock.now().timestamp() + countdown + queued)
    for _ in range(20):
        clock.advance(timedelta(seconds=10))
        sweep_outbox(worker)
    assert len(sent.calls) == 1
    assert int(redis.get(DELIVERIES_SENT) or 0) == 3  # two at first, one retry


def test_a_batch_sorts_out_ids_it_cannot_lease_in_one_statement(
    sessions: sessionmaker[Session],
    engine: Engine,
    clock: ManualClock,
    settings: Settings,
    container: Container,
    sent: Sent,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Ids leased by another task or already sent are skipped, without a transaction each:
    the batch runs as many statements for 20 of them as for 2."""
    ids = write(container, 24)
    with sessions() as s, s.begin():
        s.execute(
            update(OutboxMessage)
            .where(OutboxMessage.id.in_(ids[:12]))
            .values(lease_until=clock.now() + timedelta(seconds=20))
        )
        s.execute(
            update(OutboxMessage).where(OutboxMessage.id.in_(ids[12:22])).values(state="sent")
        )

    def refuse(*_: Any) -> None:
        raise AssertionError("an unleased id went through deliver(), one transaction each")

    monkeypatch.setattr(dispatcher, "deliver", refuse)
    statements: list[str] = []
    event.listen(engine, "before_cursor_execute", lambda *a: statements.append(a[2]))

    def run(unleasable: list[str]) -> int:
        statements.clear()
        outcomes = deliver_many(
            Units(sessions), {"log": FakeChannel()}, clock, settings, unleasable
        )
        assert {o.state for o in outcomes.values()} == {"skipped"}
        return len(statements)

    assert run([ids[0], ids[12]]) == run(ids[1:12] + ids[13:22])
    with sessions() as s:  # and the last two, never touched, are still there to send
        assert {s.get_one(OutboxMessage, i).state for i in ids[22:]} == {"pending"}


def test_a_batch_holds_a_digest_window_and_folds_a_closed_one_once(
    sessions: sessionmaker[Session],
    clock: ManualClock,
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Held for an open window: `held` until it closes. Once closed, `deliver` runs for the
    first id only; the others join its digest (one message carrying every id)."""
    ids = []
    for n in range(3):
        ids += apply_batch(
            Units(sessions),
            [(f"{n}-0", event_json(issue_id=f"D-{n}", at=T0))],
            digest_policies(),
            clock,
        ).effects.outbox
    channel = FakeChannel(ok)
    held = deliver_many(Units(sessions), {"chat": channel}, clock, settings, ids)
    assert {o.state for o in held.values()} == {"held"}
    assert all(o.retry_in == pytest.approx(30) for o in held.values())
    clock.advance(timedelta(seconds=30))
    folded: list[str] = []
    real = dispatcher.deliver

    def counting(*args: Any) -> Any:
        folded.append(args[-1])
        return real(*args)

    monkeypatch.setattr(dispatcher, "deliver", counting)
    outcomes = deliver_many(Units(sessions), {"chat": channel}, clock, settings, ids)
    assert folded == [ids[0]]
    assert [outcomes[i].state for i in ids] == ["sent", "skipped", "skipped"]
    [digest] = channel.received
    assert digest.covers[0] == ids[0] and sorted(digest.covers) == sorted(ids)
