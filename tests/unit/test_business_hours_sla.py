"""SLA deadlines on business calendars: the clock runs only while the office is open."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from config.settings import PACKAGED_POLICY
from schemas.policy import PolicyFile
from worker.domain.sla import (
    ClockView,
    DeadlineKind,
    Escalate,
    FiringDeadline,
    Lifecycle,
    ack_due,
    decide,
    plan,
)
from worker.policy_loader import load_policy

BERLIN = ZoneInfo("Europe/Berlin")


def berlin(*args: int) -> datetime:
    return datetime(*args, tzinfo=BERLIN)


@pytest.fixture
def office() -> PolicyFile:
    """P3 on a Berlin office calendar (09-17 Mon-Fri, DE/BE holidays); P1 on 24x7."""
    return PolicyFile.model_validate(
        {
            "calendars": {
                "berlin": {
                    "timezone": "Europe/Berlin",
                    "hours": {d: ["09:00-17:00"] for d in ("mon", "tue", "wed", "thu", "fri")},
                    "holidays": {"country": "DE", "subdivision": "BE"},
                }
            },
            "tiers": [{"name": "L1"}, {"name": "L2"}, {"name": "L3"}],
            "policies": [
                {
                    "name": "p1",
                    "match": {"severity": ["P1"]},
                    "acknowledge": {
                        "ladder": [{"tier": "L1", "within": "1h"}, {"tier": "L2", "within": "1h"}]
                    },
                },
                {
                    "name": "p3",
                    "acknowledge": {
                        "calendar": "berlin",
                        "ladder": [
                            {"tier": "L1", "within": "1h"},
                            {"tier": "L2", "within": "2h"},
                            {"tier": "L3", "within": "8h"},
                        ],
                    },
                    "resolve": {"within": "16h", "calendar": "berlin"},
                },
            ],
            "default": "p3",
        }
    )


def test_a_friday_afternoon_issue_escalates_on_monday_morning(office: PolicyFile) -> None:
    """P3 opened Friday 16:30 with 1 business hour for L1 escalates Monday 09:30 Berlin time."""
    policy = office.policy("p3")
    assert policy is not None
    opened = berlin(2026, 3, 6, 16, 30)
    assert ack_due(policy, opened, 0) == berlin(2026, 3, 9, 9, 30)
    assert ack_due(policy, opened, 1) == berlin(2026, 3, 9, 11, 30)  # + L2's 2 h


def test_the_next_tier_counts_business_time_from_the_deadline(office: PolicyFile) -> None:
    """Escalating at 16:00 gives the next tier 2 business hours: due 10:00 the next day."""
    policy = office.policy("p3")
    assert policy is not None
    due = berlin(2026, 3, 10, 16, 0)
    decision = decide(
        ClockView(Lifecycle.OPEN, 1, 0),
        FiringDeadline(DeadlineKind.ESCALATE, 1, 0, due),
        policy,
        due,
    )
    assert isinstance(decision, Escalate)
    assert decision.next.due_at == berlin(2026, 3, 11, 10, 0)


def test_resolve_target_skips_easter(office: PolicyFile) -> None:
    """16 business hours from Thursday 2 April 2026 15:00 skip Good Friday to Easter Monday."""
    policy = office.policy("p3")
    assert policy is not None
    specs = plan(policy, berlin(2026, 4, 2, 15, 0), 0, Lifecycle.OPEN)
    resolve = next(s for s in specs if s.kind is DeadlineKind.RESOLVE)
    # Thu 15-17 (2h), Tue 7 Apr 09-17 (8h), Wed 8 Apr 09-15 (6h)
    assert resolve.due_at == berlin(2026, 4, 8, 15, 0)


def test_24x7_targets_are_plain_arithmetic(office: PolicyFile) -> None:
    """A P1 on the 24x7 calendar escalates an hour after opening, nights and weekends alike."""
    policy = office.policy("p1")
    assert policy is not None
    opened = datetime(2026, 3, 7, 23, 30, tzinfo=UTC)  # Saturday night
    assert ack_due(policy, opened, 0) == opened + timedelta(hours=1)


def test_packaged_policy_runs_p3_p4_on_business_hours_and_p1_p2_around_the_clock() -> None:
    """The default policy file: P1/P2 24x7, P3/P4 on its office calendar."""
    policies = load_policy(PACKAGED_POLICY)
    by_name = {p.name: p for p in policies.policies}
    assert (
        by_name["critical"].acknowledge.calendar == by_name["high"].acknowledge.calendar == "24x7"
    )
    for name in ("medium", "low"):
        assert by_name[name].acknowledge.calendar_spec is not None
        resolve = by_name[name].resolve
        assert resolve is not None and resolve.calendar_spec is not None


def test_an_unknown_calendar_name_is_an_error_with_its_place() -> None:
    """A target naming a calendar the file does not define is refused, naming the field."""
    with pytest.raises(
        ValueError, match=r"policies\.0\.acknowledge\.calendar\n  no calendar named 'x'"
    ):
        PolicyFile.model_validate(
            {
                "tiers": [{"name": "L1"}],
                "policies": [
                    {
                        "name": "p",
                        "acknowledge": {"calendar": "x", "ladder": [{"tier": "L1", "within": 60}]},
                    }
                ],
                "default": "p",
            }
        )
