"""History is time-ordered: deadlines due before an event are applied before it, whatever the
processing order, and events that come before their issue's open wait for it (parked)."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from schemas.events import IssueEvent
from schemas.policy import PolicyFile
from worker.domain.clock import ManualClock
from worker.services.fire import fire
from worker.services.ingest import Outcome, apply_batch
from worker.services.parking import expired, settle
from worker.services.uow import Units
from worker.store.models import Deadline, Issue, OutboxMessage, ParkedEvent, TimelineEntry

from .factories import T0, event_json

_n = iter(range(1, 100_000))


def m(minutes: float) -> timedelta:
    return timedelta(minutes=minutes)


def apply(
    sessions: sessionmaker[Session],
    clock: ManualClock,
    policies: PolicyFile,
    *lines: str,
) -> dict[str, Outcome]:
    """Apply stream entries as one batch; outcome by event id."""
    batch = apply_batch(
        Units(sessions), [(f"{next(_n)}-0", line) for line in lines], policies, clock
    )
    return {r.event_id or r.stream_id: r.outcome for r in batch.results}


def timeline(sessions: sessionmaker[Session], issue: str = "OPS-1") -> list[tuple[datetime, str]]:
    """(at, kind) of the issue's escalations, events and breaches, in order of time."""
    with sessions() as s:
        rows = s.scalars(
            select(TimelineEntry)
            .join(Issue)
            .where(Issue.external_id == issue, TimelineEntry.kind.in_(("escalate", "event")))
            .order_by(TimelineEntry.at, TimelineEntry.id)
        ).all()
        return [(r.at, r.kind) for r in rows]


def park_directly(sessions: sessionmaker[Session], line: str) -> None:
    """Park an event as a racing consumer would have (it did not know the issue yet)."""
    event = IssueEvent.model_validate_json(line)
    with sessions() as s, s.begin():
        s.add(
            ParkedEvent(
                event_id=event.event_id,
                source=event.source,
                external_id=event.issue.id,
                occurred_at=event.occurred_at,
                stream_id="9-0",
                body=line,
                parked_at=event.occurred_at,
            )
        )


def issue_row(sessions: sessionmaker[Session], issue: str = "OPS-1") -> Issue:
    with sessions() as s:
        return s.scalars(select(Issue).where(Issue.external_id == issue)).one()


def test_an_ack_processed_late_finds_the_overdue_escalation_applied(
    sessions: sessionmaker[Session], clock: ManualClock, policies: PolicyFile
) -> None:
    """P1: L1 holds 5 min. Acknowledged at 7 min but processed at 9 min, before any scheduler
    fired: the issue is escalated to L2 at 5 min, then acknowledged; L2 is told."""
    apply(sessions, clock, policies, event_json("issue.opened", at=T0))
    clock.set(T0 + m(9))
    outcomes = apply(sessions, clock, policies, event_json("issue.acknowledged", at=T0 + m(7)))
    assert list(outcomes.values()) == [Outcome.APPLIED]
    issue = issue_row(sessions)
    assert (issue.tier, issue.lifecycle) == ("L2", "acknowledged")
    assert timeline(sessions) == [
        (T0, "event"),
        (T0 + m(5), "escalate"),
        (T0 + m(7), "event"),
    ]
    with sessions() as s:
        fired = s.scalars(select(Deadline).where(Deadline.state == "fired")).all()
        assert [(d.kind, d.due_at) for d in fired] == [("escalate", T0 + m(5))]
        sent = s.scalars(
            select(OutboxMessage).where(
                OutboxMessage.kind == "escalated", OutboxMessage.state == "pending"
            )
        ).all()
        assert [m.payload["tier"] for m in sent] == ["L2"]  # the tier holding it is told


