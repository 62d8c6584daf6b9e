"""The pure replay of a backtest (worker/domain/backtest.py, backtest_compare.py) and the
recorded events' contents (worker/store/event_bodies.py): packed and unpacked unchanged, pruned
after the retention by the scheduler's housekeeping with the dedup record kept; deadlines fire
when due, before a later event; counts and differences as documented."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from schemas.events import IssueEvent
from schemas.policy import PolicyFile
from worker.bootstrap import Container
from worker.domain.backtest import Course, Mark, Notice, replay
from worker.domain.backtest_compare import compare, differences
from worker.domain.clock import ManualClock
from worker.roles.scheduler import Scheduler
from worker.services.ingest import apply_batch
from worker.services.uow import Units
from worker.store.event_bodies import pack, prune, unpack
from worker.store.models import ProcessedEvent

from .factories import T0, event, event_json, ladder_policies, minutes

POLICY = ladder_policies(channels=("chat",))  # L1 5m, L2 10m, L3 15m, reminders every 15m


def _escalations(course: Course) -> list[tuple[int, str]]:
    return [(int((m.at - T0).total_seconds() // 60), m.tier) for m in course.escalations]


def test_an_event_packs_and_unpacks_unchanged() -> None:
    """Everything but the row's columns goes in the body, and comes back equal."""
    original = IssueEvent.model_validate(
        {
            "event_id": "e-1",
            "type": "issue.snoozed",
            "occurred_at": T0.isoformat(),
            "source": "jira",
            "actor": "Ann",
            "snooze_until": (T0 + minutes(30)).isoformat(),
            "issue": {"id": "OPS-1", "severity": "P2", "labels": ["db"], "status": "waiting"},
        }
    )
    body = pack(original)
    assert b"OPS-1" not in body  # compressed
    assert unpack("e-1", "issue.snoozed", T0, body) == original


def test_deadlines_fire_when_due_before_a_later_event() -> None:
    """Opened at T0, acknowledged at 20 min: L2 at 5 min, L3 at 15 min, nothing after."""
    events = [event(at=T0), event("issue.acknowledged", at=T0 + minutes(20))]
    course = replay(POLICY, "jira:OPS-1", events, T0 + minutes(120))
    assert _escalations(course) == [(5, "L2"), (15, "L3")]
    assert [m.target for m in course.breaches] == ["acknowledge"]  # L1's end is the target
    kinds = [(n.kind, n.tier) for n in course.notices]
    assert kinds == [("assigned", "L1"), ("escalated", "L2"), ("escalated", "L3")]
    assert {n.person for n in course.notices} == {"l1-oncall", "l2-oncall", "l3-oncall"}


def test_a_deadline_due_at_an_events_time_fires_first() -> None:
    """An acknowledgement at exactly 5 min comes after the escalation due then, as ingest's
    catch-up applies it."""
    events = [event(at=T0), event("issue.acknowledged", at=T0 + minutes(5))]
    course = replay(POLICY, "jira:OPS-1", events, T0 + minutes(60))
    assert _escalations(course) == [(5, "L2")]


def test_what_falls_due_after_until_does_not_fire() -> None:
    """A period ending at 12 min: one escalation; reminders of the last tier only until then."""
    course = replay(POLICY, "jira:OPS-1", [event(at=T0)], T0 + minutes(12))
    assert _escalations(course) == [(5, "L2")]
    longer = replay(POLICY, "jira:OPS-1", [event(at=T0)], T0 + minutes(61))
    reminders = [n for n in longer.notices if n.kind == "reminder"]
    assert _escalations(longer) == [(5, "L2"), (15, "L3")] and len(reminders) == 3  # 30, 45, 60


def test_an_issue_without_its_open_is_skipped() -> None:
    """History that starts after the open (pruned) cannot be replayed: the reason is given."""
    course = replay(POLICY, "jira:OPS-1", [event("issue.acknowledged", at=T0)], T0 + minutes(9))
    assert course.skipped and "before issue.opened" in course.skipped


