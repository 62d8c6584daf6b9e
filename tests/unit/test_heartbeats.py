"""Heartbeats: recorded and read back per role instance, forgotten when stale, never fatal."""

from __future__ import annotations

import time

import fakeredis
import pytest
from redis.exceptions import ConnectionError as RedisConnectionError

from worker.broker.heartbeats import FORGET_S, Beat, beat, forget, parse, read_all
from worker.broker.keys import HEARTBEATS
from worker.roles.pulse import Pulse, worker_role


def test_beats_are_read_back_sorted_by_role_and_instance(redis: fakeredis.FakeRedis) -> None:
    """Each instance's last beat is kept, with its info, and read back in (role, instance) order."""
    beat(redis, "scheduler", "b:2", started=10.0, now=100.0)
    beat(redis, "api", "a:1", started=5.0, info={"metrics_port": "9100"}, now=101.0)
    beat(redis, "scheduler", "a:1", started=10.0, now=99.0)
    beat(redis, "scheduler", "b:2", started=10.0, now=104.0)  # a later beat replaces the first
    assert read_all(redis) == [
        Beat("api", "a:1", 101.0, 5.0, {"metrics_port": "9100"}),
        Beat("scheduler", "a:1", 99.0, 10.0, {}),
        Beat("scheduler", "b:2", 104.0, 10.0, {}),
    ]


def test_a_clean_stop_forgets_and_a_stale_instance_is_dropped(redis: fakeredis.FakeRedis) -> None:
    """forget() removes an instance; one silent for FORGET_S goes at the next beat of anyone."""
    beat(redis, "ingest", "gone:1", started=0.0, now=1000.0)
    beat(redis, "ingest", "stopped:2", started=0.0, now=1000.0)
    forget(redis, "ingest", "stopped:2")
    assert [b.instance for b in read_all(redis)] == ["gone:1"]
    beat(redis, "api", "x:3", started=0.0, now=1000.0 + FORGET_S + 1)
    assert [b.instance for b in read_all(redis)] == ["x:3"]


def test_silence_is_measured_from_the_last_beat() -> None:
    """A beat older than 30 s is silent; an age is never negative (clock skew)."""
    b = Beat("api", "h:1", at=100.0, started=0.0)
    assert not b.silent(130.0) and b.silent(130.5)
    assert b.age(90.0) == 0.0


def test_garbage_in_the_hash_is_skipped(redis: fakeredis.FakeRedis) -> None:
    """A value that is not a beat is ignored by readers instead of breaking them."""
    redis.hset(HEARTBEATS, "junk", "not json")
    redis.hset(HEARTBEATS, "half", '{"role": "api"}')
    beat(redis, "api", "h:1", started=0.0, now=1.0)
    assert [b.instance for b in read_all(redis)] == ["h:1"]
    assert parse(b"[1, 2]") is None


class _Down:
    """A Redis that is away."""

    def hset(self, *_: object, **__: object) -> None:
        raise RedisConnectionError("Connection refused")

    def hdel(self, *_: object) -> None:
        raise RedisConnectionError("Connection refused")


def test_a_beat_without_redis_never_raises_and_resumes(
    redis: fakeredis.FakeRedis, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With Redis away a beat returns False (the role goes on); it beats again once Redis is back,
    and stop() with Redis away does not raise either."""
    clients: list[object] = [_Down(), _Down(), redis]
    pulse = Pulse(lambda: clients.pop(0), "ingest", every_s=5.0)  # type: ignore[arg-type,return-value]
    assert pulse.once() is False
    assert pulse.once() is False
    assert pulse.once() is True
    assert [b.role for b in read_all(redis)] == ["ingest"]
    assert read_all(redis)[0].info["version"]
    stopped = Pulse(_Down(), "api", every_s=5.0)  # type: ignore[arg-type]
    stopped.stop()


def test_the_thread_beats_until_stopped_then_forgets(redis: fakeredis.FakeRedis) -> None:
    """start() beats in a thread at once; stop() ends it and takes the beat away."""
    pulse = Pulse(redis, "scheduler", every_s=0.05).start()
    try:
        deadline = time.monotonic() + 10
        while not read_all(redis) and time.monotonic() < deadline:
            time.sleep(0.01)
        assert [b.role for b in read_all(redis)] == ["scheduler"]
    finally:
        pulse.stop()
    assert read_all(redis) == []


def test_celery_node_names_give_the_worker_roles() -> None:
    """`escalations@host` beats as worker-escalations, `outbox@host` as worker-outbox."""
    assert worker_role("escalations@web-1") == "worker-escalations"
    assert worker_role("outbox@web-1") == "worker-outbox"
