"""The SLA arithmetic and the escalation decision (worker/domain/sla.py)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from schemas.events import Severity
from schemas.policy import Policy, PolicyFile
from worker.domain.sla import (
    Breach,
    ClockView,
    DeadlineKind,
    DeadlineSpec,
    Escalate,
    FiringDeadline,
    Lifecycle,
    Remind,
    Stale,
    ack_due,
    decide,
    next_reminder,
    plan,
)

from .factories import T0, ladder_policies, minutes


@pytest.fixture
def p1(policies: PolicyFile) -> Policy:
    """The default file's P1 policy: L1 5m, L2 10m, L3 15m, manager 15m; remind 15m; 4h."""
    return policies.match(Severity.P1, "jira", ())


def firing(kind: DeadlineKind, tier: int, due_offset_min: float, cycle: int = 1) -> FiringDeadline:
    """A deadline armed for `tier` in `cycle`, due `due_offset_min` minutes after T0."""
    return FiringDeadline(kind, cycle, tier, T0 + minutes(due_offset_min))


def test_packaged_p1_policy_is_the_critical_ladder(p1: Policy) -> None:
    """The default policy file routes P1 to the four-step `critical` ladder."""
    assert p1.name == "critical"
    assert [s.tier for s in p1.acknowledge.ladder] == ["L1", "L2", "L3", "manager"]


@pytest.mark.parametrize(("tier", "expected_min"), [(0, 5), (1, 15), (2, 30), (3, 45), (7, 45)])
def test_ack_due_sums_the_ladder_up_to_the_tier(p1: Policy, tier: int, expected_min: int) -> None:
    """Tier i must acknowledge by start + within[0..i]; indexes past the end clamp to the last."""
    assert ack_due(p1, T0, tier) == T0 + minutes(expected_min)


def test_plan_open_arms_the_tier_deadline_and_the_resolve_target(p1: Policy) -> None:
    """An open issue gets an escalate deadline for its tier plus the resolve target."""
    assert plan(p1, T0, 0, Lifecycle.OPEN) == [
        DeadlineSpec(DeadlineKind.ESCALATE, 0, T0 + minutes(5)),
        DeadlineSpec(DeadlineKind.RESOLVE, 0, T0 + timedelta(hours=4)),
    ]


def test_plan_open_at_the_last_tier_arms_a_reminder(p1: Policy) -> None:
    """At the last tier the acknowledge deadline is a reminder, not an escalation."""
    specs = plan(p1, T0, 3, Lifecycle.OPEN)
    assert specs[0] == DeadlineSpec(DeadlineKind.REMIND, 3, T0 + minutes(45))


def test_plan_acknowledged_keeps_only_the_resolve_target(p1: Policy) -> None:
    """An acknowledged issue has no acknowledge deadline, only the resolve target."""
    assert plan(p1, T0, 1, Lifecycle.ACKNOWLEDGED) == [
        DeadlineSpec(DeadlineKind.RESOLVE, 1, T0 + timedelta(hours=4))
    ]


def test_plan_resolved_arms_nothing(p1: Policy) -> None:
    """A resolved issue has no deadlines."""
    assert plan(p1, T0, 0, Lifecycle.RESOLVED) == []


def test_plan_without_resolve_target_arms_only_acknowledge() -> None:
    """A policy with no resolve target plans no resolve deadline."""
    policy = ladder_policies(resolve=None).policies[0]
    assert [s.kind for s in plan(policy, T0, 0, Lifecycle.OPEN)] == [DeadlineKind.ESCALATE]


def test_decide_escalates_with_next_due_from_the_planned_due_time(p1: Policy) -> None:
    """A late firing moves to the next tier; its due is due_at + next within, not now + within."""
    late_now = T0 + timedelta(hours=2)  # the scheduler was down for two hours
    decision = decide(
        ClockView(Lifecycle.OPEN, 1, 0), firing(DeadlineKind.ESCALATE, 0, 5), p1, late_now
    )
    assert decision == Escalate(1, DeadlineSpec(DeadlineKind.ESCALATE, 1, T0 + minutes(15)))


def test_decide_escalating_onto_the_last_tier_arms_a_reminder(p1: Policy) -> None:
    """Reaching the last tier arms a REMIND deadline at that tier's due time."""
    decision = decide(
        ClockView(Lifecycle.OPEN, 1, 2), firing(DeadlineKind.ESCALATE, 2, 30), p1, T0 + minutes(30)
    )
    assert decision == Escalate(3, DeadlineSpec(DeadlineKind.REMIND, 3, T0 + minutes(45)))