def test_the_comparison_counts_differences_and_keeps_the_top_issues() -> None:
    """Differences are what one side has and the other not; the top N are those with most."""
    at = T0 + minutes(5)
    same = Course("a", [Mark(at, "acknowledge", "L2")])
    more = Course("b", [Mark(at, "acknowledge", "L2"), Mark(at, "acknowledge", "L3")])
    page = Notice(at, "escalated", "acknowledge", "L2", ("chat",), "l2-oncall")
    paged = Course("c", notices=[page])
    assert differences(same, same) == 0 and differences(same, more) == 1
    pairs = [(same, same), (Course("b"), more), (Course("c"), paged)]
    report = compare(POLICY, pairs, T0, T0 + minutes(60), top=1)
    assert report.differences == 3 and report.changed_issues == 2
    assert [c.key for c in report.top] == ["b"]
    assert report.replayed.escalations_by_tier == {"L2": 2, "L3": 1}
    assert report.replayed.pages == {"l2-oncall": 1}
    assert report.replayed.pages_by_week == {("l2-oncall", "2024-W10"): 1}


def test_night_and_weekend_pages_count_on_the_local_clock() -> None:
    """A page at 23:00 UTC on a Saturday is a night and weekend page in UTC; in Tokyo it is
    Sunday 08:00: a weekend page, not a night one."""
    saturday = datetime(2024, 3, 9, 23, 0, tzinfo=UTC)
    course = Course("a", notices=[Notice(saturday, "assigned", None, "L1", ("chat",), "ann")])
    pairs = [(course, course)]
    utc = compare(POLICY, pairs, saturday - timedelta(days=1), saturday + timedelta(days=1))
    assert utc.real.night_pages == {"ann": 1} and utc.real.weekend_pages == {"ann": 1}
    tokyo = compare(
        POLICY, pairs, saturday - timedelta(days=1), saturday + timedelta(days=1), "Asia/Tokyo"
    )
    assert tokyo.real.night_pages == {} and tokyo.real.weekend_pages == {"ann": 1}


def test_prune_drops_old_contents_and_keeps_the_dedup_record(
    sessions: sessionmaker[Session], policies: PolicyFile
) -> None:
    """Bodies of events before the cut-off go; every row stays, so a redelivery is still a
    duplicate."""
    lines: list[tuple[str, str | bytes | None]] = [
        ("1-0", event_json(issue_id="OLD", at=T0, event_id="old")),
        ("2-0", event_json(issue_id="NEW", at=T0 + timedelta(days=10), event_id="new")),
    ]
    apply_batch(Units(sessions), lines, policies, ManualClock(T0 + timedelta(days=10)))
    with sessions.begin() as session:
        assert prune(session, T0 + timedelta(days=5)) == 1
        assert prune(session, T0 + timedelta(days=5)) == 0
    with sessions() as session:
        rows = dict(session.execute(select(ProcessedEvent.event_id, ProcessedEvent.body)).all())
    assert set(rows) == {"old", "new"} and rows["old"] is None and rows["new"]


def test_the_scheduler_prunes_contents_past_the_retention(
    container: Container, clock: ManualClock, sessions: sessionmaker[Session]
) -> None:
    """The housekeeping drops the contents of events older than event_retention_days, once
    per event_prune_every_s."""
    lines: list[tuple[str, str | bytes | None]] = [("1-0", event_json(at=T0, event_id="e"))]
    apply_batch(container.units, lines, container.policies, clock)
    settings = container.settings.model_copy(
        update={"event_retention_days": 2.0, "event_prune_every_s": 3600.0}
    )
    scheduler = Scheduler(replace(container, settings=settings))
    clock.set(T0 + timedelta(days=1))
    scheduler.prune_when_due()
    clock.set(T0 + timedelta(days=3))
    scheduler.prune_when_due()  # not due again for an hour

    def body() -> bytes | None:
        with sessions() as session:
            found: bytes | None = session.scalar(select(ProcessedEvent.body))
            return found

    assert body()
    scheduler._next_prune = 0.0  # an hour later
    scheduler.prune_when_due()
    assert body() is None
