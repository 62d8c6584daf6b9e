"""Redis holds nothing that cannot be rebuilt; several schedulers never double-fire."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tests.support.fixtures import StackFactory
from tests.support.stack import Stack, event
from worker.broker.keys import DUE

pytestmark = pytest.mark.integration


def _armed(stack: Stack) -> list[str]:
    """The deadlines in the index's due set (not the schedulers' canary: a negative id)."""
    return [str(m) for m in stack.redis.zrange(DUE, 0, -1) if not str(m).startswith("-")]


def test_flushing_redis_and_reconciling_loses_no_deadline(make_stack: StackFactory) -> None:
    """After FLUSHDB wipes the index, stream and queues, the reconciler re-arms every deadline."""
    stack = make_stack(tier_s=4.0)
    t0 = datetime.now(UTC)
    ids = [f"FL-{n}" for n in range(5)]
    stack.producer.send_many(event("issue.opened", i, at=t0) for i in ids)
    stack.wait_for(lambda: all(stack.issue(i) for i in ids), 10, "issues opened")
    stack.wait_for(lambda: len(_armed(stack)) == 5, 5, "index armed")
    stack.redis.flushdb()
    assert _armed(stack) == []
    # The scheduler reconciles every 2 s here; every issue still escalates, on time.
    stack.wait_for(lambda: all(stack.tier(i) == "L2" for i in ids), 15, "escalations after flush")
    for i in ids:
        entry = next(e for e in stack.timeline(i) if e.kind == "escalate")
        assert abs((entry.at - (t0 + timedelta(seconds=4))).total_seconds()) < 0.001
    # Ingest recreated its consumer group: new events still flow.
    stack.producer.send(event("issue.acknowledged", "FL-0"))

    def acknowledged() -> bool:
        issue = stack.issue("FL-0")
        assert issue is not None
        return issue.lifecycle == "acknowledged"

    stack.wait_for(acknowledged, 10, "ingest after flush")


def test_two_schedulers_and_two_workers_never_double_escalate(make_stack: StackFactory) -> None:
    """With two schedulers and two workers racing, each issue escalates once per tier."""
    stack = make_stack(roles=("ingest", "scheduler", "scheduler", "worker", "worker"), tier_s=1.0)
    t0 = datetime.now(UTC)
    ids = [f"TWO-{n}" for n in range(20)]
    stack.producer.send_many(event("issue.opened", i, at=t0) for i in ids)
    stack.wait_for(lambda: all(stack.tier(i) == "manager" for i in ids), 40, "all at manager")
    for i in ids:
        # A firing that comes late (a loaded machine) moves straight to the tier due by then,
        # so an issue may take fewer than three steps; it never takes one twice.
        moves = [
            e.message.split(":")[0].removeprefix("escalated ").split(" → ")
            for e in stack.timeline(i)
            if e.kind == "escalate"
        ]
        reached = [to for _, to in moves]
        assert reached == sorted(set(reached), key=reached.index), (i, moves)
        assert reached[-1] == "manager" and moves[0][0] == "L1", (i, moves)
        assert all(frm == prev for (frm, _), prev in zip(moves[1:], reached, strict=False))
        sent = [m.kind for m in stack.outbox(i)]
        assert sent.count("escalated") == len(moves), (i, sent)
        fired = [d for d in stack.deadlines(i) if d.state == "fired" and d.kind == "escalate"]
        assert len(fired) == len(moves)
