"""The backtest over a month of real history (worker/services/backtest.py).

A scripted month of events goes through the real services (`apply_batch`, and `fire_many` for
each deadline at its due time) under policy P; then the backtest of P finds no difference with
what happened, and the backtest of a tighter P' reports exactly the escalations worked out by
hand from the acknowledgement delays.

The month: one P2 issue a day (30), opened at 09:00-13:00 UTC, acknowledged after a delay that
cycles through 10, 20, 40, 25, 95 and 5 minutes, resolved 3 h after its open; plus issues that
snooze, change severity, are asked to escalate, are resolved and opened again, and one whose
acknowledgement arrived before its open.

P:  acknowledge ladder L1 30m, L2 1h, L3 2h (escalations at 30 min and 90 min).
P': acknowledge ladder L1 15m, L2 30m, L3 2h (escalations at 15 min and 45 min).
By hand, per cycle of six delays: under P the 40-minute issue escalates once (at 30 min) and the
95-minute one twice (30, 90); under P' the 20-, 25- and 40-minute issues once (15) and the
95-minute one twice (15, 45). So P' escalates the 20- and 25-minute issues once more (10 issues
over the month), the others as often (the 40- and 95-minute ones earlier).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from schemas.policy import PolicyFile
from tests.unit.factories import event_dict
from worker.domain.clock import ManualClock
from worker.domain.states import DeadlineState
from worker.services.backtest import backtest
from worker.services.fire import fire_many
from worker.services.ingest import apply_batch
from worker.services.uow import Units
from worker.store.db import make_engine, session_factory
from worker.store.models import Deadline, ProcessedEvent

pytestmark = pytest.mark.integration

MONTH = datetime(2026, 11, 2, tzinfo=UTC)  # a Monday
DELAYS = (10, 20, 40, 25, 95, 5)  # minutes to the acknowledgement, issue by issue


def policy(l1: str, l2: str) -> PolicyFile:
    """One policy: an acknowledge ladder L1, L2, L3 (2h) warned at half of L1, resolve in 4h;
    L1 is a daily rotation in Europe/Berlin, L2 and L3 fixed people; L2 and L3 page `pager`."""
    ladder = [{"tier": "L1", "within": l1}, {"tier": "L2", "within": l2}]
    return PolicyFile.model_validate(
        {
            "channels": {"log": {"type": "log"}, "pager": {"type": "log"}},
            "rosters": {
                "first": {
                    "members": ["alice", "bob", "chen"],
                    "shift": "1d",
                    "handoff": "08:00",
                    "timezone": "Europe/Berlin",
                    "start": "2026-10-26",
                }
            },
            "tiers": [
                {"name": "L1", "roster": "first", "channels": ["log"]},
                {"name": "L2", "assignee": "dana", "channels": ["log", "pager"]},
                {"name": "L3", "assignee": "eve", "channels": {"default": ["pager"]}},
            ],
            "default": "only",
            "policies": [
                {
                    "name": "only",
                    "acknowledge": {
                        "ladder": [*ladder, {"tier": "L3", "within": "2h"}],
                        "warn_at": [0.5],
                    },
                    "resolve": {"within": "4h"},
                }
            ],
        }
    )


P = policy("30m", "1h")
TIGHTER = policy("15m", "30m")


def month() -> list[tuple[datetime, str]]:
    """The month's events, (time, raw JSON), in order of time."""
    events: list[tuple[datetime, str]] = []

    def add(
        at: datetime, kind: str, issue: str, severity: str = "P2", snooze_until: str = ""
    ) -> None:
        body = event_dict(kind, issue_id=issue, at=at, severity=severity)
        if snooze_until:
            body["snooze_until"] = snooze_until
        events.append((at, json.dumps(body)))

    for day in range(30):
        opened = MONTH + timedelta(days=day, hours=9 + day % 5)
        issue = f"D-{day + 1}"
        add(opened, "issue.opened", issue)
        add(opened + timedelta(minutes=DELAYS[day % 6]), "issue.acknowledged", issue)
        add(opened + timedelta(hours=3), "issue.resolved", issue)
    extra = MONTH + timedelta(days=3, hours=15)
    add(extra, "issue.opened", "SNOOZE")  # snoozed for 40 min after 10, acked at 60
    add(extra + timedelta(minutes=10), "issue.snoozed", "SNOOZE", snooze_until=_iso(extra, 50))
    add(extra + timedelta(minutes=60), "issue.acknowledged", "SNOOZE")
    add(extra + timedelta(hours=5), "issue.resolved", "SNOOZE")
    again = MONTH + timedelta(days=8, hours=22)  # at night, resolved, opened again
    add(again, "issue.opened", "AGAIN")
    add(again + timedelta(minutes=35), "issue.resolved", "AGAIN")
    add(again + timedelta(hours=2), "issue.reopened", "AGAIN")
    add(again + timedelta(hours=4), "issue.acknowledged", "AGAIN")
    asked = MONTH + timedelta(days=12, hours=14)  # someone asks; then its severity changes
    add(asked, "issue.opened", "ASKED")
    add(asked + timedelta(minutes=5), "issue.escalation_requested", "ASKED")
    add(asked + timedelta(minutes=20), "issue.updated", "ASKED", severity="P1")
    add(asked + timedelta(minutes=70), "issue.acknowledged", "ASKED")
    early = MONTH + timedelta(days=20, hours=11)  # its acknowledgement came first
    add(early - timedelta(seconds=30), "issue.acknowledged", "EARLY")
    add(early, "issue.opened", "EARLY")
    return sorted(events, key=lambda e: e[0])


