"""The canary: armed once per period in the real index, claimed like a deadline, recorded by the
firing task, never seen by fire_many nor dropped by the reconcile."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import fakeredis
import pytest
from sqlalchemy.orm import Session, sessionmaker

from worker.bootstrap import Container
from worker.broker import canary
from worker.broker.deadline_index import DeadlineIndex
from worker.broker.keys import CANARY_ARMED, DUE, INFLIGHT
from worker.domain.clock import ManualClock
from worker.roles import tasks
from worker.services.fire import FireResult
from worker.services.reconcile import reconcile
from worker.services.uow import Effects

NOW = 1_800_000_000.0


def test_a_canary_id_encodes_its_due_time() -> None:
    """Ids are negative, unlike every database id, and give back the due time to the ms."""
    armed = canary.canary_id(NOW + 0.1234)
    assert armed < 0 and canary.is_canary(armed) and not canary.is_canary(7)
    assert canary.due_of(armed) == pytest.approx(NOW + 0.123, abs=1e-9)
    assert canary.split([5, armed, 9]) == ([5, 9], [armed])


def test_one_canary_per_period_whatever_the_schedulers(redis: fakeredis.FakeRedis) -> None:
    """Two schedulers in one period arm one canary, due now, in the due set; the next period
    arms the next."""
    index = DeadlineIndex(redis)
    first = canary.arm(index, NOW + 0.1, every_s=5)
    assert first is not None
    assert canary.arm(index, NOW + 0.2, every_s=5) is None  # another scheduler, same period
    assert redis.zscore(DUE, str(first)) == pytest.approx(NOW + 0.1)
    second = canary.arm(index, NOW + 5.1, every_s=5)
    assert second is not None and second != first
    assert redis.zcard(DUE) == 2


def test_the_claim_takes_it_and_the_task_records_it(redis: fakeredis.FakeRedis) -> None:
    """A scheduler's claim moves the canary in flight like any deadline; the task's part records
    its lateness, acks it, and hands back only the database's deadlines."""
    index = DeadlineIndex(redis)
    armed = canary.arm(index, NOW, every_s=5)
    assert armed is not None
    due, _ = index.claim(datetime.fromtimestamp(NOW + 0.2, UTC), lease_s=60, limit=10)
    assert due == [armed]
    assert canary.fire(index, [11, armed], NOW + 0.5) == [11]
    assert redis.zcard(INFLIGHT) == 0 and redis.zcard(CANARY_ARMED) == 0
    last = canary.last(redis)
    assert last is not None
    assert last.lateness_s == pytest.approx(0.5) and last.fired_at == NOW + 0.5


def test_an_older_canary_fired_late_never_hides_a_newer_one(redis: fakeredis.FakeRedis) -> None:
    """A reclaimed old canary fired after a newer one leaves the newer one as the last."""
    new, old = canary.canary_id(NOW + 10), canary.canary_id(NOW)
    canary.record(redis, [new], NOW + 10.2)
    canary.record(redis, [old], NOW + 30)
    last = canary.last(redis)
    assert last is not None and last.due_at == NOW + 10 and last.lateness_s == pytest.approx(0.2)


def test_canaries_never_fired_leave_the_index(redis: fakeredis.FakeRedis) -> None:
    """With no worker, canaries do not pile up: those older than STALE_PERIODS periods go."""
    index = DeadlineIndex(redis)
    for period in range(canary.STALE_PERIODS + 5):
        canary.arm(index, NOW + 5 * period, every_s=5)
    assert redis.zcard(DUE) <= canary.STALE_PERIODS + 1
    assert canary.in_index(redis) == (redis.zcard(DUE), 0)


def test_the_reconcile_leaves_canaries_alone(
    redis: fakeredis.FakeRedis, sessions: sessionmaker[Session], clock: ManualClock
) -> None:
    """A canary due or in flight has no row in the database: the reconcile keeps both."""
    index = DeadlineIndex(redis)
    waiting = canary.arm(index, NOW, every_s=5)
    running = canary.arm(index, NOW + 5, every_s=5)
    assert waiting is not None and running is not None
    redis.zrem(DUE, str(running))
    redis.zadd(INFLIGHT, {str(running): NOW + 60})
    reconcile(index, sessions, clock)
    assert redis.zscore(DUE, str(waiting)) is not None
    assert redis.zscore(INFLIGHT, str(running)) is not None


def test_the_firing_task_never_hands_a_canary_to_fire_many(
    container: Container, monkeypatch: pytest.MonkeyPatch
) -> None:
    """escalation.fire_batch with canaries records them; fire_many gets the other ids only, and
    is not called at all for a lot of canaries alone."""
    seen: list[list[int]] = []

    def fire_many(_units: Any, _policies: Any, _clock: Any, ids: list[int]) -> list[Any]:
        seen.append(list(ids))
        return []

    monkeypatch.setattr(tasks, "current", lambda: container)
    monkeypatch.setattr(tasks, "fire_many", fire_many)
    now = container.clock.now().timestamp()
    tasks.fire_deadlines([canary.canary_id(now - 1)])
    assert seen == []
    last = canary.last(container.redis)
    assert last is not None and last.lateness_s == pytest.approx(1.0)
    tasks.fire_deadlines([canary.canary_id(now)])
    tasks.fire_deadline(canary.canary_id(now + 1))
    assert seen == []


def test_a_canary_beside_a_failed_firing_is_not_recorded(
    container: Container, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A canary claimed in the same lot as a real deadline that failed to fire stays unrecorded
    (and claimed): the engine must not look healthy while escalations fail."""

    def fire_many(_units: Any, _policies: Any, _clock: Any, ids: list[int]) -> list[Any]:
        return [FireResult(False, "database away", Effects(), failed=True) for _ in ids]

    monkeypatch.setattr(tasks, "current", lambda: container)
    monkeypatch.setattr(tasks, "fire_many", fire_many)
    now = container.clock.now().timestamp()
    tasks.fire_deadlines([41, canary.canary_id(now - 1)])
    assert canary.last(container.redis) is None


def test_a_canary_is_not_recorded_when_the_database_refuses_writes(
    container: Container, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A lot of canaries alone still proves the database takes a write; when it refuses (a
    read-only PostgreSQL after a failover), the task fails and nothing is recorded."""

    def refuse(_c: Container) -> None:
        raise RuntimeError("cannot execute UPDATE in a read-only transaction")

    monkeypatch.setattr(tasks, "current", lambda: container)
    monkeypatch.setattr(tasks, "_database_takes_writes", refuse)
    now = container.clock.now().timestamp()
    with pytest.raises(RuntimeError):
        tasks.fire_deadlines([canary.canary_id(now - 1)])
    assert canary.last(container.redis) is None
