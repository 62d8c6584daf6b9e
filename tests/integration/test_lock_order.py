"""One lock order on PostgreSQL (issue rows → deadline rows → outbox rows → timeline inserts):
an ingest-like writer and the real delivery code hammer the same issues and never deadlock
(worker/services/deliver.py, batch.py)."""

from __future__ import annotations

import random
import threading
from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import func, insert, select, update
from sqlalchemy.orm import Session

from config.settings import PACKAGED_POLICY, Settings
from schemas.events import IssueEvent
from schemas.messages import Notification
from worker.domain.clock import ManualClock, SystemClock
from worker.services.deliver import deliver, deliver_many
from worker.services.ingest import apply_batch
from worker.services.policy_loader import load_policy
from worker.services.uow import Units
from worker.store.db import SessionFactory, make_engine, session_factory
from worker.store.models import Issue, OutboxMessage, TimelineEntry

pytestmark = pytest.mark.integration

ISSUES = 24
MESSAGES_PER_ISSUE = 120
HAMMER_S = 5.0


class Quiet:
    """A channel that takes every message at once."""

    def send(self, message: Notification) -> None:
        """Received."""


def seed(sessions: SessionFactory, clock: ManualClock) -> list[int]:
    """Open ISSUES issues, then give each MESSAGES_PER_ISSUE pending messages; the issue ids."""
    events: list[tuple[str, str | bytes | None]] = [
        (
            f"{n}-0",
            IssueEvent.model_validate(
                {
                    "event_id": f"evt-lock-{n}",
                    "type": "issue.opened",
                    "occurred_at": clock.now().isoformat(),
                    "source": "jira",
                    "issue": {"id": f"LOCK-{n}", "title": "lock order", "severity": "P1"},
                }
            ).model_dump_json(),
        )
        for n in range(ISSUES)
    ]
    apply_batch(Units(sessions), events, load_policy(PACKAGED_POLICY), clock)
    with sessions() as session, session.begin():
        template = session.scalars(select(OutboxMessage).limit(1)).one()
        issue_ids = list(session.scalars(select(Issue.id).order_by(Issue.id)))
        rows = []
        for issue_id in issue_ids:
            for n in range(MESSAGES_PER_ISSUE):
                message_id = f"msg_lock_{issue_id}_{n}"
                rows.append(
                    {
                        "id": message_id,
                        "issue_id": issue_id,
                        "channel": template.channel,
                        "kind": template.kind,
                        "target": None,
                        "payload": {**template.payload, "id": message_id},
                        "state": "pending",
                        "attempts": 0,
                        "next_attempt_at": clock.now(),
                        "created_at": clock.now(),
                    }
                )
        session.execute(insert(OutboxMessage), rows)
    return issue_ids


def ingest_like(session: Session, issue_ids: list[int], now: Any) -> None:
    """What ingest does to an issue: lock it FOR UPDATE (in id order), rewrite its unsent
    messages (as cancelling moot ones does), extend its timeline."""
    locked = list(
        session.scalars(
            select(Issue.id).where(Issue.id.in_(issue_ids)).order_by(Issue.id).with_for_update()
        )
    )
    session.execute(
        update(OutboxMessage)
        .where(OutboxMessage.issue_id.in_(locked), OutboxMessage.state == "pending")
        .values(target=None)
        .execution_options(synchronize_session=False)
    )
    session.execute(
        insert(TimelineEntry),
        [
            {"issue_id": i, "at": now, "kind": "note", "message": "ingest", "data": {}}
            for i in locked
        ],
    )


def hammer(stop: threading.Event, errors: list[BaseException], work: Callable[[], bool]) -> None:
    """Run `work` until told to stop or it has nothing left; keep every error."""
    try:
        while not stop.is_set() and work():
            pass
    except BaseException as exc:
        errors.append(exc)
        stop.set()


def test_ingest_and_delivery_on_the_same_issues_never_deadlock(database_url: str) -> None:
    """Two writers, ingest-like and the real batch and single delivery, on the same issues for
    a few seconds: no deadlock error, and all the work of both commits."""
    engine = make_engine(database_url, pool_size=8)
    sessions = session_factory(engine)
    clock = ManualClock(SystemClock().now())
    settings = Settings(_env_file=None, delivery_concurrency=1, delivery_lease_s=60.0)
    issue_ids = seed(sessions, clock)
    stop, errors = threading.Event(), list[BaseException]()
    ingested, rng = [0], random.Random(7)

    def ingest_once() -> bool:
        picked = rng.sample(issue_ids, 6)
        with sessions() as session, session.begin():
            ingest_like(session, picked, clock.now())
        ingested[0] += len(picked)
        return True

    def deliver_once(pick: random.Random, many: bool) -> bool:
        with sessions() as session:
            pending = list(
                session.scalars(
                    select(OutboxMessage.id)
                    .where(OutboxMessage.state == "pending")
                    .order_by(func.random())
                    .limit(40 if many else 1)
                )
            )
        if not pending:
            return False
        channels: dict[str, Any] = {"log": Quiet()}
        if many:
            pick.shuffle(pending)
            deliver_many(Units(sessions), channels, clock, settings, pending)
        else:
            deliver(Units(sessions), channels, clock, settings, pending[0])
        return True

    writers = [
        threading.Thread(target=hammer, args=(stop, errors, ingest_once)),
        threading.Thread(
            target=hammer,
            args=(stop, errors, lambda r=random.Random(1): deliver_once(r, True)),
        ),
        threading.Thread(
            target=hammer,
            args=(stop, errors, lambda r=random.Random(2): deliver_once(r, True)),
        ),
        threading.Thread(
            target=hammer,
            args=(stop, errors, lambda r=random.Random(3): deliver_once(r, False)),
        ),
    ]
    for writer in writers:
        writer.start()
    stop.wait(HAMMER_S)
    stop.set()
    for writer in writers:
        writer.join(timeout=60)
    deadlocks = [e for e in errors if "deadlock" in str(e).lower()]
    assert not deadlocks, deadlocks[0]
    assert not errors, errors[0]
    with sessions() as session:
        notes = session.scalar(select(func.count()).where(TimelineEntry.kind == "note"))
        states = dict(
            session.execute(
                select(OutboxMessage.state, func.count()).group_by(OutboxMessage.state)
            ).all()
        )
        notified = session.scalar(select(func.count()).where(TimelineEntry.kind == "notified"))
    assert notes == ingested[0] > 0
    assert states.get("sent", 0) > ISSUES  # both writers made real progress
    assert notified == states["sent"]  # every delivery that committed recorded its timeline
    assert set(states) <= {"pending", "sent"}
    engine.dispose()
