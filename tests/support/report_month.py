"""The hand-worked SLA data set of docs/reports.md's tests: a policy, a scripted two and a half
days of events (pauses, business hours, a breach carried by an escalation, a reopened issue, an
issue still open at the end) and `fill`, which applies them through ingest with a manual clock.

tests/unit/test_reports_month.py works the figures out by hand; the console's Reports page
tests (tests/unit/gateway/test_console_reports.py) draw them.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from schemas.policy import PolicyFile
from tests.unit.factories import event_json
from worker.domain.clock import ManualClock
from worker.services.ingest import apply_batch
from worker.services.uow import Units

MON = datetime(2024, 3, 4, tzinfo=UTC)  # a Monday
SINCE, UNTIL = MON, MON + timedelta(days=2, hours=12)  # [Mon 00:00, Wed 12:00)
POLICY = PolicyFile.model_validate(
    {
        "channels": {"log": {"type": "log"}},
        "calendars": {
            "office": {
                "timezone": "UTC",
                "hours": {d: ["09:00-17:00"] for d in ("mon", "tue", "wed", "thu", "fri")},
            }
        },
        "tiers": [
            {"name": "L1", "assignee": "ann", "channels": ["log"]},
            {"name": "L2", "assignee": "bob", "channels": ["log"]},
        ],
        "policies": [
            {
                "name": "only",
                # acknowledge: 10 min on L1 (the target time), then L2 for 30 min; wall time
                "acknowledge": {"ladder": [{"tier": "L1", "within": "10m"},
                                           {"tier": "L2", "within": "30m"}]},
                # resolve: 4 business hours (Mon-Fri 09-17 UTC), paused while `waiting`
                "resolve": {"within": "4h", "calendar": "office", "pause_on": ["waiting"]},
            }
        ],
        "default": "only",
    }
)  # fmt: skip


def at(day: int, hour: int, minute: int = 0) -> datetime:
    return MON + timedelta(days=day, hours=hour, minutes=minute)


# (when, type, issue, severity, extra issue fields): each applied at its own time
SCRIPT: list[tuple[datetime, str, str, str, dict[str, Any]]] = [
    # A (P1, label db): acknowledged after 4 min; waiting 10:00-11:00; resolved 12:00
    (at(0, 9), "issue.opened", "A", "P1", {"labels": ["db"]}),
    (at(0, 9, 4), "issue.acknowledged", "A", "P1", {"labels": ["db"]}),
    (at(0, 10), "issue.status_changed", "A", "P1", {"labels": ["db"], "status": "waiting"}),
    (at(0, 11), "issue.status_changed", "A", "P1", {"labels": ["db"], "status": "open"}),
    (at(0, 12), "issue.resolved", "A", "P1", {"labels": ["db"]}),
    # B (P2): opened Mon 16:30; L1's 10 min pass (16:40: escalated to L2, breach carried),
    # acknowledged 16:50 (the escalation fires then, in catch-up: 10 min late); resolved Tue
    # 10:30, across the night
    (at(0, 16, 30), "issue.opened", "B", "P2", {}),
    (at(0, 16, 50), "issue.acknowledged", "B", "P2", {}),
    (at(1, 10, 30), "issue.resolved", "B", "P2", {}),
    # C (P1): a first cycle Tue 09:00-09:30, reopened 10:00, a second cycle to 11:00
    (at(1, 9), "issue.opened", "C", "P1", {}),
    (at(1, 9, 5), "issue.acknowledged", "C", "P1", {}),
    (at(1, 9, 30), "issue.resolved", "C", "P1", {}),
    (at(1, 10), "issue.reopened", "C", "P1", {}),
    (at(1, 10, 2), "issue.acknowledged", "C", "P1", {}),
    (at(1, 11), "issue.resolved", "C", "P1", {}),
    # D (P2): opened Wed 09:00, acknowledged after 1 min, still open at the end (Wed 12:00)
    (at(2, 9), "issue.opened", "D", "P2", {}),
    (at(2, 9, 1), "issue.acknowledged", "D", "P2", {}),
]


def fill(sessions: sessionmaker[Session]) -> sessionmaker[Session]:
    """The script applied one event per batch, the clock at each event's time."""
    clock = ManualClock(MON)
    for n, (when, kind, issue, severity, fields) in enumerate(SCRIPT):
        clock.set(when)
        line = event_json(kind, issue, when, severity, event_id=f"m-{n}", **fields)
        apply_batch(Units(sessions), [(f"{n + 1}-0", line)], POLICY, clock)
    return sessions
