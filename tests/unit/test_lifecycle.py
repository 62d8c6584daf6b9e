"""How events move an issue's SLA clock (worker/domain/lifecycle.py)."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest

from schemas.events import Severity
from schemas.messages import NotificationKind
from schemas.policy import PolicyFile
from worker.domain.lifecycle import Cancel, IssueClock, apply_event
from worker.domain.sla import DeadlineKind, DeadlineSpec, Lifecycle
from worker.errors import PermanentError, UnknownIssue

from .factories import T0, event, minutes


@pytest.fixture
def opened(policies: PolicyFile) -> IssueClock:
    """The clock of a P1 issue opened at T0 under the default policy."""
    clock = apply_event(None, event("issue.opened", at=T0), policies).clock
    assert clock is not None
    return clock


def test_opened_arms_acknowledge_and_resolve_and_notifies_assigned(policies: PolicyFile) -> None:
    """issue.opened starts cycle 1 at tier 0, arms the L1 and resolve deadlines, notifies."""
    t = apply_event(None, event("issue.opened", at=T0, severity="P1"), policies)
    assert t.applied and t.take_snapshot
    assert t.clock == IssueClock(Lifecycle.OPEN, Severity.P1, "critical", 0, 1, T0, T0, T0)
    assert t.arm == (
        DeadlineSpec(DeadlineKind.ESCALATE, 0, T0 + minutes(5)),
        DeadlineSpec(DeadlineKind.RESOLVE, 0, T0 + timedelta(hours=4)),
    )
    assert t.notify == (NotificationKind.ASSIGNED,)
    assert t.cancel is Cancel.NONE


def test_opened_picks_the_policy_by_severity(policies: PolicyFile) -> None:
    """A P3 issue lands on the `medium` policy with its one-hour L1 step."""
    t = apply_event(None, event("issue.opened", severity="medium"), policies)
    assert t.clock is not None and t.clock.policy_name == "medium"
    assert t.arm[0].due_at == T0 + timedelta(hours=1)


@pytest.mark.parametrize(
    "type_",
    [
        "issue.updated",
        "issue.acknowledged",
        "issue.responded",
        "issue.status_changed",
        "issue.resolved",
        "issue.reopened",
    ],
)
def test_non_opened_event_for_unknown_issue_raises(policies: PolicyFile, type_: str) -> None:
    """Anything but issue.opened about a never-seen issue is a permanent UnknownIssue."""
    with pytest.raises(UnknownIssue, match="unknown issue 'jira:OPS-1'") as info:
        apply_event(None, event(type_), policies)
    assert isinstance(info.value, PermanentError)


@pytest.mark.parametrize("type_", ["issue.acknowledged", "issue.responded"])
def test_acknowledged_or_responded_cancels_acknowledge_deadlines(
    policies: PolicyFile, opened: IssueClock, type_: str
) -> None:
    """An ack (or a first response) stops escalation but keeps the resolve target."""
    t = apply_event(opened, event(type_, at=T0 + minutes(2)), policies)
    assert t.applied
    assert t.clock == replace(
        opened, lifecycle=Lifecycle.ACKNOWLEDGED, lifecycle_at=T0 + minutes(2)
    )
    assert t.cancel is Cancel.ACKNOWLEDGE
    assert t.arm == () and t.notify == ()


def test_second_acknowledge_is_ignored(policies: PolicyFile, opened: IssueClock) -> None:
    """Acknowledging an acknowledged issue changes nothing."""
    acked = apply_event(opened, event("issue.acknowledged", at=T0 + minutes(1)), policies).clock
    assert acked is not None
    t = apply_event(acked, event("issue.acknowledged", at=T0 + minutes(2)), policies)
    assert not t.applied and t.clock == acked and "already acknowledged" in t.note


def test_resolved_cancels_everything_and_notifies(policies: PolicyFile, opened: IssueClock) -> None:
    """issue.resolved disarms every deadline and sends a RESOLVED notification."""
    t = apply_event(opened, event("issue.resolved", at=T0 + minutes(9)), policies)
    assert t.applied and t.clock is not None
    assert t.clock.lifecycle is Lifecycle.RESOLVED
    assert t.cancel is Cancel.ALL
    assert t.notify == (NotificationKind.RESOLVED,)
    assert t.arm == ()


def test_reopened_restarts_the_clock(policies: PolicyFile, opened: IssueClock) -> None:
    """A reopen starts a new cycle at tier 0 with the next clock version, planned from then."""
    escalated = replace(opened, tier_index=2)
    resolved = apply_event(escalated, event("issue.resolved", at=T0 + minutes(40)), policies).clock
    assert resolved is not None
    at = T0 + timedelta(hours=1)
    t = apply_event(resolved, event("issue.reopened", at=at), policies)
    assert t.applied and t.clock is not None
    assert (t.clock.lifecycle, t.clock.tier_index, t.clock.clock_version) == (Lifecycle.OPEN, 0, 2)
    assert t.clock.cycle_started_at == at
    assert t.cancel is Cancel.ALL
    assert t.arm[0] == DeadlineSpec(DeadlineKind.ESCALATE, 0, at + minutes(5))
    assert t.notify == (NotificationKind.ASSIGNED,)


def test_older_lifecycle_event_is_ignored(policies: PolicyFile, opened: IssueClock) -> None:
    """A resolve older than the last lifecycle event (the ack) is recorded and ignored."""
    acked = apply_event(opened, event("issue.acknowledged", at=T0 + minutes(10)), policies).clock
    assert acked is not None
    t = apply_event(acked, event("issue.resolved", at=T0 + minutes(5)), policies)
    assert not t.applied and t.clock == acked
    assert "older than the last lifecycle event" in t.note
    assert t.cancel is Cancel.NONE and t.notify == ()


def test_older_update_is_ignored(policies: PolicyFile, opened: IssueClock) -> None:
    """A snapshot older than the last one cannot roll the issue back (even its severity)."""
    newer = apply_event(opened, event("issue.updated", at=T0 + minutes(10)), policies).clock
    assert newer is not None
    t = apply_event(newer, event("issue.updated", at=T0 + minutes(3), severity="P4"), policies)
    assert not t.applied and t.clock == newer
    assert "older than the last update" in t.note


def test_reopen_overtaking_its_resolve_ends_open(policies: PolicyFile, opened: IssueClock) -> None:
    """Reopen (t=20m) delivered before resolve (t=10m): the late resolve is ignored, issue open."""
    reopened = apply_event(opened, event("issue.reopened", at=T0 + minutes(20)), policies)
    assert reopened.applied and reopened.clock is not None
    late = apply_event(reopened.clock, event("issue.resolved", at=T0 + minutes(10)), policies)
    assert not late.applied
    assert late.clock is not None and late.clock.lifecycle is Lifecycle.OPEN
    assert late.clock.clock_version == 2


def test_update_with_same_severity_only_takes_the_snapshot(
    policies: PolicyFile, opened: IssueClock
) -> None:
    """An update that keeps the severity records the snapshot and touches no deadline."""
    t = apply_event(opened, event("issue.updated", at=T0 + minutes(1), title="new"), policies)
    assert t.applied and t.take_snapshot
    assert t.clock == replace(opened, snapshot_at=T0 + minutes(1))
    assert t.cancel is Cancel.NONE and t.arm == ()


def test_severity_change_replans_from_the_original_start(policies: PolicyFile) -> None:
    """P3 → P1 twenty minutes in: version+1, cancel ALL, P1 ladder from T0 (already due)."""
    start = apply_event(None, event("issue.opened", severity="P3"), policies).clock
    assert start is not None
    at = T0 + minutes(20)
    t = apply_event(start, event("issue.updated", at=at, severity="P1"), policies)
    assert t.applied and t.clock is not None
    assert (t.clock.severity, t.clock.policy_name) == (Severity.P1, "critical")
    assert t.clock.clock_version == start.clock_version + 1
    assert t.clock.cycle_started_at == T0
    assert t.cancel is Cancel.ALL
    ack = t.arm[0]
    assert ack == DeadlineSpec(DeadlineKind.ESCALATE, 0, T0 + minutes(5))
    assert ack.due_at < at  # in the past: the scheduler will fire it at once


def test_severity_change_clamps_the_tier_to_the_new_ladder(policies: PolicyFile) -> None:
    """An issue at tier 3 of P1 moved to P4 (two steps) lands on P4's last tier, reminding."""
    start = apply_event(None, event("issue.opened", severity="P1"), policies).clock
    assert start is not None
    t = apply_event(
        replace(start, tier_index=3),
        event("issue.updated", at=T0 + minutes(50), severity="P4"),
        policies,
    )
    assert t.clock is not None and t.clock.tier_index == 1
    assert t.arm[0].kind is DeadlineKind.REMIND


def test_severity_change_on_a_resolved_issue_does_not_replan(
    policies: PolicyFile, opened: IssueClock
) -> None:
    """A resolved issue's severity is recorded but nothing is re-armed."""
    resolved = apply_event(opened, event("issue.resolved", at=T0 + minutes(1)), policies).clock
    assert resolved is not None
    t = apply_event(resolved, event("issue.updated", at=T0 + minutes(2), severity="P2"), policies)
    assert t.applied and t.clock is not None and t.clock.severity is Severity.P2
    assert t.arm == () and t.cancel is Cancel.NONE
    assert t.clock.clock_version == resolved.clock_version