def test_the_same_events_give_the_same_history_at_once_or_late(
    sessions: sessionmaker[Session], clock: ManualClock, policies: PolicyFile, tmp_path: object
) -> None:
    """Open at 0, ack at 17 min: fired punctually by the scheduler, or found overdue when the
    ack is processed an hour later, the escalations (L2 at 5, L3 at 15) and tiers are the same."""
    apply(sessions, clock, policies, event_json("issue.opened", issue_id="A", at=T0))
    apply(sessions, clock, policies, event_json("issue.opened", issue_id="B", at=T0))
    for due in (T0 + m(5), T0 + m(15)):  # A: punctual firings
        clock.set(due)
        with sessions() as s:
            [d] = s.scalars(
                select(Deadline)
                .join(Issue)
                .where(Issue.external_id == "A", Deadline.kind == "escalate")
                .where(Deadline.state == "armed")
            ).all()
        assert fire(Units(sessions), policies, clock, d.id).fired
    clock.set(T0 + m(17))
    apply(sessions, clock, policies, event_json("issue.acknowledged", issue_id="A", at=clock.now()))
    clock.set(T0 + m(77))  # B: nothing fired; the ack comes an hour late
    apply(sessions, clock, policies, event_json("issue.acknowledged", issue_id="B", at=T0 + m(17)))
    assert timeline(sessions, "A") == timeline(sessions, "B")
    assert [k for _, k in timeline(sessions, "B")].count("escalate") == 2
    assert issue_row(sessions, "A").tier == issue_row(sessions, "B").tier == "L3"


def test_a_firing_after_the_catch_up_is_a_no_op(
    sessions: sessionmaker[Session], clock: ManualClock, policies: PolicyFile
) -> None:
    """The scheduler's task for a deadline the ack's catch-up already fired changes nothing."""
    apply(sessions, clock, policies, event_json("issue.opened", at=T0))
    with sessions() as s:
        [due] = s.scalars(select(Deadline.id).where(Deadline.kind == "escalate")).all()
    clock.set(T0 + m(9))
    apply(sessions, clock, policies, event_json("issue.acknowledged", at=T0 + m(7)))
    result = fire(Units(sessions), policies, clock, due)
    assert not result.fired and "already fired" in result.note
    assert [k for _, k in timeline(sessions)].count("escalate") == 1


def test_a_future_stamped_event_fires_nothing_before_its_time(
    sessions: sessionmaker[Session], clock: ManualClock, policies: PolicyFile
) -> None:
    """An update stamped 2 min ahead (clock skew) at 4 min does not fire the 5-min deadline."""
    apply(sessions, clock, policies, event_json("issue.opened", at=T0))
    clock.set(T0 + m(4))
    apply(sessions, clock, policies, event_json("issue.updated", at=T0 + m(6)))
    assert issue_row(sessions).tier == "L1"
    assert "escalate" not in [k for _, k in timeline(sessions)]


def test_an_ack_before_its_open_in_the_same_batch_opens_the_issue_acknowledged(
    sessions: sessionmaker[Session], clock: ManualClock, policies: PolicyFile
) -> None:
    """Stamped a second before the open (the source sent them so), the ack waits for it."""
    clock.set(T0 + m(1))
    outcomes = apply(
        sessions,
        clock,
        policies,
        event_json("issue.acknowledged", at=T0 - timedelta(seconds=1), event_id="ack"),
        event_json("issue.opened", at=T0, event_id="open"),
    )
    assert outcomes == {"ack": Outcome.PARKED, "open": Outcome.APPLIED}
    issue = issue_row(sessions)
    assert issue.lifecycle == "acknowledged"
    with sessions() as s:
        assert s.scalars(select(ParkedEvent)).all() == []
        armed = s.scalars(
            select(Deadline).where(Deadline.state == "armed", Deadline.target == "acknowledge")
        ).all()
        assert armed == []  # no acknowledge escalation is left to fire


def test_an_ack_parked_in_an_earlier_batch_is_applied_when_the_open_arrives(
    sessions: sessionmaker[Session], clock: ManualClock, policies: PolicyFile
) -> None:
    """The ack comes first, alone: parked durably; the open a minute later applies it after."""
    clock.set(T0 + m(2))
    first = apply(sessions, clock, policies, event_json("issue.acknowledged", at=T0 + m(1)))
    assert list(first.values()) == [Outcome.PARKED]
    again = apply(sessions, clock, policies, event_json("issue.acknowledged", at=T0 + m(1)))
    assert list(again.values()) == [Outcome.PARKED]  # a second ack, another id: parked too
    clock.set(T0 + m(3))
    apply(sessions, clock, policies, event_json("issue.opened", at=T0))
    issue = issue_row(sessions)
    assert issue.lifecycle == "acknowledged" and issue.tier == "L1"
    assert timeline(sessions) == [(T0, "event"), (T0 + m(1), "event")]  # the second: ignored


