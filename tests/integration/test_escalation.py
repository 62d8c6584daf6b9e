"""The pipeline end to end: events on the stream, real ingest, scheduler and Celery worker."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tests.support.fixtures import StackFactory
from tests.support.stack import event

pytestmark = pytest.mark.integration

TIER_S = 2.0


def test_p1_escalates_l1_l2_l3_on_time(make_stack: StackFactory) -> None:
    """An unacknowledged P1 moves L1 → L2 → L3, each escalation recorded at its due time."""
    stack = make_stack()
    opened = datetime.now(UTC)
    stack.producer.send(event("issue.opened", "ESC-1", at=opened))
    stack.wait_for(lambda: stack.tier("ESC-1") == "L3", 30, "ESC-1 to reach L3")
    escalations = [e for e in stack.timeline("ESC-1") if e.kind == "escalate"]
    assert [e.message.split(":")[0] for e in escalations] == [
        "escalated L1 → L2",
        "escalated L2 → L3",
    ]
    for n, entry in enumerate(escalations, start=1):
        due = opened + timedelta(seconds=TIER_S * n)
        assert abs((entry.at - due).total_seconds()) < 0.001, (n, entry.at, due)
    issue = stack.issue("ESC-1")
    assert issue is not None and issue.assignee == "l3-oncall"
    stack.wait_for(
        lambda: sum(m.state == "sent" for m in stack.outbox("ESC-1")) == 3,
        10,
        "assigned + two escalated notifications sent",
    )
    assert [m.kind for m in stack.outbox("ESC-1")] == ["assigned", "escalated", "escalated"]


def test_acknowledge_stops_the_ladder(make_stack: StackFactory) -> None:
    """Acknowledged within its tier's time: it never escalates, its ack deadline is cancelled."""
    stack = make_stack()
    now = datetime.now(UTC)
    stack.producer.send(event("issue.opened", "ACK-1", at=now))
    stack.producer.send(event("issue.acknowledged", "ACK-1", at=now + timedelta(seconds=0.5)))
    stack.wait_for(lambda: "event" in stack.kinds("ACK-1")[1:], 10, "the acknowledgement applied")
    stack.wait_for(lambda: datetime.now(UTC) > now + timedelta(seconds=TIER_S * 2.5), 10, "time")
    issue = stack.issue("ACK-1")
    assert issue is not None and (issue.tier, issue.lifecycle) == ("L1", "acknowledged")
    assert "escalate" not in stack.kinds("ACK-1")
    assert {d.kind: d.state for d in stack.deadlines("ACK-1")} == {"escalate": "cancelled"}


def test_duplicates_and_out_of_order_events_change_nothing(make_stack: StackFactory) -> None:
    """Repeated event ids and late, older events are recorded but leave the issue as it was."""
    stack = make_stack()
    t0 = datetime.now(UTC)
    opened = event("issue.opened", "ORD-1", at=t0, event_id="ord-open")
    stack.producer.send_many(
        [
            opened,
            event("issue.acknowledged", "ORD-1", at=t0 + timedelta(seconds=1)),
            event("issue.resolved", "ORD-1", at=t0 + timedelta(seconds=3)),
        ]
    )
    stack.wait_for(lambda: (i := stack.issue("ORD-1")) and i.lifecycle == "resolved", 10, "resolve")
    before = stack.processed_count()
    stack.producer.send_many(
        [
            opened,  # the same event id again
            event(
                "issue.opened", "ORD-1", at=t0, event_id="ord-open", severity="P4"
            ),  # same id, other body
            event(
                "issue.reopened", "ORD-1", at=t0 + timedelta(seconds=2)
            ),  # older than the resolve
            event("issue.acknowledged", "ORD-1", at=t0 + timedelta(seconds=0.5)),
            event("issue.updated", "ORD-1", at=t0 - timedelta(seconds=5), severity="P4"),
        ]
    )
    stack.wait_for(lambda: stack.processed_count() == before + 3, 10, "late events recorded")
    stack.wait_for(
        lambda: stack.redis.xpending("escalator:events", "escalator")["pending"] == 0,
        10,
        "every entry acked",
    )
    issue = stack.issue("ORD-1")
    assert issue is not None
    assert (issue.lifecycle, issue.severity, issue.tier, issue.clock_version) == (
        "resolved",
        "P1",
        "L1",
        1,
    )
    assert stack.kinds("ORD-1").count("ignored") == 3
    assert not [d for d in stack.deadlines("ORD-1") if d.state == "armed"]
    assert stack.redis.xlen("escalator:events:dead") == 0


def test_a_late_open_catches_up_step_by_step_and_exactly_once(make_stack: StackFactory) -> None:
    """An issue.opened delivered 12 s late takes the steps already due at once, one by one (the
    same history as if it had come in time), then keeps the schedule."""
    tier_s = 5.0
    stack = make_stack(tier_s=tier_s)
    opened = datetime.now(UTC) - timedelta(seconds=12)
    stack.producer.send(event("issue.opened", "LATE-1", at=opened))
    stack.wait_for(lambda: stack.tier("LATE-1") == "manager", 30, "LATE-1 to reach manager")
    escalations = [e for e in stack.timeline("LATE-1") if e.kind == "escalate"]
    assert [e.message.split(":")[0] for e in escalations] == [
        "escalated L1 → L2",
        "escalated L2 → L3",
        "escalated L3 → manager",
    ]
    for n, entry in enumerate(escalations, start=1):  # each at its place in history
        due = opened + timedelta(seconds=n * tier_s)
        assert abs((entry.at - due).total_seconds()) < 0.001, (n, entry.at, due)
    fired = [d for d in stack.deadlines("LATE-1") if d.state == "fired" and d.kind == "escalate"]
    assert len(fired) == len({d.id for d in fired}) == 3
    assert all(d.fired_at is not None and d.fired_at >= d.due_at for d in fired)
    messages = [m for m in stack.outbox("LATE-1") if m.kind == "escalated"]
    assert [m.payload["tier"] for m in messages] == ["L2", "L3", "manager"]  # each tier told
