"""Applying batches of events to a real SQLite file (worker/services/ingest.py)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import fakeredis
import pytest
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session, sessionmaker

from schemas.policy import PolicyFile
from worker.broker.deadline_index import DeadlineIndex
from worker.domain.clock import ManualClock
from worker.services.ingest import Outcome, apply_batch
from worker.services.uow import Units
from worker.store.models import Deadline, Issue, OutboxMessage, ProcessedEvent, TimelineEntry
from worker.store.policy_versions import version_of

from .factories import T0, event_json, ladder_policies, minutes

TABLES = (Issue, Deadline, OutboxMessage, ProcessedEvent, TimelineEntry)


def counts(sessions: sessionmaker[Session]) -> dict[str, int]:
    """Rows per table."""
    with sessions() as session:
        return {
            model.__tablename__: session.scalar(select(func.count()).select_from(model)) or 0
            for model in TABLES
        }


def test_opened_creates_issue_deadlines_and_one_outbox_row_per_channel(
    sessions: sessionmaker[Session], clock: ManualClock
) -> None:
    """issue.opened writes the issue at L1, its two deadlines and an outbox row per L1 channel."""
    policies = ladder_policies(channels=("log", "chat"))
    batch = apply_batch(
        Units(sessions), [("1-0", event_json(at=T0, issue_id="OPS-7"))], policies, clock
    )
    assert [(r.outcome, r.issue_key) for r in batch.results] == [(Outcome.APPLIED, "jira:OPS-7")]
    with sessions() as session:
        issue = session.scalars(select(Issue)).one()
        assert (issue.key, issue.tier, issue.assignee, issue.lifecycle) == (
            "jira:OPS-7",
            "L1",
            "l1-oncall",
            "open",
        )
        deadlines = session.scalars(select(Deadline).order_by(Deadline.id)).all()
        assert [(d.kind, d.due_at, d.state, d.clock_version) for d in deadlines] == [
            ("escalate", T0 + minutes(5), "armed", 1),
            ("breach", T0 + timedelta(hours=4), "armed", 1),
        ]
        outbox = session.scalars(select(OutboxMessage)).all()
        assert sorted(m.channel for m in outbox) == ["chat", "log"]
        assert {m.kind for m in outbox} == {"assigned"}
        assert sorted(batch.effects.outbox) == sorted(m.id for m in outbox)
    assert batch.effects.arm == [(d.id, d.due_at) for d in deadlines]
    assert batch.effects.disarm == []


def test_duplicate_event_id_is_a_recorded_no_op(
    sessions: sessionmaker[Session], clock: ManualClock, policies: PolicyFile
) -> None:
    """A repeated event_id yields DUPLICATE, writes no rows, and only re-indexes what is armed."""
    raw = event_json(event_id="evt-dup", at=T0)
    first = apply_batch(Units(sessions), [("1-0", raw)], policies, clock)
    assert first.results[0].outcome is Outcome.APPLIED
    before = counts(sessions)
    again = apply_batch(Units(sessions), [("2-0", raw), ("3-0", raw)], policies, clock)
    assert [r.outcome for r in again.results] == [Outcome.DUPLICATE, Outcome.DUPLICATE]
    assert again.effects.outbox == [] and again.effects.disarm == []
    assert set(again.effects.arm) == set(first.effects.arm)  # re-indexing is idempotent
    assert counts(sessions) == before


def test_duplicate_within_one_batch_applies_once(
    sessions: sessionmaker[Session], clock: ManualClock, policies: PolicyFile
) -> None:
    """The same event twice in one batch is applied once and reported once as duplicate."""
    raw = event_json(event_id="evt-twice", at=T0)
    batch = apply_batch(Units(sessions), [("1-0", raw), ("1-1", raw)], policies, clock)
    assert sorted(r.outcome for r in batch.results) == [Outcome.APPLIED, Outcome.DUPLICATE]
    assert counts(sessions)["outbox"] == 1


def test_events_in_a_batch_are_applied_in_occurrence_order(
    sessions: sessionmaker[Session], clock: ManualClock, policies: PolicyFile
) -> None:
    """An ack read before its open, in the same batch, is applied after it (not dead)."""
    entries: list[tuple[str, str | bytes | None]] = [
        ("1-0", event_json("issue.acknowledged", at=T0 + minutes(2), event_id="ack")),
        ("1-1", event_json("issue.opened", at=T0, event_id="open")),
    ]
    batch = apply_batch(Units(sessions), entries, policies, clock)
    assert [(r.event_id, r.outcome) for r in batch.results] == [
        ("open", Outcome.APPLIED),
        ("ack", Outcome.APPLIED),
    ]
    with sessions() as session:
        assert session.scalars(select(Issue.lifecycle)).one() == "acknowledged"
        states = {
            kind: state for kind, state in session.execute(select(Deadline.kind, Deadline.state))
        }
    assert states == {"escalate": "cancelled", "warn": "armed", "breach": "armed"}


def test_acknowledge_in_a_later_batch_disarms_the_escalation(
    sessions: sessionmaker[Session], clock: ManualClock, policies: PolicyFile
) -> None:
    """The ack's effects tell the index to drop the cancelled escalate deadline only."""
    opened = apply_batch(Units(sessions), [("1-0", event_json(at=T0))], policies, clock)
    escalate_id = opened.effects.arm[0][0]
    acked = apply_batch(
        Units(sessions),
        [("2-0", event_json("issue.acknowledged", at=T0 + minutes(1)))],
        policies,
        clock,
    )
    assert acked.results[0].outcome is Outcome.APPLIED
    assert acked.effects.disarm == [escalate_id]
    assert acked.effects.arm == [] and acked.effects.outbox == []


