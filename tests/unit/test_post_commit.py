"""Post-commit effects keep the Redis index equal to what the database holds armed."""

from __future__ import annotations

from datetime import UTC, datetime
from types import SimpleNamespace

import fakeredis
import pytest

from worker.constants import DUE
from worker.deadline_index import DeadlineIndex
from worker.effects import Effects
from worker.post_commit import run_effects

T0 = datetime(2026, 3, 4, 9, 0, tzinfo=UTC)


def test_a_deadline_armed_and_cancelled_in_one_batch_is_never_indexed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Opened then acknowledged in one batch: the cancelled deadline stays out of the index."""
    redis = fakeredis.FakeRedis(decode_responses=True)
    c = SimpleNamespace(index=DeadlineIndex(redis))
    sent: list[object] = []
    monkeypatch.setattr("worker.post_commit.app.send_task", lambda *a, **k: sent.append(k))
    effects = Effects(arm=[(1, T0), (2, T0), (3, T0)], disarm=[1], outbox=["msg_a"])
    run_effects(c, effects)  # type: ignore[arg-type]
    assert sorted(redis.zrange(DUE, 0, -1)) == ["2", "3"]
    assert sent == [{"args": [["msg_a"]]}]
