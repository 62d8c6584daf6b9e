"""The batch fast path falls back to one savepoint per event, and the results are the same."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from schemas.policy import PolicyFile
from tests.unit.factories import T0, event_json, minutes
from worker.domain.clock import ManualClock
from worker.services import apply_event as apply_module
from worker.services import ingest
from worker.services.ingest import Outcome, apply_batch
from worker.services.outbox import Outbox, queue_notifications
from worker.services.uow import Units
from worker.store import repository as repo
from worker.store.models import Issue, ProcessedEvent
from worker.store.rows import IssueRow


def test_an_event_that_trips_an_error_is_dead_lettered_alone(
    sessions: sessionmaker[Session],
    clock: ManualClock,
    policies: PolicyFile,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """One event failing unexpectedly: the batch is redone per event; only that one is dead."""
    real = queue_notifications

    def flaky(outbox: Outbox, issue: IssueRow, *args: Any) -> list[str]:
        if issue.external_id == "BAD-1":
            raise RuntimeError("channel table corrupt")
        return real(outbox, issue, *args)

    monkeypatch.setattr(apply_module, "queue_notifications", flaky)
    entries: list[tuple[str, str | bytes | None]] = [
        ("1-0", event_json(issue_id="OK-1", at=T0)),
        ("1-1", event_json(issue_id="BAD-1", at=T0)),
        ("1-2", event_json(issue_id="OK-2", at=T0)),
    ]
    batch = apply_batch(Units(sessions), entries, policies, clock)
    outcomes = {r.issue_key: (r.outcome, r.note) for r in batch.results}
    assert outcomes["jira:OK-1"][0] is Outcome.APPLIED
    assert outcomes["jira:OK-2"][0] is Outcome.APPLIED
    assert outcomes["jira:BAD-1"] == (
        Outcome.DEAD,
        "internal error: RuntimeError: channel table corrupt",
    )
    with sessions() as session:
        assert session.scalar(select(func.count()).select_from(Issue)) == 2
        assert session.scalar(select(func.count()).select_from(ProcessedEvent)) == 2
    assert len(batch.effects.arm) == 8  # escalate, 2 resolve warnings, breach: each issue


def test_fast_and_careful_paths_write_the_same(
    sessions: sessionmaker[Session], clock: ManualClock, policies: PolicyFile
) -> None:
    """The careful path (one savepoint per event) reaches the state the fast path would."""
    stream = [
        ("1-0", event_json(issue_id="A", at=T0, event_id="a1")),
        ("1-1", event_json("issue.acknowledged", issue_id="A", at=T0 + minutes(1), event_id="a2")),
        ("1-2", event_json(issue_id="B", at=T0, event_id="b1")),
        (
            "1-3",
            event_json(
                "issue.updated", issue_id="B", at=T0 + minutes(2), severity="P3", event_id="b2"
            ),
        ),
        ("1-4", event_json(issue_id="A", at=T0, event_id="a1")),
    ]
    parsed = [(sid, ingest.parse_event(raw)) for sid, raw in stream]
    parsed.sort(key=lambda item: item[1].occurred_at)
    careful = ingest._careful(Units(sessions), parsed, policies, clock.now())
    assert [r.outcome for r in careful.results].count(Outcome.DUPLICATE) == 1
    with sessions() as session:
        a = session.scalars(select(Issue).where(Issue.external_id == "A")).one()
        b = session.scalars(select(Issue).where(Issue.external_id == "B")).one()
        assert (a.lifecycle, b.severity, b.clock_version) == ("acknowledged", "P3", 2)
    # What run_effects indexes (armed minus cancelled) is exactly what the database holds armed.
    indexed = {i for i, _ in careful.effects.arm} - set(careful.effects.disarm)
    with sessions() as session:
        assert indexed == {i for i, _ in repo.armed_deadlines(session, after_id=0)}
