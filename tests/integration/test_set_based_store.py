"""The set-based write path on SQLite and PostgreSQL (worker/store/sql.py, worker/store/bulk.py).

The store writes what a batch added and changed in bulk (executemany on SQLite, unnest on
PostgreSQL). The in-memory store of the unit tests (`tests/support/memory_store.py`) applies
the same services one row at a time, in dicts: the same events must leave the same issues,
deadlines, messages and history in both. And firing in batches (`fire_many`) fires each
deadline once, however often and in whatever lots it is sent.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from config.settings import PACKAGED_POLICY
from schemas.events import IssueEvent
from schemas.policy import PolicyFile
from tests.support.memory_store import MemoryUnits
from tests.unit.factories import T0, event_json
from worker.domain.clock import ManualClock
from worker.domain.states import DeadlineState
from worker.services.fire import fire_many
from worker.services.ingest import apply_batch
from worker.services.policy_loader import load_policy
from worker.services.uow import Units
from worker.store.db import make_engine, session_factory
from worker.store.models import Deadline, Issue, OutboxMessage, ProcessedEvent, TimelineEntry

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def policies() -> PolicyFile:
    """The packaged default policy (P1 ladder L1 5m, L2 10m, L3 15m, manager 15m)."""
    return load_policy(PACKAGED_POLICY)


@pytest.fixture
def sessions(database_url: str) -> Iterator[sessionmaker[Session]]:
    engine = make_engine(database_url)
    yield session_factory(engine)
    engine.dispose()


def storm(n: int, seed: int = 3) -> list[list[tuple[str, str | bytes | None]]]:
    """n events in batches of 40: opens of P1-P4 issues, then updates, severity changes,
    acknowledgements, resolutions and reopenings of them, some out of order (an ack before
    its open, in the same batch or the next), 30 s apart."""
    rng = random.Random(seed)
    lines: list[tuple[str, str | bytes | None]] = []
    opened: list[str] = []
    for i in range(n):
        at = T0 + timedelta(seconds=30 * i)
        roll = rng.random()
        if not opened or roll < 0.35:
            issue = f"OPS-{len(opened) + 1}"
            severity = rng.choice(("P1", "P2", "P3", "P4"))
            if rng.random() < 0.1:  # its acknowledgement first
                ack = event_json("issue.acknowledged", issue_id=issue, at=at)
                lines.append((f"{i}-1", ack))
            opened.append(issue)
            lines.append((f"{i}-0", event_json(issue_id=issue, at=at, severity=severity)))
            continue
        issue = rng.choice(opened)
        kind = rng.choice(
            ("issue.updated", "issue.updated", "issue.acknowledged", "issue.resolved")
        )
        extra: dict[str, Any] = {}
        if kind == "issue.updated" and rng.random() < 0.4:
            extra["severity"] = rng.choice(("P1", "P2", "P3"))
        lines.append((f"{i}-0", event_json(kind, issue_id=issue, at=at, **extra)))
    return [lines[start : start + 40] for start in range(0, len(lines), 40)]


def state_of_database(sessions: sessionmaker[Session]) -> dict[str, Any]:
    with sessions() as s:
        issues = {
            i.id: (i.external_id, i.severity, i.lifecycle, i.tier, i.clock_version, i.assignee)
            for i in s.scalars(select(Issue))
        }
        return {
            "issues": sorted(issues.values()),
            "deadlines": Counter(
                (issues[d.issue_id][0], d.kind, d.target, d.state, d.due_at)
                for d in s.scalars(select(Deadline))
            ),
            "outbox": Counter(
                (issues[o.issue_id][0], o.channel, o.kind, o.state)
                for o in s.scalars(select(OutboxMessage))
            ),
            "timeline": Counter(
                (issues[t.issue_id][0], t.kind, t.at, t.message)
                for t in s.scalars(select(TimelineEntry))
                if t.kind != "notified"
            ),
            "processed": s.scalar(select(func.count()).select_from(ProcessedEvent)),
        }


def state_in_memory(units: MemoryUnits) -> dict[str, Any]:
    memory = units.memory
    issues = {
        i.id: (i.external_id, i.severity, i.lifecycle, i.tier, i.clock_version, i.assignee)
        for i in memory.issue_rows.values()
    }
    return {
        "issues": sorted(issues.values()),
        "deadlines": Counter(
            (issues[d.issue_id][0], d.kind, d.target, d.state, d.due_at)
            for d in memory.deadline_rows.values()
        ),
        "outbox": Counter(
            (issues[o.issue_id][0], o.channel, o.kind, o.state) for o in memory.outbox_rows.values()
        ),
        "timeline": Counter(
            (issues[t.issue_id][0], t.kind, t.at, t.message)
            for t in memory.timeline_rows
            if t.kind != "notified"
        ),
        "processed": len(memory.processed_rows),
    }


def test_a_storm_leaves_the_same_state_as_the_in_memory_store(
    sessions: sessionmaker[Session], policies: PolicyFile
) -> None:
    """600 events in 15 batches, overdue deadlines fired by the events that find them: the
    rows written in bulk are those the reference store holds, field for field."""
    batches = storm(600)
    memory = MemoryUnits()
    for units in (Units(sessions), memory):
        clock = ManualClock(T0)
        for batch in batches:
            clock.set(max(T0, *(_at(line) for _, line in batch)))
            results = apply_batch(units, batch, policies, clock).results
            assert all(r.outcome != "dead" for r in results), results
    stored, expected = state_of_database(sessions), state_in_memory(memory)
    assert stored["processed"] == expected["processed"] > 500
    for part in ("issues", "deadlines", "outbox", "timeline"):
        assert stored[part] == expected[part], part
    assert any(kind == "escalate" for _, kind, _, _ in stored["timeline"])


def test_deadlines_fired_in_lots_are_each_fired_once(
    sessions: sessionmaker[Session], policies: PolicyFile
) -> None:
    """30 P1 issues past their first step: fired in overlapping lots, then all again, each
    escalates once; a lot naming a deadline that does not exist fires the others."""
    clock = ManualClock(T0)
    units = Units(sessions)
    lines: list[tuple[str, str | bytes | None]] = [
        (f"{n}-0", event_json(issue_id=f"OPS-{n}", at=T0)) for n in range(30)
    ]
    apply_batch(units, lines, policies, clock)
    with sessions() as s:
        due = list(
            s.scalars(
                select(Deadline.id).where(
                    Deadline.kind == "escalate", Deadline.state == DeadlineState.ARMED
                )
            )
        )
    assert len(due) == 30
    clock.advance(timedelta(minutes=6))
    first = fire_many(units, policies, clock, [*due[:20], 999_999])
    assert sum(r.fired for r in first) == 20 and first[-1].note == "no such deadline"
    again = fire_many(units, policies, clock, due[10:])
    assert sum(r.fired for r in again) == 10
    assert {r.note for r in again[:10]} == {"already fired"}
    assert not any(r.fired for r in fire_many(units, policies, clock, due))
    with sessions() as s:
        escalations = Counter(
            s.scalars(select(TimelineEntry.issue_id).where(TimelineEntry.kind == "escalate"))
        )
        tiers = Counter(s.scalars(select(Issue.tier)))
    assert len(escalations) == 30 and set(escalations.values()) == {1}
    assert tiers == {"L2": 30}


def _at(line: str | bytes | None) -> Any:
    assert line is not None
    return IssueEvent.model_validate_json(line).occurred_at
