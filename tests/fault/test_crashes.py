"""Crashes in the middle of the work: nothing is lost, nothing happens twice."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime

import pytest
from sqlalchemy import text
from standardwebhooks import Webhook

from tests.support.fixtures import StackFactory
from tests.support.sink import Sink
from tests.support.stack import SECRET, event
from worker.broker.keys import INFLIGHT
from worker.store.db import make_engine

pytestmark = [pytest.mark.integration, pytest.mark.fault]


def _hold_write_lock(database_url: str, release: threading.Event, held: threading.Event) -> None:
    """Block every writer of the deadlines table until `release` is set."""
    engine = make_engine(database_url)
    with engine.connect() as conn:
        if engine.dialect.name == "postgresql":
            conn.execute(text("BEGIN"))
            conn.execute(text("LOCK TABLE deadlines IN EXCLUSIVE MODE"))
        else:
            conn.exec_driver_sql("COMMIT")  # leave the connection's implicit transaction
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        held.set()
        release.wait(60)
        conn.exec_driver_sql("ROLLBACK")
    engine.dispose()


def test_worker_sigkilled_mid_escalation_escalates_exactly_once(
    make_stack: StackFactory, sink: Sink, database_url: str
) -> None:
    """A worker killed inside the escalation transaction: one escalation, its message delivered."""
    # Tiers of 20 s: the worker's start-up and the lock below both happen before the first
    # deadline, and the restarted worker fires it before L2's turn, however slow the machine
    # (12 s was not always enough on a 2-core machine running a second suite beside this one).
    stack = make_stack(roles=("ingest", "scheduler"), webhook_url=sink.url, tier_s=20.0)
    t0 = datetime.now(UTC)
    stack.producer.send(event("issue.opened", "KILL-1", at=t0))
    stack.wait_for(lambda: stack.issue("KILL-1"), 10, "issue opened")
    first = stack.start_ready("worker")
    stack.wait_for(lambda: len(sink.received) >= 1, 15, "the assigned notification")
    release, held = threading.Event(), threading.Event()
    locker = threading.Thread(target=_hold_write_lock, args=(database_url, release, held))
    locker.start()
    assert held.wait(10), "the write lock was not taken"
    assert "escalate" not in stack.kinds("KILL-1"), "escalated before the lock: test too slow"
    # The escalation comes due at t0 + 12 s; the worker blocks inside its transaction.
    claimed = lambda: [m for m in stack.redis.zrange(INFLIGHT, 0, -1) if m[0] != "-"]  # noqa: E731
    stack.wait_for(claimed, 30, "claim (a deadline, not the schedulers' canary)")
    time.sleep(1.0)
    stack.kill(first)
    release.set()
    locker.join()
    assert "escalate" not in stack.kinds("KILL-1")
    stack.start("worker")
    stack.wait_for(
        lambda: "escalate" in stack.kinds("KILL-1"), 30, "the escalation after the crash"
    )
    stack.wait_for(
        lambda: any(r.json()["kind"] == "escalated" for r in sink.received), 15, "its notification"
    )
    time.sleep(1.0)  # room for a duplicate to show up, if there were one
    escalations = [
        e.message.split(":")[0] for e in stack.timeline("KILL-1") if e.kind == "escalate"
    ]
    assert escalations.count("escalated L1 → L2") == 1
    assert len(escalations) == len(set(escalations)), escalations  # later tiers: once each too
    to_l2 = [
        r for r in sink.received if r.json()["kind"] == "escalated" and r.json()["tier"] == "L2"
    ]
    assert len({r.headers["webhook-id"] for r in to_l2}) == 1


def test_worker_sigkilled_while_sending_redelivers_with_the_same_id(
    make_stack: StackFactory, sink: Sink
) -> None:
    """A worker killed while a webhook is in flight: the message is sent again, same webhook-id."""
    sink.mode = "hang"
    # hour-long tiers: only the `assigned` message is sent during the test
    stack = make_stack(roles=("ingest", "scheduler"), webhook_url=sink.url, tier_s=3600.0)
    worker = stack.start_ready("worker")
    stack.producer.send(event("issue.opened", "SEND-1", at=datetime.now(UTC)))
    stack.wait_for(lambda: sink.arrived.is_set(), 20, "the webhook request in flight")
    stack.kill(worker)
    sink.mode = "ok"
    sink.release.set()
    stack.start("worker")
    stack.wait_for(lambda: len(sink.received) >= 2, 30, "the redelivery")
    stack.wait_for(
        lambda: (
            {m.channel: m.state for m in stack.outbox("SEND-1")} == {"log": "sent", "sink": "sent"}
        ),
        10,
        "both messages marked sent",
    )
    first, again = sink.received[0], sink.received[1]
    assert first.headers["webhook-id"] == again.headers["webhook-id"]
    assert first.body == again.body
    Webhook(SECRET).verify(again.body, again.headers)  # still correctly signed
