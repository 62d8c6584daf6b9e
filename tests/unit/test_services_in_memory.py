"""The services on the in-memory unit of work: ingesting a batch, firing a deadline and
delivering a message, with no database (tests/support/memory_store.py). What the database adds
(locks, rollbacks, races between consumers) is tested against SQLite and PostgreSQL elsewhere."""

from __future__ import annotations

from datetime import timedelta

import pytest

from config.settings import Settings
from schemas.policy import PolicyFile
from tests.support.memory_store import MemoryStore, MemoryUnits
from worker.domain.clock import ManualClock
from worker.domain.states import DeadlineState, OutboxState
from worker.errors import DeliveryError
from worker.services.deliver import deliver, deliver_many
from worker.services.fire import fire
from worker.services.ingest import Outcome, apply_batch
from worker.services.uow import Effects
from worker.store.rows import DeadlineRow

from .factories import T0, event_json
from .test_dispatcher import FakeChannel, fails, ok


class Committed:
    """The effects each unit of work ran after its commit."""

    def __init__(self) -> None:
        self.runs: list[Effects] = []

    def __call__(self, effects: Effects) -> None:
        self.runs.append(effects)

    def armed(self) -> set[int]:
        disarmed = {i for run in self.runs for i in run.disarm}
        return {i for run in self.runs for i, _ in run.arm} - disarmed


@pytest.fixture
def committed() -> Committed:
    return Committed()


@pytest.fixture
def units(committed: Committed) -> MemoryUnits:
    """Units of work on a fresh memory store, their effects recorded."""
    return MemoryUnits(MemoryStore(), committed)


def open_issue(units: MemoryUnits, policies: PolicyFile, clock: ManualClock) -> list[str]:
    """Open OPS-1 at T0; the ids of the messages that queued."""
    opened = apply_batch(units, [("1-0", event_json(issue_id="OPS-1", at=T0))], policies, clock)
    return opened.effects.outbox


def armed(memory: MemoryStore) -> list[DeadlineRow]:
    rows = memory.deadline_rows.values()
    return sorted((d for d in rows if d.state == DeadlineState.ARMED), key=lambda d: d.due_at)


def due_escalation(memory: MemoryStore) -> tuple[int, DeadlineRow]:
    """The first armed escalation, with its id."""
    due = next(d for d in armed(memory) if d.kind == "escalate")
    assert due.id is not None
    return due.id, due


def test_ingest_opens_an_issue_arms_its_ladder_and_queues_its_messages(
    units: MemoryUnits, committed: Committed, policies: PolicyFile, clock: ManualClock
) -> None:
    """One batch: the issue is open at L1, its deadlines are armed and indexed after the
    commit, its assignment is queued and handed to delivery after the commit."""
    batch = apply_batch(units, [("1-0", event_json(issue_id="OPS-1", at=T0))], policies, clock)
    assert [r.outcome for r in batch.results] == [Outcome.APPLIED]
    issue = units.memory.issue("OPS-1")
    assert (issue.lifecycle, issue.tier) == ("open", "L1")
    [run] = committed.runs
    assert committed.armed() == {d.id for d in armed(units.memory)} != set()
    assert run.outbox == list(units.memory.outbox_rows)
    assert {r.kind for r in units.memory.outbox_rows.values()} == {"assigned"}


def test_a_duplicate_event_changes_nothing(
    units: MemoryUnits, policies: PolicyFile, clock: ManualClock
) -> None:
    """The same event id twice: the second is a duplicate, nothing more is written."""
    line = event_json(issue_id="OPS-1", at=T0, event_id="e-1")
    apply_batch(units, [("1-0", line)], policies, clock)
    rows = (len(units.memory.deadline_rows), len(units.memory.outbox_rows))
    again = apply_batch(units, [("1-1", line)], policies, clock)
    assert [r.outcome for r in again.results] == [Outcome.DUPLICATE]
    assert (len(units.memory.deadline_rows), len(units.memory.outbox_rows)) == rows


def test_an_acknowledgement_cancels_the_acknowledge_ladder(
    units: MemoryUnits, committed: Committed, policies: PolicyFile, clock: ManualClock
) -> None:
    """Acknowledged a minute later: the acknowledge deadlines are cancelled and dropped from
    the index after the commit."""
    apply_batch(units, [("1-0", event_json(issue_id="OPS-1", at=T0))], policies, clock)
    clock.advance(timedelta(minutes=1))
    ack = event_json("issue.acknowledged", issue_id="OPS-1", at=T0 + timedelta(minutes=1))
    apply_batch(units, [("2-0", ack)], policies, clock)
    assert units.memory.issue("OPS-1").lifecycle == "acknowledged"
    assert all(d.target != "acknowledge" for d in armed(units.memory))
    assert committed.runs[-1].disarm


def test_an_event_before_its_issue_is_parked_then_applied_with_the_open(
    units: MemoryUnits, policies: PolicyFile, clock: ManualClock
) -> None:
    """The acknowledgement arrives first: parked; the open applies it, in order of time."""
    ack = event_json("issue.acknowledged", issue_id="OPS-1", at=T0 + timedelta(seconds=30))
    first = apply_batch(units, [("1-0", ack)], policies, clock)
    assert [r.outcome for r in first.results] == [Outcome.PARKED]
    apply_batch(units, [("2-0", event_json(issue_id="OPS-1", at=T0))], policies, clock)
    assert units.memory.issue("OPS-1").lifecycle == "acknowledged"
    assert units.memory.parked_rows == {}