def _iso(at: datetime, minutes: int) -> str:
    return (at + timedelta(minutes=minutes)).isoformat()


def fire_due(
    units: Units, sessions: sessionmaker[Session], clock: ManualClock, until: datetime
) -> None:
    """Fire every armed deadline due by `until`, each at its due time, as a punctual scheduler."""
    while True:
        with sessions() as s:
            first = s.execute(
                select(Deadline.id, Deadline.due_at)
                .where(Deadline.state == DeadlineState.ARMED, Deadline.due_at <= until)
                .order_by(Deadline.due_at, Deadline.id)
                .limit(1)
            ).first()
        if first is None:
            return
        clock.set(max(clock.now(), first.due_at))
        fire_many(units, P, clock, [first.id])


@pytest.fixture
def sessions(database_url: str) -> Iterator[sessionmaker[Session]]:
    engine = make_engine(database_url)
    yield session_factory(engine)
    engine.dispose()


@pytest.fixture
def lived(sessions: sessionmaker[Session]) -> sessionmaker[Session]:
    """The month, lived through the real services under P."""
    live(sessions)
    return sessions


def live(sessions: sessionmaker[Session]) -> None:
    """The month, lived through the real services under P: events as they come (the early
    acknowledgement in the same batch as its open), deadlines fired when due."""
    units = Units(sessions)
    clock = ManualClock(MONTH)
    events = month()
    n = 0
    while n < len(events):
        at, raw = events[n]
        batch: list[tuple[str, str | bytes | None]] = [(f"{n + 1}-0", raw)]
        if n + 1 < len(events) and events[n + 1][0] - at < timedelta(minutes=1):
            n += 1
            batch.append((f"{n + 1}-0", events[n][1]))
        fire_due(units, sessions, clock, at)
        clock.set(max(clock.now(), events[n][0]))
        results = apply_batch(units, batch, P, clock).results
        assert all(r.outcome in ("applied", "ignored", "parked") for r in results), results
        n += 1
    fire_due(units, sessions, clock, MONTH + timedelta(days=31))


def test_every_processed_event_keeps_its_contents(lived: sessionmaker[Session]) -> None:
    """Each processed event's row has its packed contents."""
    with lived() as s:
        bodies = list(s.scalars(select(ProcessedEvent.body)))
    assert len(bodies) == 30 * 3 + 4 + 4 + 4 + 2 and all(bodies)


def test_the_same_policy_reproduces_what_happened(lived: sessionmaker[Session]) -> None:
    """The backtest of the policy in force finds 0 differences, every issue replayed, and
    counts the escalations worked out by hand."""
    report = backtest(lived, P, MONTH, MONTH + timedelta(days=31), top=5)
    assert report.skipped == {}
    assert report.real.issues == report.replayed.issues == 34
    assert report.differences == 0 and report.changed_issues == 0 and report.top == []
    assert report.real == report.replayed
    # the month's issues: 40 min -> L2; 95 min -> L2, L3 (5 of each); AGAIN: L2 before its
    # resolve, then L2, L3 after its reopen; ASKED (moved to L2 by hand), SNOOZE, EARLY: none
    assert report.real.escalations_by_tier == {"L2": 12, "L3": 6}
    assert report.real.pages["dana"] == 13 and report.real.pages["eve"] == 6


def test_a_tighter_policy_escalates_the_predicted_issues_once_more(
    lived: sessionmaker[Session],
) -> None:
    """Under P' exactly the 20- and 25-minute issues, SNOOZE and ASKED escalate once more;
    the others as often (the 40- and 95-minute ones and AGAIN earlier)."""
    report = backtest(lived, TIGHTER, MONTH, MONTH + timedelta(days=31), top=40)
    assert report.skipped == {}
    once_more = {f"jira:D-{day + 1}" for day in range(30) if DELAYS[day % 6] in (20, 25)}
    # SNOOZE: 10 min counted, snoozed 40, L1's 15 min run out at 55 < 60 (its ack);
    # ASKED: moved to L2 at 5 min, re-planned at 20 (P1) onto L2 ending at 45 < 70 -> L3
    once_more |= {"jira:SNOOZE", "jira:ASKED"}
    assert len(once_more) == 12
    more = {c.key: len(c.replayed.escalations) - len(c.real.escalations) for c in report.top}
    assert {key for key, extra in more.items() if extra} == once_more
    assert set(more.values()) == {0, 1}
    assert report.replayed.escalations_by_tier == {"L2": 23, "L3": 7}
    earlier = {f"jira:D-{day + 1}" for day in range(30) if DELAYS[day % 6] in (40, 95)}
    assert earlier | {"jira:AGAIN"} <= {key for key, extra in more.items() if not extra}
