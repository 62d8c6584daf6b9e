"""Post-commit effects: the Redis index equals what the database holds armed, and a Redis or
broker error after the commit never escapes (worker/broker/effects.py)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

import fakeredis
import pytest
from kombu.exceptions import OperationalError
from redis.exceptions import ConnectionError as RedisConnectionError
from structlog.testing import capture_logs

from tests.unit.factories import run_effects
from worker.bootstrap import Container
from worker.broker import effects as post_commit
from worker.broker.celery_app import app
from worker.broker.keys import DELIVER_BATCH, DELIVERIES_SENT, DUE, OUTBOX_INFLIGHT
from worker.services.uow import Effects

T0 = datetime(2026, 3, 4, 9, 0, tzinfo=UTC)


@pytest.fixture(autouse=True)
def no_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    """The bounded retry does not sleep in unit tests."""
    monkeypatch.setattr(post_commit, "BACKOFF_S", 0.0)


class Flaky:
    """A send_task that raises `error` for its first `failures` calls, then records."""

    def __init__(self, error: Exception, failures: int) -> None:
        self.error, self.failures = error, failures
        self.calls = 0
        self.sent: list[dict[str, Any]] = []

    def __call__(self, name: str, **kwargs: Any) -> None:
        self.calls += 1
        if self.calls <= self.failures:
            raise self.error
        self.sent.append({"name": name, **kwargs})


class DeadIndex:
    """A deadline index whose Redis is gone."""

    def __init__(self) -> None:
        self.calls = 0

    def arm(self, _: Iterable[tuple[int, datetime]]) -> int:
        self.calls += 1
        raise RedisConnectionError("Error 111 connecting to redis:6379. Connection refused.")

    def disarm(self, _: Sequence[int]) -> None:
        self.calls += 1
        raise RedisConnectionError("Error 111 connecting to redis:6379. Connection refused.")


def test_a_deadline_armed_and_cancelled_in_one_batch_is_never_indexed(
    container: Container, redis: fakeredis.FakeRedis, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Opened then acknowledged in one batch: the cancelled deadline stays out of the index."""
    send = Flaky(OperationalError("unused"), failures=0)
    monkeypatch.setattr(app, "send_task", send)
    effects = Effects(arm=[(1, T0), (2, T0), (3, T0)], disarm=[1], outbox=["msg_a"])
    run_effects(container, effects)
    assert sorted(redis.zrange(DUE, 0, -1)) == ["2", "3"]
    assert send.sent == [{"name": DELIVER_BATCH, "args": [["msg_a"]]}]


def test_sent_messages_are_marked_in_flight_and_counted(
    container: Container, redis: fakeredis.FakeRedis, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Handing messages to a task marks them with the queued lease and counts them."""
    monkeypatch.setattr(app, "send_task", Flaky(OperationalError("x"), failures=0))
    run_effects(container, Effects(outbox=["msg_a", "msg_b"]))
    lease = container.clock.now().timestamp() + container.settings.delivery_queued_lease_s
    assert [redis.zscore(OUTBOX_INFLIGHT, m) for m in ("msg_a", "msg_b")] == [lease, lease]
    assert redis.get(DELIVERIES_SENT) == "2"


def test_a_broker_error_after_the_commit_is_logged_and_swallowed(
    container: Container, redis: fakeredis.FakeRedis, monkeypatch: pytest.MonkeyPatch
) -> None:
    """kombu OperationalError from send_task: 3 tries, one loud error with its text, no raise,
    and no in-flight mark left behind, so the sweep sends the messages."""
    send = Flaky(OperationalError("Error 111 connecting to localhost:6379"), failures=99)
    monkeypatch.setattr(app, "send_task", send)
    with capture_logs() as logs:
        run_effects(container, Effects(arm=[(1, T0)], outbox=["msg_a"]))
    assert send.calls == post_commit.TRIES
    [failed] = [e for e in logs if e["event"] == "effects.failed"]
    assert failed["log_level"] == "error"
    assert "OperationalError: Error 111 connecting to localhost:6379" in failed["error"]
    assert redis.zcard(OUTBOX_INFLIGHT) == 0
    assert redis.get(DELIVERIES_SENT) is None
    assert redis.zrange(DUE, 0, -1) == ["1"]  # the other steps still ran


def test_a_redis_error_from_the_index_is_logged_and_swallowed(
    container: Container, monkeypatch: pytest.MonkeyPatch
) -> None:
    """redis ConnectionError from arm and disarm: each retried 3 times, logged, swallowed;
    the delivery task is still sent."""
    index = DeadIndex()
    container.index = index  # type: ignore[assignment]
    send = Flaky(OperationalError("unused"), failures=0)
    monkeypatch.setattr(app, "send_task", send)
    with capture_logs() as logs:
        run_effects(container, Effects(arm=[(1, T0)], disarm=[2], outbox=["msg_a"]))
    assert index.calls == 2 * post_commit.TRIES
    steps = {e["step"]: e for e in logs if e["event"] == "effects.failed"}
    assert set(steps) == {"arm", "disarm"}
    assert "Connection refused" in steps["arm"]["error"]
    assert len(send.sent) == 1


def test_a_passing_hiccup_is_retried_without_an_error(
    container: Container, redis: fakeredis.FakeRedis, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One failed send then a good one: the task goes out once and nothing is logged as error."""
    send = Flaky(OperationalError("connection reset"), failures=1)
    monkeypatch.setattr(app, "send_task", send)
    with capture_logs() as logs:
        run_effects(container, Effects(outbox=["msg_a"]))
    assert len(send.sent) == 1
    assert not [e for e in logs if e["log_level"] == "error"]
    assert redis.get(DELIVERIES_SENT) == "1"
