"""The management API: token required; issues read from the store; actions go on the stream."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import fakeredis
import pytest
from sqlalchemy.orm import Session, sessionmaker
from starlette.testclient import TestClient

from schemas.events import EventType
from tests.support.webhooks import TOKEN
from worker.store.models import Deadline, Issue, TimelineEntry

from .conftest import MakeClient, stream_events

AUTH = {"authorization": f"Bearer {TOKEN}"}
T0 = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)


def add_issue(sessions: sessionmaker[Session], external_id: str, lifecycle: str = "open") -> None:
    with sessions.begin() as s:
        issue = Issue(
            source="github", external_id=external_id, title="Checkout fails", severity="P1",
            status="open", assignee="l1-oncall", labels=["P1"], url=None, policy_name="critical",
            lifecycle=lifecycle, tier_index=0, tier="L1", clock_version=1, cycle_started_at=T0,
            lifecycle_at=T0, snapshot_at=T0, created_at=T0, updated_at=T0,
        )  # fmt: skip
        s.add(issue)
        s.flush()
        s.add(Deadline(issue_id=issue.id, kind="escalate", tier_index=0, clock_version=1,
                       due_at=T0 + timedelta(minutes=5), state="armed"))  # fmt: skip
        s.add(TimelineEntry(issue_id=issue.id, at=T0, kind="opened", message="opened", data={}))


@pytest.fixture
def issues(sessions: sessionmaker[Session]) -> None:
    add_issue(sessions, "acme/app#1")
    add_issue(sessions, "acme/app#2", lifecycle="resolved")


def test_the_management_api_requires_a_token(make_client: MakeClient) -> None:
    """No token, a wrong token, or no token configured at all: 401."""
    client = make_client()
    assert client.get("/v1/issues").status_code == 401
    assert client.get("/v1/issues", headers={"authorization": "Bearer x"}).status_code == 401
    off = make_client(api_token=None)
    refused = off.get("/v1/issues", headers=AUTH)
    assert refused.status_code == 401
    detail = refused.json()["detail"]  # every variable that turns the API on
    assert "ESCALATOR_MANAGEMENT_TOKEN" in detail and "ESCALATOR_API_TOKEN" in detail


def test_a_separate_management_token_is_accepted(make_client: MakeClient, issues: None) -> None:
    """ESCALATOR_MANAGEMENT_TOKEN opens the management API without the API token."""
    client = make_client(api_token=None, management_token="mgmt")
    assert client.get("/v1/issues", headers={"authorization": "Bearer mgmt"}).status_code == 200


def test_list_open_issues_and_all_paginated(client: TestClient, issues: None) -> None:
    """state=open hides resolved issues; limit pages with next_offset."""
    open_ = client.get("/v1/issues", headers=AUTH).json()
    assert [i["key"] for i in open_["items"]] == ["github:acme/app#1"]
    assert open_["items"][0]["next_deadline"]["kind"] == "escalate"
    page = client.get("/v1/issues?state=all&limit=1", headers=AUTH).json()
    assert len(page["items"]) == 1 and page["next_offset"] == 1
    last = client.get("/v1/issues?state=all&limit=1&offset=1", headers=AUTH).json()
    assert last["next_offset"] is None


def test_get_issue_by_key_with_deadlines_and_timeline(client: TestClient, issues: None) -> None:
    """GET /v1/issues/source:id (URL-encoded #) shows its deadlines and timeline."""
    response = client.get("/v1/issues/github:acme/app%231", headers=AUTH)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["key"] == "github:acme/app#1"
    assert [d["state"] for d in body["deadlines"]] == ["armed"]
    assert [t["kind"] for t in body["timeline"]] == ["opened"]
    missing = client.get("/v1/issues/github:nope", headers=AUTH)
    assert missing.status_code == 404
    assert missing.headers["content-type"] == "application/problem+json"


@pytest.mark.parametrize(
    ("action", "kind"),
    [
        ("acknowledge", EventType.ACKNOWLEDGED),
        ("resolve", EventType.RESOLVED),
        ("escalate", EventType.ESCALATION_REQUESTED),
    ],
)
def test_actions_put_an_event_for_the_stored_issue_on_the_stream(
    client: TestClient, redis: fakeredis.FakeRedis, issues: None, action: str, kind: EventType
) -> None:
    """Each action answers 202 with an event id, and that event is on the stream."""
    response = client.post(f"/v1/issues/github:acme/app%231/{action}", headers=AUTH)
    assert response.status_code == 202, response.text
    (event,) = stream_events(redis)
    assert event.event_id == response.json()["event_ids"][0]
    assert (event.type, event.issue_key, event.issue.severity.value) == (
        kind, "github:acme/app#1", "P1")  # fmt: skip


def test_snooze_emits_snooze_until(
    client: TestClient, redis: fakeredis.FakeRedis, issues: None
) -> None:
    """snooze with an aware time emits issue.snoozed with snooze_until; a naive time is 422."""
    until = "2026-11-23T12:00:00+01:00"
    path = "/v1/issues/github:acme/app%231/snooze"
    assert client.post(path, json={"until": until}, headers=AUTH).status_code == 202
    (event,) = stream_events(redis)
    assert event.type is EventType.SNOOZED
    assert event.snooze_until == datetime(2026, 11, 23, 11, 0, tzinfo=UTC)
    naive = client.post(path, json={"until": "2026-11-23T12:00:00"}, headers=AUTH)
    assert naive.status_code == 422
    assert naive.json()["errors"][0]["field"] == "until"


def test_an_idempotency_key_makes_an_action_happen_once(
    client: TestClient, redis: fakeredis.FakeRedis, issues: None
) -> None:
    """The same Idempotency-Key twice: one event; the repeat answers 200 with its id."""
    headers = {**AUTH, "idempotency-key": "ack-1"}
    path = "/v1/issues/github:acme/app%231/acknowledge"
    first = client.post(path, headers=headers)
    again = client.post(path, headers=headers)
    assert (first.status_code, again.status_code) == (202, 200)
    assert again.json()["event_ids"] == first.json()["event_ids"]
    assert redis.xlen("escalator:events") == 1


def test_acting_on_an_unknown_issue_is_404(client: TestClient, issues: None) -> None:
    """No event is produced for an issue the store does not have."""
    assert client.post("/v1/issues/github:nope/resolve", headers=AUTH).status_code == 404
