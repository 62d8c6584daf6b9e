"""Events against SLA clocks: which targets start, stop, pause, and what gets re-planned."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from schemas.events import IssueEvent
from schemas.messages import NotificationKind
from schemas.policy import PolicyFile
from worker.domain import (
    EVERYTHING,
    ClockState,
    DeadlineKind,
    IssueClock,
    Lifecycle,
    Transition,
    apply_event,
    end_snooze,
)
from worker.errors import UnknownIssue

T0 = datetime(2026, 3, 4, 10, 0, tzinfo=UTC)
_n = iter(range(1, 10_000))


def m(n: float) -> timedelta:
    return timedelta(minutes=n)


POLICY: dict[str, Any] = {
    "tiers": [{"name": n, "assignee": f"{n}-oncall"} for n in ("L1", "L2", "L3", "lead")],
    "policies": [
        {
            "name": "urgent",
            "match": {"severity": ["P1"]},
            "acknowledge": {
                "ladder": [
                    {"tier": "L1", "within": "5m"},
                    {"tier": "L2", "within": "10m"},
                    {"tier": "L3", "within": "15m"},
                ],
                "renotify_every": "15m",
            },
            "first_response": {"within": "30m", "warn_at": [0.5]},
            "next_response": {"within": "1h", "pause_on": ["pending_customer"]},
            "resolve": {"within": "4h", "pause_on": ["pending_customer", "on_hold"]},
        },
        {
            "name": "db",
            "match": {"patterns": {"title": "(?i)database"}, "status": ["open", "new"]},
            "resolve": {"within": "2h"},
        },
        {"name": "normal", "acknowledge": {"ladder": [{"tier": "L1", "within": "1h"}]}},
    ],
    "default": "normal",
}


@pytest.fixture
def policies() -> PolicyFile:
    """Urgent P1s with all four targets; database issues; a one-step default."""
    return PolicyFile.model_validate(POLICY)


def ev(type_: str, at: datetime, severity: str = "P1", **extra: Any) -> IssueEvent:
    issue = {"id": "OPS-1", "title": "checkout down", "severity": severity}
    issue.update(extra.pop("issue", {}))
    return IssueEvent.model_validate(
        {
            "event_id": f"e{next(_n)}",
            "type": type_,
            "occurred_at": at.isoformat(),
            "source": "jira",
            "issue": issue,
            **extra,
        }
    )


def step(clock: IssueClock | None, event: IssueEvent, policies: PolicyFile) -> Transition:
    return apply_event(clock, event, policies)


@pytest.fixture
def opened(policies: PolicyFile) -> IssueClock:
    """An urgent P1 opened at T0."""
    clock = step(None, ev("issue.opened", T0), policies).clock
    assert clock is not None
    return clock


def kinds(t: Transition) -> list[tuple[str, DeadlineKind, datetime]]:
    return [(s.target, s.kind, s.due_at) for s in t.arm]


def test_opening_starts_every_target_but_next_response(policies: PolicyFile) -> None:
    """Opened: acknowledge, first response and resolve run; next response waits; L1 is told."""
    t = step(None, ev("issue.opened", T0), policies)
    assert t.clock is not None and t.clock.tier == "L1" and t.clock.policy_name == "urgent"
    assert kinds(t) == [
        ("acknowledge", DeadlineKind.ESCALATE, T0 + m(5)),
        ("first_response", DeadlineKind.WARN, T0 + m(15)),
        ("first_response", DeadlineKind.BREACH, T0 + m(30)),
        ("resolve", DeadlineKind.BREACH, T0 + m(240)),
    ]
    assert t.clock.target("next_response") is not None
    assert t.clock.target("next_response").state is ClockState.IDLE  # type: ignore[union-attr]
    assert [k for k, _ in t.notify] == [NotificationKind.ASSIGNED]


def test_policies_match_on_status_and_a_field_pattern(policies: PolicyFile) -> None:
    """A P3 titled 'Database slow' in status 'new' matches `db`; in 'triage' the default."""
    db = step(
        None,
        ev("issue.opened", T0, "P3", issue={"title": "Database slow", "status": "New"}),
        policies,
    )
    assert db.clock is not None and db.clock.policy_name == "db"
    other = step(
        None,
        ev("issue.opened", T0, "P3", issue={"title": "Database slow", "status": "triage"}),
        policies,
    )
    assert other.clock is not None and other.clock.policy_name == "normal"


@pytest.mark.parametrize(
    "type_", ["issue.acknowledged", "issue.resolved", "issue.customer_replied"]
)
def test_an_event_for_an_unknown_issue_raises(policies: PolicyFile, type_: str) -> None:
    """Only issue.opened may introduce an issue."""
    with pytest.raises(UnknownIssue, match=r"arrived before issue\.opened"):
        step(None, ev(type_, T0), policies)


def test_acknowledging_meets_only_the_acknowledge_target(
    policies: PolicyFile, opened: IssueClock
) -> None:
    """Acknowledged: its ladder is cancelled; first response and resolve keep running."""
    t = step(opened, ev("issue.acknowledged", T0 + m(2)), policies)
    assert t.applied and t.cancel == {"acknowledge"} and t.arm == ()
    assert t.clock is not None and t.clock.lifecycle is Lifecycle.ACKNOWLEDGED
    assert t.clock.target("first_response").state is ClockState.RUNNING  # type: ignore[union-attr]
    again = step(t.clock, ev("issue.acknowledged", T0 + m(3)), policies)
    assert not again.applied and "already acknowledged" in again.note


def test_a_response_meets_acknowledge_and_first_response(
    policies: PolicyFile, opened: IssueClock
) -> None:
    """Responded: both targets met, the resolve target runs on."""
    t = step(opened, ev("issue.responded", T0 + m(4)), policies)
    assert t.cancel == {"acknowledge", "first_response"}
    assert t.clock is not None
    assert t.clock.target("first_response").spent == m(4)  # type: ignore[union-attr]


def test_a_customer_update_starts_the_next_response_clock(
    policies: PolicyFile, opened: IssueClock
) -> None:
    """Before the first response it waits; after it, a customer update starts a 1 h clock."""
    early = step(opened, ev("issue.customer_replied", T0 + m(1)), policies)
    assert not early.applied and "first response is still due" in early.note
    responded = step(opened, ev("issue.responded", T0 + m(4)), policies).clock
    t = step(responded, ev("issue.customer_replied", T0 + m(20)), policies)
    assert t.applied and kinds(t) == [("next_response", DeadlineKind.BREACH, T0 + m(80))]
    again = step(t.clock, ev("issue.customer_replied", T0 + m(25)), policies)
    assert not again.applied and "already due" in again.note
    met = step(t.clock, ev("issue.responded", T0 + m(30)), policies)
    assert met.cancel == {"next_response"}


def test_a_pausing_status_stops_only_the_targets_that_name_it(
    policies: PolicyFile, opened: IssueClock
) -> None:
    """on_hold at 60 min pauses resolve only; back to open at 90 min: resolve due 30 min later."""
    held = step(
        opened, ev("issue.status_changed", T0 + m(60), issue={"status": "on_hold"}), policies
    )
    assert held.cancel == {"resolve"} and held.arm == ()
    assert held.notes == ("resolve clock paused (status 'on_hold') with 3h left",)
    back = step(
        held.clock, ev("issue.status_changed", T0 + m(90), issue={"status": "open"}), policies
    )
    assert back.cancel == {"resolve"}
    assert kinds(back) == [("resolve", DeadlineKind.BREACH, T0 + m(270))]
    assert back.notes == ("resolve clock resumed with 3h left",)


def test_a_snooze_holds_every_clock_but_resolve_until_it_ends(
    policies: PolicyFile, opened: IssueClock
) -> None:
    """Snoozed at 2 min until 12 min: acknowledge resumes then, due at 15 min."""
    t = step(
        opened, ev("issue.snoozed", T0 + m(2), snooze_until=(T0 + m(12)).isoformat()), policies
    )
    assert t.cancel == {"acknowledge", "first_response", "snooze"}
    assert kinds(t) == [("snooze", DeadlineKind.RESUME, T0 + m(12))]
    assert t.clock is not None
    ended = end_snooze(t.clock, policies, T0 + m(12))
    assert ended.applied and ended.clock is not None and ended.clock.snoozed_until is None
    assert ("acknowledge", DeadlineKind.ESCALATE, T0 + m(15)) in kinds(ended)
    assert not end_snooze(ended.clock, policies, T0 + m(12)).applied  # that snooze is over


def test_an_escalation_request_moves_to_the_next_tier_now(
    policies: PolicyFile, opened: IssueClock
) -> None:
    """Escalated by hand at 2 min: L2 holds it and has its full 10 min from then."""
    t = step(opened, ev("issue.escalation_requested", T0 + m(2)), policies)
    assert t.clock is not None and t.clock.tier == "L2"
    assert [k for k, _ in t.notify] == [NotificationKind.ESCALATED]
    assert ("acknowledge", DeadlineKind.ESCALATE, T0 + m(12)) in kinds(t)
    assert ("acknowledge", DeadlineKind.BREACH, T0 + m(5)) in kinds(t)  # the target still holds


def test_resolving_stops_everything_and_reopening_starts_a_new_cycle(
    policies: PolicyFile, opened: IssueClock
) -> None:
    """Resolved: all cancelled, notified. Reopened: cycle 2 at L1, fresh deadlines."""
    done = step(opened, ev("issue.resolved", T0 + m(30)), policies)
    assert done.cancel == EVERYTHING and [k for k, _ in done.notify] == [NotificationKind.RESOLVED]
    again = step(done.clock, ev("issue.reopened", T0 + m(60)), policies)
    assert again.clock is not None and again.clock.clock_version == 2 and again.clock.tier == "L1"
    assert ("acknowledge", DeadlineKind.ESCALATE, T0 + m(65)) in kinds(again)


def test_opened_again_after_resolution_reopens_at_its_new_severity(
    policies: PolicyFile, opened: IssueClock
) -> None:
    """An alert that fires again (issue.opened, newer than the resolution) reopens the issue:
    cycle 2 at L1 under the policy of the severity it now has, its tier told again."""
    done = step(opened, ev("issue.resolved", T0 + m(30)), policies).clock
    again = step(done, ev("issue.opened", T0 + m(60), "P3"), policies)
    assert again.clock is not None and again.clock.lifecycle is Lifecycle.OPEN
    assert again.clock.clock_version == 2 and again.clock.tier == "L1"
    assert again.clock.severity == "P3" and again.clock.policy_name == "normal"
    assert again.take_snapshot and "opened again" in again.note
    assert [k for k, _ in again.notify] == [NotificationKind.ASSIGNED]
    assert kinds(again) == [("acknowledge", DeadlineKind.REMIND, T0 + m(120))]  # L1 for 1h


def test_opened_older_than_the_resolution_does_not_reopen(
    policies: PolicyFile, opened: IssueClock
) -> None:
    """A stale issue.opened (from before the resolution, delivered late) leaves it resolved."""
    done = step(opened, ev("issue.resolved", T0 + m(30)), policies).clock
    late = step(done, ev("issue.opened", T0 + m(20)), policies)
    assert late.clock is not None and late.clock.lifecycle is Lifecycle.RESOLVED
    assert not late.arm and not late.notify


def test_a_later_resolution_keeps_an_older_opened_from_reopening(
    policies: PolicyFile, opened: IssueClock
) -> None:
    """resolved 10:30, resolved again 11:30, then an opened of 11:00 arrives late: it stays
    resolved (the later resolution moved the resolution time; the event is not ignored)."""
    done = step(opened, ev("issue.resolved", T0 + m(30)), policies).clock
    again = step(done, ev("issue.resolved", T0 + m(90)), policies)
    assert again.applied and not again.notify and not again.arm
    assert again.clock is not None and again.clock.lifecycle_at == T0 + m(90)
    late = step(again.clock, ev("issue.opened", T0 + m(60)), policies)
    assert late.clock is not None and late.clock.lifecycle is Lifecycle.RESOLVED
    repeat = step(again.clock, ev("issue.resolved", T0 + m(45)), policies)
    assert not repeat.applied and "older than the last lifecycle event" in repeat.note


def test_opened_again_keeps_the_details_of_a_later_update(
    policies: PolicyFile, opened: IssueClock
) -> None:
    """An update newer than the re-fire, applied first, keeps its details (no snapshot)."""
    done = step(opened, ev("issue.resolved", T0 + m(30)), policies).clock
    updated = step(done, ev("issue.updated", T0 + m(70)), policies).clock
    again = step(updated, ev("issue.opened", T0 + m(60)), policies)
    assert again.clock is not None and again.clock.lifecycle is Lifecycle.OPEN
    assert not again.take_snapshot and again.clock.snapshot_at == T0 + m(70)


def test_late_events_are_ignored(policies: PolicyFile, opened: IssueClock) -> None:
    """A lifecycle event or an update older than the last one changes nothing."""
    acked = step(opened, ev("issue.acknowledged", T0 + m(10)), policies).clock
    late = step(acked, ev("issue.resolved", T0 + m(5)), policies)
    assert not late.applied and "older than the last lifecycle event" in late.note
    updated = step(acked, ev("issue.updated", T0 + m(12)), policies).clock
    stale = step(updated, ev("issue.updated", T0 + m(11), "P2"), policies)
    assert not stale.applied and "older than the last update" in stale.note


def test_a_severity_upgrade_replans_from_the_original_start(policies: PolicyFile) -> None:
    """A P3 raised to P1 after 20 min: P1's deadlines from T0, so L1's 5 min are already past."""
    p3 = step(None, ev("issue.opened", T0, "P3"), policies).clock
    t = step(p3, ev("issue.updated", T0 + m(20), "P1"), policies)
    assert t.clock is not None and t.clock.policy_name == "urgent" and t.clock.clock_version == 2
    assert t.cancel == EVERYTHING
    assert ("acknowledge", DeadlineKind.ESCALATE, T0 + m(5)) in kinds(t)  # past: fires at once


def test_a_severity_change_on_a_resolved_issue_only_updates_details(
    policies: PolicyFile, opened: IssueClock
) -> None:
    """Resolved issues are not re-planned."""
    done = step(opened, ev("issue.resolved", T0 + m(1)), policies).clock
    t = step(done, ev("issue.updated", T0 + m(2), "P3"), policies)
    assert t.applied and t.arm == () and t.clock is not None and t.clock.policy_name == "urgent"
