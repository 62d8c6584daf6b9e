"""The documented policy examples, simulated: each timeline matches a case worked by hand.

The cases are the ones docs/policies.md walks through: weekends, a lunch break, Easter, a pause
spanning a night, and the spring and autumn daylight-saving weekends in Europe/Berlin and
America/New_York (2026: Europe changes on March 29 and October 25, the US on March 8 and
November 1).
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from config.settings import PACKAGED_POLICY
from schemas.events import EventType, Severity
from schemas.policy import PolicyFile
from worker.domain.simulate import PlannedEvent, Step, simulate
from worker.services.policy_loader import load_policy

EXAMPLES = Path(__file__).resolve().parents[2] / "docs" / "examples"
BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")


def local(
    zone: ZoneInfo, year: int, month: int, day: int, hour: int = 0, minute: int = 0
) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=zone)


@pytest.fixture(scope="module")
def desk() -> PolicyFile:
    """Berlin support desk: Mon-Thu 09-13 + 14-18, Fri 09-13 + 14-17, DE/BE holidays."""
    return load_policy(EXAMPLES / "support-desk.yaml")


@pytest.fixture(scope="module")
def us() -> PolicyFile:
    """New York office 08-17 on weekdays, US/NY holidays."""
    return load_policy(EXAMPLES / "us-support.yaml")


def fired(steps: list[Step], *kinds: str) -> list[tuple[str, datetime, str]]:
    return [(s.kind, s.at, s.tier) for s in steps if s.kind in kinds]


def test_friday_afternoon_p3_over_the_spring_dst_weekend_in_berlin(desk: PolicyFile) -> None:
    """Opened Fri 27 Mar 16:30 CET: 30 business minutes that day, the rest from Monday in CEST."""
    steps = simulate(desk, Severity.P3, local(BERLIN, 2026, 3, 27, 16, 30), reminders=1)
    assert fired(steps, "escalate", "warn", "breach", "remind") == [
        ("escalate", local(BERLIN, 2026, 3, 30, 9, 30), "L2"),  # L1's 1 h: 0.5 Fri + 0.5 Mon
        ("warn", local(BERLIN, 2026, 3, 30, 11, 30), "L2"),  # first response: 75% of 4 h
        ("breach", local(BERLIN, 2026, 3, 30, 12, 30), "L2"),  # first response: 4 h
        ("escalate", local(BERLIN, 2026, 3, 30, 14, 30), "L3"),  # L2's 4 h, over lunch
        ("warn", local(BERLIN, 2026, 3, 31, 12, 30), "L3"),  # resolve: 50% of 24 h
        ("remind", local(BERLIN, 2026, 3, 31, 14, 30), "L3"),  # L3's 8 h
        ("warn", local(BERLIN, 2026, 4, 1, 15, 6), "L3"),  # resolve: 90%
        ("breach", local(BERLIN, 2026, 4, 1, 17, 30), "L3"),  # resolve: 24 h
    ]
    assert local(BERLIN, 2026, 3, 30, 9, 30).astimezone(UTC).hour == 7  # CEST: UTC+2


def test_the_resolve_target_of_that_issue_and_its_late_warning(desk: PolicyFile) -> None:
    """Acknowledged and answered at once, it still warns at 90% (Wed 15:06) and breaches 17:30."""
    opened = local(BERLIN, 2026, 3, 27, 16, 30)
    answered = PlannedEvent(EventType.RESPONDED, local(BERLIN, 2026, 3, 27, 16, 35))
    steps = simulate(desk, Severity.P3, opened, [answered])
    assert fired(steps, "escalate", "warn", "breach", "remind") == [
        ("warn", local(BERLIN, 2026, 3, 31, 12, 30), "L1"),
        ("warn", local(BERLIN, 2026, 4, 1, 15, 6), "L1"),  # 21 h 36 min of business time
        ("breach", local(BERLIN, 2026, 4, 1, 17, 30), "L1"),
    ]


def test_easter_closes_good_friday_and_easter_monday(desk: PolicyFile) -> None:
    """Opened Thu 2 Apr 17:00: L1's hour ends at 18:00, L2's 4 h run on Tue 7 Apr 09-13."""
    steps = simulate(desk, Severity.P3, local(BERLIN, 2026, 4, 2, 17, 0), reminders=0)
    escalations = fired(steps, "escalate")
    assert escalations[:2] == [
        ("escalate", local(BERLIN, 2026, 4, 2, 18, 0), "L2"),
        ("escalate", local(BERLIN, 2026, 4, 7, 13, 0), "L3"),
    ]


def test_a_pause_spanning_a_night_moves_the_breach_by_the_paused_business_time(
    desk: PolicyFile,
) -> None:
    """Waiting on the customer Tue 16:00 to Wed 11:00 holds 4 business hours: Fri 10:00 → 15:00."""
    opened = local(BERLIN, 2026, 3, 3, 10, 0)
    answered = PlannedEvent(EventType.RESPONDED, local(BERLIN, 2026, 3, 3, 10, 5))
    unpaused = simulate(desk, Severity.P3, opened, [answered])
    assert fired(unpaused, "breach")[-1][1] == local(BERLIN, 2026, 3, 6, 10, 0)
    waiting = PlannedEvent(
        EventType.STATUS_CHANGED, local(BERLIN, 2026, 3, 3, 16, 0), status="pending_customer"
    )
    back = PlannedEvent(EventType.STATUS_CHANGED, local(BERLIN, 2026, 3, 4, 11, 0), status="open")
    paused = simulate(desk, Severity.P3, opened, [answered, waiting, back])
    assert fired(paused, "breach")[-1][1] == local(BERLIN, 2026, 3, 6, 15, 0)
    notes = [s.message for s in paused if s.kind == "clock"]
    assert notes == [
        "resolve clock paused (status 'pending_customer') with 19h left",
        "resolve clock resumed with 19h left",
    ]


def test_the_autumn_dst_weekend_in_berlin(desk: PolicyFile) -> None:
    """Opened Fri 23 Oct 16:30 CEST: L1's hour ends Mon 26 Oct 09:30 CET, 08:30 UTC."""
    steps = simulate(desk, Severity.P3, local(BERLIN, 2026, 10, 23, 16, 30), reminders=0)
    first = fired(steps, "escalate")[0]
    assert first == ("escalate", local(BERLIN, 2026, 10, 26, 9, 30), "L2")
    assert first[1].astimezone(UTC) == datetime(2026, 10, 26, 8, 30, tzinfo=UTC)