def test_a_redelivered_parked_event_is_a_duplicate(
    sessions: sessionmaker[Session], clock: ManualClock, policies: PolicyFile
) -> None:
    """The same parked event id delivered twice is parked once."""
    line = event_json("issue.acknowledged", at=T0, event_id="ack-1")
    assert apply(sessions, clock, policies, line) == {"ack-1": Outcome.PARKED}
    assert apply(sessions, clock, policies, line) == {"ack-1": Outcome.DUPLICATE}
    with sessions() as s:
        assert len(s.scalars(select(ParkedEvent)).all()) == 1


def test_settle_applies_a_parked_event_whose_open_another_consumer_committed(
    sessions: sessionmaker[Session], clock: ManualClock, policies: PolicyFile
) -> None:
    """The race: an ack parked although its issue exists (its open committed meanwhile by
    another consumer) is applied by `settle`."""
    apply(sessions, clock, policies, event_json("issue.opened", at=T0))
    park_directly(sessions, event_json("issue.acknowledged", at=T0 + m(1), event_id="late-ack"))
    settled = settle(Units(sessions), policies, clock, [("jira", "OPS-1")])
    assert settled.issues == 1
    assert issue_row(sessions).lifecycle == "acknowledged"
    with sessions() as s:
        assert s.scalars(select(ParkedEvent)).all() == []


def test_an_event_whose_issue_never_opens_expires_with_its_reason(
    sessions: sessionmaker[Session], clock: ManualClock, policies: PolicyFile
) -> None:
    """After the window, a parked event is handed out for the dead-letter stream, named."""
    apply(sessions, clock, policies, event_json("issue.resolved", issue_id="GHOST-1", at=T0))
    assert expired(sessions, clock, 600) == []
    clock.set(T0 + m(11))
    [late] = expired(sessions, clock, 600)
    assert "jira:GHOST-1 was never opened" in late.reason and "10 min" in late.reason
    assert '"issue.resolved"' in late.body


def test_a_parked_event_is_applied_in_order_with_the_batch_around_its_open(
    sessions: sessionmaker[Session], clock: ManualClock, policies: PolicyFile
) -> None:
    """An update parked at 9 min; then the open (0) and the ack (3 min) in one batch: the ack
    comes before the 5-min deadline, so the later update fires nothing, and L2 is never paged."""
    clock.set(T0 + m(9))
    apply(sessions, clock, policies, event_json("issue.updated", at=T0 + m(9)))
    clock.set(T0 + m(10))
    apply(
        sessions,
        clock,
        policies,
        event_json("issue.opened", at=T0),
        event_json("issue.acknowledged", at=T0 + m(3)),
    )
    issue = issue_row(sessions)
    assert (issue.tier, issue.lifecycle) == ("L1", "acknowledged")
    assert timeline(sessions) == [(T0, "event"), (T0 + m(3), "event"), (T0 + m(9), "event")]
    with sessions() as s:
        kinds = s.scalars(select(OutboxMessage.kind)).all()
        assert "escalated" not in kinds
        assert s.scalars(select(ParkedEvent)).all() == []


def test_settle_drops_a_parked_event_that_was_applied_meanwhile(
    sessions: sessionmaker[Session], clock: ManualClock, policies: PolicyFile
) -> None:
    """The race's other end: a copy of the parked ack was applied directly (its issue was known
    to that consumer); settle sees its id processed and drops the parked row, once."""
    apply(sessions, clock, policies, event_json("issue.opened", at=T0))
    line = event_json("issue.acknowledged", at=T0 + m(1), event_id="ack-1")
    apply(sessions, clock, policies, line)  # applied directly: processed
    park_directly(sessions, line)  # and parked by a consumer that did not know the issue
    settle(Units(sessions), policies, clock, [("jira", "OPS-1")])
    settle(Units(sessions), policies, clock)
    with sessions() as s:
        assert s.scalars(select(ParkedEvent)).all() == []
    assert [k for _, k in timeline(sessions)] == ["event", "event"]