def test_ignored_event_is_recorded(
    sessions: sessionmaker[Session], clock: ManualClock, policies: PolicyFile
) -> None:
    """An out-of-date event is IGNORED, kept as processed and noted on the timeline."""
    apply_batch(Units(sessions), [("1-0", event_json(at=T0 + minutes(5)))], policies, clock)
    late = apply_batch(
        Units(sessions),
        [("2-0", event_json("issue.updated", at=T0, event_id="old"))],
        policies,
        clock,
    )
    assert late.results[0].outcome is Outcome.IGNORED
    with sessions() as session:
        assert session.get_one(ProcessedEvent, "old").outcome == "ignored"
        kinds = session.scalars(select(TimelineEntry.kind).order_by(TimelineEntry.id)).all()
    assert kinds == ["event", "ignored"]


def test_severity_raise_makes_a_past_deadline_due_at_once(
    sessions: sessionmaker[Session],
    clock: ManualClock,
    policies: PolicyFile,
    redis: fakeredis.FakeRedis,
) -> None:
    """P3 → P1 after 20 minutes re-arms L1's 5-minute deadline, already past: it is due at the
    upgrade (an effect never comes before its cause), claimable now."""
    opened = apply_batch(
        Units(sessions), [("1-0", event_json(severity="P3", at=T0))], policies, clock
    )
    clock.set(T0 + minutes(20))
    raised = apply_batch(
        Units(sessions),
        [("2-0", event_json("issue.updated", severity="P1", at=T0 + minutes(20)))],
        policies,
        clock,
    )
    assert raised.results[0].outcome is Outcome.APPLIED
    assert sorted(raised.effects.disarm) == sorted(i for i, _ in opened.effects.arm)
    index = DeadlineIndex(redis)
    index.arm(raised.effects.arm)
    due, _ = index.claim(clock.now(), 30.0, 10)
    with sessions() as session:
        fired = session.get_one(Deadline, due[0])
        issue = session.scalars(select(Issue)).one()
    assert (fired.kind, fired.due_at, fired.clock_version) == ("escalate", T0 + minutes(20), 2)
    assert fired.budget_s == 5 * 60  # still L1's 5-minute step
    assert (issue.policy_name, issue.clock_version) == ("critical", 2)


def shortened_policies(before: PolicyFile) -> PolicyFile:
    """`before` with its one policy's ladder cut to the first step."""
    policy = before.policies[0].model_dump(mode="json")
    policy["acknowledge"]["ladder"] = policy["acknowledge"]["ladder"][:1]
    return PolicyFile.model_validate(before.model_dump(mode="json") | {"policies": [policy]})


def renamed_policies(before: PolicyFile) -> PolicyFile:
    """`before` with its one policy renamed (and made the default)."""
    policy = before.policies[0].model_dump(mode="json") | {"name": "renamed"}
    return PolicyFile.model_validate(
        before.model_dump(mode="json") | {"policies": [policy], "default": "renamed"}
    )


@pytest.mark.parametrize(
    "edit",
    [
        pytest.param(
            renamed_policies,
            id="policy-renamed",
        ),
        pytest.param(
            shortened_policies,
            id="ladder-shortened",
        ),
    ],
)
def test_event_after_the_policy_file_changed(
    sessions: sessionmaker[Session], clock: ManualClock, edit: Callable[[PolicyFile], PolicyFile]
) -> None:
    """After a policy edit the issue's next event still applies (fire() copes the same way)."""
    before = ladder_policies()
    apply_batch(Units(sessions), [("1-0", event_json(at=T0))], before, clock)
    with sessions() as session, session.begin():
        session.execute(update(Issue).values(tier_index=2, tier="L3"))  # escalated twice
    ack = event_json("issue.acknowledged", at=T0 + minutes(30))
    batch = apply_batch(Units(sessions), [("2-0", ack)], edit(before), clock)
    assert batch.results[0].outcome is Outcome.APPLIED


@pytest.mark.parametrize("comeback", ["issue.reopened", "issue.opened"])
def test_a_resolved_issue_that_comes_back_runs_under_the_current_policy(
    sessions: sessionmaker[Session], clock: ManualClock, comeback: str
) -> None:
    """Opened under a 5m L1, resolved; the file now gives L1 2m. Reopened (or firing again),
    the new cycle takes the current version: L1's escalation is 2m after the return."""
    before, after = ladder_policies(), ladder_policies((("L1", "2m"), ("L2", "10m")))
    apply_batch(Units(sessions), [("1-0", event_json(at=T0))], before, clock)
    resolved = event_json("issue.resolved", at=T0 + minutes(10))
    apply_batch(Units(sessions), [("2-0", resolved)], before, clock)
    back = event_json(comeback, at=T0 + minutes(60))
    assert apply_batch(Units(sessions), [("3-0", back)], after, clock).results[0].outcome is (
        Outcome.APPLIED
    )
    with sessions() as s:
        issue = s.scalars(select(Issue)).one()
        armed = s.scalars(
            select(Deadline).where(Deadline.state == "armed", Deadline.kind == "escalate")
        ).all()
    assert issue.lifecycle == "open" and issue.policy_version == version_of(after)
    assert [d.due_at for d in armed] == [T0 + minutes(62)]
