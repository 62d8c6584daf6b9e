"""The scheduler's claim loop: a bounded window, waiting for ingest, rebuilding a lost index."""

from __future__ import annotations

import dataclasses
from datetime import timedelta
from typing import Any

import fakeredis
import pytest

from worker.bootstrap import Container
from worker.broker.celery_app import app
from worker.broker.keys import FIRE_BATCH, GROUP, STREAM
from worker.domain.clock import ManualClock
from worker.roles.scheduler import Scheduler
from worker.services.ingest import apply_batch
from worker.services.uow import Units

from .factories import T0, event_json, run_effects

Sent = list[int]


@pytest.fixture
def fired(monkeypatch: pytest.MonkeyPatch) -> Sent:
    """The deadline ids the scheduler sends to Celery (no broker)."""
    calls: Sent = []

    def record(name: str, args: list[Any] | None = None, **_: Any) -> None:
        if name == FIRE_BATCH:
            calls.extend(int(i) for i in (args or [[]])[0])

    monkeypatch.setattr(app, "send_task", record)
    return calls


def open_issues(c: Container, n: int) -> None:
    """n P1 issues opened at T0 (L1's 5-minute deadline each), indexed."""
    lines: list[tuple[str, str | bytes | None]] = [
        (f"{i + 1}-0", event_json(issue_id=f"S-{i}", at=T0)) for i in range(n)
    ]
    run_effects(c, apply_batch(Units(c.sessions), lines, c.policies, c.clock).effects)


def scheduler(c: Container, **settings: Any) -> Scheduler:
    return Scheduler(dataclasses.replace(c, settings=c.settings.model_copy(update=settings)))


def test_at_most_the_window_is_in_flight(
    container: Container, clock: ManualClock, fired: Sent
) -> None:
    """With room for 3, an overdue backlog of 5 is sent 3 first, then as firings finish."""
    open_issues(container, 5)
    clock.set(T0 + timedelta(minutes=5))
    s = scheduler(container, scheduler_max_inflight=3)
    s.c.index.mark_intact(clock.now())
    assert s.tick() == 3
    assert s.tick() == 0  # the window is full: nothing more is sent, nothing re-sent
    s.c.index.ack(fired[0])
    assert s.tick() == 1
    assert len(fired) == len(set(fired)) == 4


def test_a_deadline_waits_for_an_event_that_reached_the_stream_before_it(
    container: Container, clock: ManualClock, fired: Sent, redis: fakeredis.FakeRedis
) -> None:
    """An entry that arrived at 4 min and is not applied yet holds the 5-min deadline back,
    until it is acked; a hold never lasts longer than scheduler_max_hold_s."""
    open_issues(container, 1)
    redis.xgroup_create(STREAM, GROUP, id="0", mkstream=True)
    arrived_ms = int((T0 + timedelta(minutes=4)).timestamp() * 1000)
    redis.xadd(STREAM, {"event": "{}"}, id=f"{arrived_ms}-0")
    s = scheduler(container, scheduler_max_hold_s=30.0)
    s.c.index.mark_intact(clock.now())
    clock.set(T0 + timedelta(minutes=5, seconds=10))
    assert s.tick() == 0 and fired == []
    clock.set(T0 + timedelta(minutes=5, seconds=40))  # ingest 100 s behind: the hold ends
    assert s.tick() == 1


def test_a_lost_index_is_rebuilt_at_once(
    container: Container, clock: ManualClock, fired: Sent, redis: fakeredis.FakeRedis
) -> None:
    """After a FLUSHALL the next claim notices and the next housekeeping pass re-arms every
    deadline from the database, without waiting for the periodic reconcile."""
    open_issues(container, 2)
    s = scheduler(container, reconcile_every_s=3600.0, outbox_sweep_every_s=3600.0)
    s.housekeeping()  # the start-up reconcile
    assert s.c.index.sizes()[0] > 0
    redis.flushall()
    clock.set(T0 + timedelta(minutes=5))
    assert s.tick() == 0  # nothing indexed any more
    s.housekeeping()
    assert s.tick() == 2


def test_claims_start_while_the_start_up_reconcile_runs(
    container: Container,
    clock: ManualClock,
    fired: Sent,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The claim loop does not wait for the reconcile: what the index holds is claimed at once,
    and the outbox sweep does not wait behind the reconcile either."""
    import threading

    from worker.roles import scheduler as role

    open_issues(container, 2)
    clock.set(T0 + timedelta(minutes=5))
    container.index.mark_intact(clock.now())
    running, release = threading.Event(), threading.Event()
    swept = threading.Event()

    def slow_reconcile(*_: Any) -> None:
        running.set()
        release.wait(10)

    monkeypatch.setattr(role, "reconcile", slow_reconcile)
    monkeypatch.setattr(role, "sweep_outbox", lambda _c: swept.set())
    s = scheduler(container, scheduler_poll_s=0.01)
    runner = threading.Thread(target=s.run)
    runner.start()
    try:
        assert running.wait(5)

        def real(ids: list[int]) -> list[int]:
            return sorted(i for i in ids if i >= 0)  # a canary's id is < 0

        for _ in range(500):
            if len(real(fired)) == 2:
                break
            s.stop.wait(0.01)
        assert real(fired) == real(container.index.in_flight())
        assert len(real(fired)) == 2 and not release.is_set()
        assert swept.wait(5)
    finally:
        release.set()
        s.stop.set()
        runner.join(10)