def test_firing_the_due_deadline_escalates_once(
    units: MemoryUnits, committed: Committed, policies: PolicyFile, clock: ManualClock
) -> None:
    """Past the acknowledge step, the fired deadline moves the issue to L2 and queues the
    escalation notice; firing it again does nothing."""
    apply_batch(units, [("1-0", event_json(issue_id="OPS-1", at=T0))], policies, clock)
    due_id, due = due_escalation(units.memory)
    clock.set(due.due_at + timedelta(seconds=1))
    result = fire(units, policies, clock, due_id)
    assert result.fired
    issue = units.memory.issue("OPS-1")
    assert issue.tier == "L2"
    kinds = [r.kind for r in units.memory.outbox_rows.values()]
    assert kinds.count("escalated") >= 1
    assert result.effects.outbox == committed.runs[-1].outbox
    timeline = [e.kind for e in units.memory.timeline_of(issue)]
    assert "escalate" in timeline
    again = fire(units, policies, clock, due_id)
    assert not again.fired and again.note == "already fired"
    assert units.memory.issue("OPS-1").tier == "L2"


def test_an_overdue_escalation_comes_before_a_late_acknowledgement(
    units: MemoryUnits, policies: PolicyFile, clock: ManualClock
) -> None:
    """History is time-ordered: an acknowledgement processed after the escalation fell due
    finds the issue escalated (fired by ingest itself, before the event)."""
    apply_batch(units, [("1-0", event_json(issue_id="OPS-1", at=T0))], policies, clock)
    due = next(d for d in armed(units.memory) if d.kind == "escalate")
    late = due.due_at + timedelta(minutes=1)
    clock.set(late)
    ack = event_json("issue.acknowledged", issue_id="OPS-1", at=late)
    apply_batch(units, [("2-0", ack)], policies, clock)
    issue = units.memory.issue("OPS-1")
    assert (issue.tier, issue.lifecycle) == ("L2", "acknowledged")
    assert due.state == DeadlineState.FIRED


def test_delivering_a_message_records_it_sent_and_forgets_its_mark(
    units: MemoryUnits,
    committed: Committed,
    policies: PolicyFile,
    clock: ManualClock,
    settings: Settings,
) -> None:
    """Leased, sent, recorded: the row is sent with a timeline line, and after the commit no
    task needs its in-flight mark."""
    [mid] = open_issue(units, policies, clock)
    channel = FakeChannel(ok)
    outcome = deliver(units, {"log": channel}, clock, settings, mid)
    assert outcome.state == "sent"
    row = units.memory.outbox_rows[mid]
    assert (row.state, row.attempts) == (OutboxState.SENT, 1)
    assert [m.id for m in channel.received] == [mid]
    assert committed.runs[-1].finished == [mid]
    lines = [e.message for e in units.memory.timeline_of(units.memory.issue("OPS-1"))]
    assert any("sent to L1 via log" in line for line in lines)


def test_a_failed_delivery_is_retried_after_the_commit_then_dead(
    units: MemoryUnits,
    committed: Committed,
    policies: PolicyFile,
    clock: ManualClock,
    settings: Settings,
) -> None:
    """A receiver that keeps failing: each attempt schedules its retry after the commit, and
    the last one leaves the message dead, with a timeline line."""
    [mid] = open_issue(units, policies, clock)
    channel = FakeChannel(*[fails(DeliveryError("HTTP 503"))] * settings.delivery_max_attempts)
    for attempt in range(1, settings.delivery_max_attempts + 1):
        outcome = deliver_many(units, {"log": channel}, clock, settings, [mid])[mid]
        if attempt < settings.delivery_max_attempts:
            assert outcome.state == "retry" and outcome.retry_in is not None
            assert committed.runs[-1].retry == [(mid, outcome.retry_in)]
            clock.advance(timedelta(seconds=outcome.retry_in + 1))
    assert outcome.state == OutboxState.DEAD
    assert units.memory.outbox_rows[mid].state == OutboxState.DEAD
    assert committed.runs[-1].finished == [mid]


def test_a_message_made_moot_before_it_is_sent_is_cancelled(
    units: MemoryUnits, policies: PolicyFile, clock: ManualClock, settings: Settings
) -> None:
    """Resolved before its escalation notice went out: the notice is cancelled, not sent."""
    apply_batch(units, [("1-0", event_json(issue_id="OPS-1", at=T0))], policies, clock)
    due_id, due = due_escalation(units.memory)
    clock.set(due.due_at)
    notices = fire(units, policies, clock, due_id).effects.outbox
    assert notices
    resolve = event_json("issue.resolved", issue_id="OPS-1", at=due.due_at)
    apply_batch(units, [("2-0", resolve)], policies, clock)
    channel = FakeChannel(ok)
    outcomes = deliver_many(units, {"log": channel}, clock, settings, notices)
    assert {o.state for o in outcomes.values()} <= {"cancelled", "skipped"}
    assert channel.received == []


def test_a_delivery_task_runs_its_effects_once_its_block_ends(
    units: MemoryUnits,
    committed: Committed,
    policies: PolicyFile,
    clock: ManualClock,
    settings: Settings,
) -> None:
    """As a delivery task runs: the effects of its units wait until the block ends (its marks
    are renewed meanwhile), then run together, once."""
    [mid] = open_issue(units, policies, clock)
    before = len(committed.runs)
    with units.deferred() as held:
        deliver(held, {"log": FakeChannel(ok)}, clock, settings, mid)
        assert len(committed.runs) == before
    assert committed.runs[-1].finished == [mid] and len(committed.runs) == before + 1
