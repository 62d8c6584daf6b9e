"""The policy engine end to end: real events through Redis, real ingest, scheduler and worker."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest

from tests.support.fixtures import StackFactory
from tests.support.stack import Stack, event
from worker.store.models import TimelineEntry

pytestmark = pytest.mark.integration

POLICY = """
tiers:
  - {name: L1, assignee: l1-oncall}
  - {name: L2, assignee: l2-oncall}
  - {name: L3, assignee: l3-oncall}
policies:
  - name: urgent
    match: {severity: [P1]}
    acknowledge:
      pause_on: [on_hold]
      ladder:
        - {tier: L1, within: 3s}
        - {tier: L2, within: 30s}
        - {tier: L3, within: 30s}
    resolve: {within: 4s, warn_at: [0.5]}
  - name: slow
    acknowledge:
      ladder:
        - {tier: L1, within: 1h}
        - {tier: L2, within: 1h}
default: slow
"""


def escalations(stack: Stack, issue: str) -> list[TimelineEntry]:
    return [e for e in stack.timeline(issue) if e.kind == "escalate"]


def test_a_paused_issue_escalates_later_by_exactly_the_paused_time(
    make_stack: StackFactory,
) -> None:
    """On hold from 1 s to 3 s: L1's 3 s run out at 5 s, not 3 s."""
    stack = make_stack(policy_text=POLICY)
    t0 = datetime.now(UTC)
    stack.producer.send(event("issue.opened", "PAUSE-1", at=t0))
    stack.producer.send(
        event("issue.status_changed", "PAUSE-1", at=t0 + timedelta(seconds=1), status="on_hold")
    )
    stack.producer.send(
        event("issue.status_changed", "PAUSE-1", at=t0 + timedelta(seconds=3), status="open")
    )
    stack.wait_for(lambda: escalations(stack, "PAUSE-1"), 15, "the escalation")
    first = escalations(stack, "PAUSE-1")[0]
    assert abs((first.at - (t0 + timedelta(seconds=5))).total_seconds()) < 0.001, first.at
    notes = [e.message for e in stack.timeline("PAUSE-1") if e.kind == "clock"]
    assert notes[:2] == [
        "acknowledge clock paused (status 'on_hold') with 2s left",
        "acknowledge clock resumed with 2s left",
    ]


def test_a_warning_fires_before_the_breach(make_stack: StackFactory) -> None:
    """Half of the 4 s resolve target: a warning at 2 s, then the breach at 4 s, each once."""
    stack = make_stack(policy_text=POLICY)
    t0 = datetime.now(UTC)
    stack.producer.send(event("issue.opened", "WARN-1", at=t0))
    stack.producer.send(event("issue.acknowledged", "WARN-1", at=t0 + timedelta(milliseconds=100)))
    stack.wait_for(lambda: "breach" in stack.kinds("WARN-1"), 15, "the breach")
    time.sleep(0.5)
    timeline = [(e.kind, e.at) for e in stack.timeline("WARN-1") if e.kind in ("warn", "breach")]
    assert [k for k, _ in timeline] == ["warn", "breach"]
    assert abs((timeline[0][1] - (t0 + timedelta(seconds=2))).total_seconds()) < 0.001
    assert abs((timeline[1][1] - (t0 + timedelta(seconds=4))).total_seconds()) < 0.001
    stack.wait_for(
        lambda: (
            [m.kind for m in stack.outbox("WARN-1") if m.kind != "assigned"]
            == ["warning", "breach"]
        ),
        10,
        "one warning and one breach message",
    )


def test_a_severity_upgrade_past_a_deadline_escalates_at_once_and_once(
    make_stack: StackFactory,
) -> None:
    """A P3 raised to P1 after 4 s (P1's L1 had 3 s): it escalates on the upgrade, once."""
    stack = make_stack(policy_text=POLICY)
    t0 = datetime.now(UTC)
    stack.producer.send(event("issue.opened", "UP-1", at=t0, severity="P3"))
    stack.wait_for(lambda: stack.issue("UP-1"), 10, "UP-1 opened")
    upgrade_at = t0 + timedelta(seconds=4)
    stack.wait_for(lambda: datetime.now(UTC) >= upgrade_at, 10, "the upgrade time")
    stack.producer.send(event("issue.updated", "UP-1", at=upgrade_at, severity="P1"))
    stack.wait_for(lambda: escalations(stack, "UP-1"), 10, "the escalation")
    time.sleep(1.5)  # room for a duplicate, if there were one
    moves = escalations(stack, "UP-1")
    assert [e.message.split(":")[0] for e in moves] == ["escalated L1 → L2"]
    # "at once": in the issue's history it escalates at the upgrade, where P3's ladder would
    # have waited an hour
    assert moves[0].at == upgrade_at
    up1 = stack.issue("UP-1")
    assert up1 is not None
    assert up1.policy_name == "urgent"
