"""An Alertmanager alert that fires again after it resolved reopens its issue, through the core."""

from __future__ import annotations

import copy

import fakeredis
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from starlette.testclient import TestClient

from schemas.policy import PolicyFile
from tests.support import webhooks as wh
from tests.support.streams import entries as stream_entries
from worker.broker.keys import STREAM, STREAM_FIELD
from worker.domain.clock import ManualClock
from worker.domain.oncall import on_call
from worker.services.ingest import apply_batch
from worker.services.uow import Units
from worker.store.models import Issue, OutboxMessage

from .conftest import post


def test_firing_again_after_resolved_reopens_and_notifies_again(
    client: TestClient,
    redis: fakeredis.FakeRedis,
    sessions: sessionmaker[Session],
    clock: ManualClock,
    policies: PolicyFile,
) -> None:
    """firing (10:00) → resolved (10:30) → firing again (11:00): one issue, opened twice, its
    first tier told twice; nothing is silently dropped as 'an update of a resolved issue'."""
    firing = wh.sample("alertmanager_firing")
    firing["alerts"] = firing["alerts"][:1]
    resolved = copy.deepcopy(firing)
    resolved["status"] = resolved["alerts"][0]["status"] = "resolved"
    resolved["alerts"][0]["endsAt"] = "2026-11-23T10:30:00Z"
    again = copy.deepcopy(firing)
    again["alerts"][0]["startsAt"] = "2026-11-23T11:00:00Z"
    for payload in (firing, resolved, again):
        assert post(client, wh.alertmanager(payload)).status_code == 202
    entries: list[tuple[str, str | bytes | None]] = [
        (sid, fields[STREAM_FIELD]) for sid, fields in stream_entries(redis.xrange(STREAM))
    ]
    assert len(entries) == 3
    for entry in entries:  # one batch each, as they would arrive minutes apart
        apply_batch(Units(sessions), [entry], policies, clock)
    with sessions() as s:
        issue = s.scalars(select(Issue)).one()
        kinds = [
            m.kind for m in s.scalars(select(OutboxMessage).order_by(OutboxMessage.created_at))
        ]
    assert issue.lifecycle == "open" and issue.clock_version == 2
    # Alertmanager knows no assignee: the first tier's on-call person holds it again
    assert issue.assignee is not None and issue.assignee == on_call(
        policies, issue.tier, clock.now()
    )
    assert kinds.count("assigned") == 2 and kinds.count("resolved") == 1
