"""The stream watermark the schedulers wait on, and the lease keeper of running firings."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import fakeredis

from worker.broker.deadline_index import DeadlineIndex, score
from worker.broker.keys import GROUP, INFLIGHT, STREAM
from worker.broker.leases import LeaseKeeper
from worker.broker.watermark import applied_until
from worker.domain.clock import ManualClock

from .factories import T0


def at_ms(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC)


def test_nothing_to_wait_for_without_a_stream_or_with_everything_acked(
    redis: fakeredis.FakeRedis,
) -> None:
    """No stream, no group, or every entry acked: the schedulers wait for nothing."""
    assert applied_until(redis) is None
    redis.xadd(STREAM, {"event": "{}"}, id="1000-0")
    assert applied_until(redis) is None  # no consumer group yet
    redis.xgroup_create(STREAM, GROUP, id="0")
    redis.xreadgroup(GROUP, "c1", {STREAM: ">"})
    redis.xack(STREAM, GROUP, "1000-0")
    assert applied_until(redis) is None


def test_the_oldest_unread_or_unacked_entry_bounds_the_claim(redis: fakeredis.FakeRedis) -> None:
    """An entry read but not acked (a consumer busy or dead) and one not read yet both hold
    deadlines due after their arrival; the older of the two counts."""
    redis.xgroup_create(STREAM, GROUP, id="0", mkstream=True)
    redis.xadd(STREAM, {"event": "{}"}, id="2000-0")
    assert applied_until(redis) == at_ms(2000)  # unread
    redis.xreadgroup(GROUP, "c1", {STREAM: ">"})
    redis.xadd(STREAM, {"event": "{}"}, id="3000-0")
    assert applied_until(redis) == at_ms(2000)  # pending with c1
    redis.xack(STREAM, GROUP, "2000-0")
    assert applied_until(redis) == at_ms(3000)  # the unread one


def test_a_running_firing_keeps_its_lease(redis: fakeredis.FakeRedis) -> None:
    """While a firing runs past its lease, the keeper renews it; after, it renews no more."""
    clock = ManualClock(T0)
    index = DeadlineIndex(redis)
    index.arm([(7, T0)])
    index.claim(T0, 60.0, 10)
    keeper = LeaseKeeper[int]("firings", index.renew, clock, lease_s=0.3)
    with keeper.holding([7]):
        assert redis.zscore(INFLIGHT, "7") == score(T0) + 0.3  # the running lease
        clock.set(T0 + timedelta(seconds=10))
        deadline = time.monotonic() + 30
        while redis.zscore(INFLIGHT, "7") != score(clock.now()) + 0.3:
            assert time.monotonic() < deadline, "the lease was never renewed"
            time.sleep(0.05)
    index.ack(7)
    clock.set(T0 + timedelta(seconds=20))
    time.sleep(0.3)
    assert redis.zscore(INFLIGHT, "7") is None