def test_decide_at_last_tier_reminds_again(p1: Policy) -> None:
    """A deadline at the last tier reminds and re-arms one renotify interval later."""
    decision = decide(
        ClockView(Lifecycle.OPEN, 1, 3), firing(DeadlineKind.REMIND, 3, 45), p1, T0 + minutes(45)
    )
    assert decision == Remind(DeadlineSpec(DeadlineKind.REMIND, 3, T0 + minutes(60)))


def test_next_reminder_skips_missed_reminders_after_an_outage(p1: Policy) -> None:
    """After a long outage the next reminder is the first one still ahead: no catch-up storm."""
    due = T0 + minutes(45)
    now = due + timedelta(hours=5, minutes=7)  # 20 reminders (15m each) were missed
    nxt = next_reminder(p1, due, now)
    assert now < nxt <= now + minutes(15)
    assert (nxt - due) % minutes(15) == timedelta(0)


def test_next_reminder_on_an_exact_boundary_is_strictly_ahead(p1: Policy) -> None:
    """When `now` is exactly on a reminder time, the next one is a full interval later."""
    due = T0
    assert next_reminder(p1, due, due + minutes(30)) == due + minutes(45)


def test_next_reminder_defaults_to_the_last_tier_within() -> None:
    """Without renotify_every the last tier's own `within` is the interval."""
    policy = ladder_policies(steps=(("L1", "5m"), ("L2", "20m")), renotify=None).policies[0]
    assert next_reminder(policy, T0, T0) == T0 + minutes(20)


def test_decide_late_reminder_does_not_storm(p1: Policy) -> None:
    """A reminder fired hours late re-arms in the future, not at the missed times."""
    now = T0 + timedelta(hours=6)
    decision = decide(ClockView(Lifecycle.OPEN, 1, 3), firing(DeadlineKind.REMIND, 3, 45), p1, now)
    assert isinstance(decision, Remind)
    assert now < decision.next.due_at <= now + minutes(15)


@pytest.mark.parametrize(
    ("view", "deadline", "reason"),
    [
        (ClockView(Lifecycle.OPEN, 2, 0), firing(DeadlineKind.ESCALATE, 0, 5, cycle=1), "cycle"),
        (ClockView(Lifecycle.OPEN, 1, 1), firing(DeadlineKind.ESCALATE, 0, 5), "tier"),
        (ClockView(Lifecycle.ACKNOWLEDGED, 1, 0), firing(DeadlineKind.ESCALATE, 0, 5), "acknowl"),
        (ClockView(Lifecycle.ACKNOWLEDGED, 1, 3), firing(DeadlineKind.REMIND, 3, 45), "acknowl"),
        (ClockView(Lifecycle.RESOLVED, 1, 0), firing(DeadlineKind.ESCALATE, 0, 5), "resolved"),
        (ClockView(Lifecycle.RESOLVED, 1, 0), firing(DeadlineKind.RESOLVE, 0, 240), "resolved"),
        (ClockView(Lifecycle.OPEN, 2, 0), firing(DeadlineKind.RESOLVE, 0, 240, cycle=1), "cycle"),
    ],
    ids=[
        "old-version",
        "wrong-tier",
        "acked",
        "acked-remind",
        "resolved",
        "resolved-breach",
        "resolve-old-version",
    ],
)
def test_decide_is_stale_when_the_issue_moved_on(
    p1: Policy, view: ClockView, deadline: FiringDeadline, reason: str
) -> None:
    """The fence: a deadline armed for another cycle, tier or lifecycle does nothing."""
    decision = decide(view, deadline, p1, deadline.due_at)
    assert isinstance(decision, Stale)
    assert reason in decision.reason


@pytest.mark.parametrize("lifecycle", [Lifecycle.OPEN, Lifecycle.ACKNOWLEDGED])
def test_decide_resolve_deadline_is_a_breach(p1: Policy, lifecycle: Lifecycle) -> None:
    """The resolve target breaches whether or not the issue was acknowledged, at any tier."""
    decision = decide(
        ClockView(lifecycle, 1, 2), firing(DeadlineKind.RESOLVE, 0, 240), p1, T0 + minutes(240)
    )
    assert decision == Breach()
