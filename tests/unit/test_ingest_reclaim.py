"""Reclaiming a dead consumer's entries: an entry is given up only for its own fault, never
because the database was away while it was redelivered."""

from __future__ import annotations

import dataclasses
import time
from typing import Any

import fakeredis
import pytest
from sqlalchemy.exc import OperationalError

from tests.support.streams import entries
from worker.bootstrap import Container
from worker.broker.keys import DEAD_STREAM, GROUP, STREAM, STREAM_FIELD
from worker.roles import ingest
from worker.roles.ingest import Ingest, ensure_group

from .factories import T0, event_json


@pytest.fixture
def overdelivered(container: Container, redis: fakeredis.FakeRedis) -> Container:
    """One entry delivered 7 times (past ingest_max_deliveries=5), idle past the claim time."""
    c = dataclasses.replace(
        container, settings=container.settings.model_copy(update={"ingest_claim_idle_ms": 100})
    )
    ensure_group(c)
    redis.xadd(STREAM, {STREAM_FIELD: event_json(at=T0)})
    redis.xreadgroup(GROUP, "gone", {STREAM: ">"})
    for _ in range(6):
        redis.xautoclaim(STREAM, GROUP, "gone", min_idle_time=0, start_id="0-0")
    time.sleep(0.2)
    return c


def down(*_: Any, **__: Any) -> Any:
    raise OperationalError("SELECT 1", {}, Exception("connection refused"))


def test_an_entry_redelivered_while_the_database_is_away_is_not_given_up(
    overdelivered: Container, redis: fakeredis.FakeRedis, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The database away: the reclaim fails and is retried later; nothing is dead-lettered."""
    monkeypatch.setattr(ingest, "apply_batch", down)
    monkeypatch.setattr(Ingest, "_database_answers", lambda self: False)
    with pytest.raises(OperationalError):
        Ingest(overdelivered, name="unit-1").reclaim()
    assert redis.xlen(DEAD_STREAM) == 0
    assert redis.xpending(STREAM, GROUP)["pending"] == 1


def test_an_entry_that_keeps_failing_with_the_database_up_is_given_up(
    overdelivered: Container, redis: fakeredis.FakeRedis
) -> None:
    """The database answers: the entry is to blame, and goes to the dead letters, acked."""
    Ingest(overdelivered, name="unit-1").reclaim()
    [(_, fields)] = entries(redis.xrange(DEAD_STREAM))
    assert fields["error"].startswith("gave up after")
    assert redis.xpending(STREAM, GROUP)["pending"] == 0


def test_a_slow_batch_is_not_taken_over_by_another_consumer(
    container: Container, redis: fakeredis.FakeRedis, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A batch that takes longer than the claim idle time to apply keeps its entries claimed:
    another consumer's reclaim meanwhile finds nothing idle, and it is applied once."""
    c = dataclasses.replace(
        container, settings=container.settings.model_copy(update={"ingest_claim_idle_ms": 300})
    )
    ensure_group(c)
    redis.xadd(STREAM, {STREAM_FIELD: event_json(at=T0)})
    slow, other = Ingest(c, name="slow"), Ingest(c, name="other")
    taken: list[int] = []
    real = ingest.apply_batch  # type: ignore[attr-defined]

    def applying(*args: Any, **kwargs: Any) -> Any:
        for _ in range(4):  # 1.2 s: four times the claim idle time
            time.sleep(0.3)
            taken.append(other.reclaim())
        return real(*args, **kwargs)

    monkeypatch.setattr(ingest, "apply_batch", applying)
    assert slow.step(block_ms=0) == 1
    assert taken == [0, 0, 0, 0]
    assert redis.xpending(STREAM, GROUP)["pending"] == 0
    assert slow.applied == 1 and other.applied == 0