@pytest.mark.parametrize(
    ("opened", "due", "due_utc_hour"),
    [
        # spring: Fri 6 Mar 16:00 EST (21:00 UTC); Mon 9 Mar 09:00 EDT is 13:00 UTC
        (local(NEW_YORK, 2026, 3, 6, 16, 0), local(NEW_YORK, 2026, 3, 9, 9, 0), 13),
        # autumn: Fri 30 Oct 16:00 EDT (20:00 UTC); Mon 2 Nov 09:00 EST is 14:00 UTC
        (local(NEW_YORK, 2026, 10, 30, 16, 0), local(NEW_YORK, 2026, 11, 2, 9, 0), 14),
    ],
)
def test_the_dst_weekends_in_new_york(
    us: PolicyFile, opened: datetime, due: datetime, due_utc_hour: int
) -> None:
    """An agent's 2 business hours: one on Friday, one on Monday, in Monday's offset."""
    steps = simulate(us, Severity.P3, opened, reminders=0)
    first = fired(steps, "escalate")[0]
    assert first == ("escalate", due, "senior")
    assert first[1].astimezone(UTC).hour == due_utc_hour


def test_24x7_targets_run_nights_and_weekends(us: PolicyFile) -> None:
    """A P1 opened Saturday 23:50 escalates at 00:05 and warns at half its 8 h resolve time."""
    opened = local(NEW_YORK, 2026, 3, 7, 23, 50)
    steps = simulate(us, Severity.P1, opened, reminders=0)
    assert fired(steps, "escalate")[0] == ("escalate", local(NEW_YORK, 2026, 3, 8, 0, 5), "manager")
    # 23:50 EST + 4 h crosses 02:00, when clocks jump to 03:00 EDT: 04:50 local.
    assert fired(steps, "warn")[0][1] == local(NEW_YORK, 2026, 3, 8, 4, 50)


def test_packaged_policy_runs_p3_p4_on_business_hours_and_p1_p2_around_the_clock() -> None:
    """The default policy file: P1/P2 24x7, P3/P4 on its office calendar, warnings, pauses."""
    policies = load_policy(PACKAGED_POLICY)
    by_name = {p.name: p for p in policies.policies}
    for name in ("critical", "high"):
        assert all(t.calendar == "24x7" for _, t in by_name[name].targets())
    for name in ("medium", "low"):
        assert all(t.calendar_spec is not None for _, t in by_name[name].targets())
        resolve = by_name[name].resolve
        assert resolve is not None and resolve.warn_at and resolve.pauses("pending_customer")


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
