"""Firing claimed deadlines in lots (worker/services/fire.py: fire_many): one transaction for
the lot; when one of them trips a bug, each is fired alone and only that one is left claimed."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from schemas.policy import PolicyFile
from worker.domain.clock import ManualClock
from worker.domain.states import DeadlineState
from worker.services import history
from worker.services.fire import fire_many
from worker.services.ingest import apply_batch
from worker.services.uow import Units
from worker.store.models import Deadline, Issue

from .factories import T0, event_json


def escalations(sessions: sessionmaker[Session]) -> dict[str, int]:
    """The armed escalation of each issue, by external id."""
    with sessions() as s:
        rows = s.execute(
            select(Issue.external_id, Deadline.id)
            .join(Deadline, Deadline.issue_id == Issue.id)
            .where(Deadline.kind == "escalate", Deadline.state == DeadlineState.ARMED)
        )
        return {external_id: deadline_id for external_id, deadline_id in rows}


def states(sessions: sessionmaker[Session], ids: list[int]) -> list[str]:
    with sessions() as s:
        rows = s.execute(select(Deadline.id, Deadline.state).where(Deadline.id.in_(ids)))
        found = {deadline_id: state for deadline_id, state in rows}
    return [found[i] for i in ids]


def test_one_bad_deadline_leaves_the_others_fired_and_itself_claimed(
    sessions: sessionmaker[Session],
    clock: ManualClock,
    policies: PolicyFile,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    units = Units(sessions)
    lines: list[tuple[str, str | bytes | None]] = [
        (f"{n}-0", event_json(issue_id=f"OPS-{n}", at=T0)) for n in range(4)
    ]
    apply_batch(units, lines, policies, clock)
    due = escalations(sessions)
    real = history.decide_firing  # type: ignore[attr-defined]

    def flaky(store: Any, issue: Any, *args: Any) -> Any:
        if issue.external_id == "OPS-2":
            raise RuntimeError("ladder table corrupt")
        return real(store, issue, *args)

    monkeypatch.setattr(history, "decide_firing", flaky)
    clock.advance(timedelta(minutes=6))
    ids = [due[f"OPS-{n}"] for n in range(4)]
    results = fire_many(units, policies, clock, ids)
    assert [r.fired for r in results] == [True, True, False, True]
    assert [r.failed for r in results] == [False, False, True, False]
    assert "ladder table corrupt" in results[2].note
    assert states(sessions, ids) == ["fired", "fired", "armed", "fired"]  # sent again later
    monkeypatch.setattr(history, "decide_firing", real)
    [retried] = fire_many(units, policies, clock, [due["OPS-2"]])
    assert retried.fired and states(sessions, ids) == ["fired"] * 4
