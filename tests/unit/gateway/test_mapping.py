"""What each vendor's payload means as IssueEvents: types, severities, ids, ignored deliveries."""

from __future__ import annotations

import copy
import json
from typing import Any

import fakeredis
from starlette.testclient import TestClient

from schemas.events import EventType, IssueEvent, Severity
from tests.support import webhooks as wh

from .conftest import MakeClient, post, stream_events


def only_event(client: TestClient, redis: fakeredis.FakeRedis, signed: wh.Signed) -> IssueEvent:
    response = post(client, signed)
    assert response.status_code == 202, response.text
    events = stream_events(redis)
    assert len(events) == 1
    return events[0]


def test_github_opened_with_p1_label_opens_a_p1_issue_keyed_by_repo_and_number(
    client: TestClient, redis: fakeredis.FakeRedis
) -> None:
    """issues.opened with label P1 is issue.opened, severity P1, id owner/repo#number."""
    event = only_event(client, redis, wh.github(wh.sample("github_issues_opened"), delivery="d-1"))
    assert event.type is EventType.OPENED
    assert event.issue.severity is Severity.P1
    assert event.issue_key == "github:octocat/Hello-World#1347"
    assert event.event_id == "github:d-1"
    assert str(event.issue.url) == "https://github.com/octocat/Hello-World/issues/1347"


def test_github_labeled_is_an_update_with_the_new_severity(
    client: TestClient, redis: fakeredis.FakeRedis
) -> None:
    """issues.labeled with sev:2 is issue.updated carrying severity P2."""
    event = only_event(client, redis, wh.github(wh.sample("github_issues_labeled")))
    assert event.type is EventType.UPDATED and event.issue.severity is Severity.P2


def test_github_closed_resolves(client: TestClient, redis: fakeredis.FakeRedis) -> None:
    """issues.closed is issue.resolved at closed_at."""
    event = only_event(client, redis, wh.github(wh.sample("github_issues_closed")))
    assert event.type is EventType.RESOLVED
    assert event.occurred_at.isoformat() == "2026-11-23T10:30:00+00:00"


def test_github_comment_by_a_customer_is_customer_replied_by_a_member_responded(
    client: TestClient, redis: fakeredis.FakeRedis
) -> None:
    """author_association NONE → issue.customer_replied; MEMBER → issue.responded."""
    payload = wh.sample("github_issue_comment_created")
    assert post(client, wh.github(payload, "issue_comment")).status_code == 202
    member = copy.deepcopy(payload)
    member["comment"]["author_association"] = "MEMBER"
    assert post(client, wh.github(member, "issue_comment")).status_code == 202
    kinds = [e.type for e in stream_events(redis)]
    assert kinds == [EventType.CUSTOMER_REPLIED, EventType.RESPONDED]


def test_github_ping_and_body_edits_are_ignored_honestly(
    client: TestClient, redis: fakeredis.FakeRedis
) -> None:
    """ping and issues.edited without a title change answer 200 ignored, with no event."""
    for signed in (
        wh.github(wh.sample("github_ping"), "ping"),
        wh.github(wh.sample("github_issues_edited")),
        wh.github({"ref": "main"}, "push"),
    ):
        response = post(client, signed)
        assert response.status_code == 200
        assert response.json()["status"] == "ignored" and response.json()["detail"]
    assert redis.xlen("escalator:events") == 0


def test_github_missing_delivery_header_is_422_naming_it(client: TestClient) -> None:
    """Without X-GitHub-Delivery there is nothing to deduplicate on: 422 names the header."""
    signed = wh.github(wh.sample("github_issues_opened"))
    del signed.headers["x-github-delivery"]
    response = post(client, signed)
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "header: X-GitHub-Delivery"


def test_github_severity_labels_are_configurable(
    make_client: MakeClient, redis: fakeredis.FakeRedis
) -> None:
    """A custom map (prio/urgent → P1) decides the severity; unmapped labels fall back."""
    sources = json.loads(wh.sources_env(github={"secrets": [wh.SECRET],
                                                "severity_labels": {"prio/urgent": "P1"},
                                                "default_severity": "P4"}))  # fmt: skip
    client = make_client(sources=sources)
    payload = wh.sample("github_issues_opened")
    payload["issue"]["labels"] = [{"name": "prio/urgent"}]
    assert only_event(client, redis, wh.github(payload)).issue.severity is Severity.P1
    payload["issue"]["labels"] = [{"name": "P1"}]
    post(client, wh.github(payload))
    assert stream_events(redis)[-1].issue.severity is Severity.P4


def test_github_rotated_secrets_both_verify(client: TestClient, redis: fakeredis.FakeRedis) -> None:
    """During a rotation either configured secret verifies; any other does not."""
    payload = wh.sample("github_issues_opened")
    assert post(client, wh.github(payload, secret="old-rotated-secret")).status_code == 202
    assert post(client, wh.github(payload, secret=wh.SECRET)).status_code == 202
    assert post(client, wh.github(payload, secret="stranger")).status_code == 401


def test_jira_priority_map_and_done_status(client: TestClient, redis: fakeredis.FakeRedis) -> None:
    """Highest → P1 on create; a priority change is an update at P3; To Do → Done resolves."""
    for name in ("jira_issue_created", "jira_issue_updated_priority", "jira_issue_updated_done"):
        assert post(client, wh.jira(wh.sample(name))).status_code == 202
    created, updated, done = stream_events(redis)
    assert (created.type, created.issue.severity) == (EventType.OPENED, Severity.P1)
    assert (updated.type, updated.issue.severity) == (EventType.UPDATED, Severity.P3)
    assert done.type is EventType.RESOLVED
    assert created.issue_key == "jira:OPS-17"
    assert str(created.issue.url) == "https://acme.atlassian.net/browse/OPS-17"


def test_jira_leaving_done_reopens_and_in_progress_acknowledges(
    client: TestClient, redis: fakeredis.FakeRedis
) -> None:
    """Done → To Do is issue.reopened; To Do → In Progress is issue.acknowledged."""
    payload: dict[str, Any] = wh.sample("jira_issue_updated_done")
    item = payload["changelog"]["items"][0]
    item.update(fromString="Done", toString="To Do")
    payload["issue"]["fields"]["status"]["statusCategory"]["key"] = "new"
    post(client, wh.jira(payload))
    item.update(fromString="To Do", toString="In Progress")
    payload["issue"]["fields"]["status"]["statusCategory"]["key"] = "indeterminate"
    post(client, wh.jira(payload))
    assert [e.type for e in stream_events(redis)] == [EventType.REOPENED, EventType.ACKNOWLEDGED]


def test_zendesk_created_comment_and_solved(client: TestClient, redis: fakeredis.FakeRedis) -> None:
    """ticket.created (urgent → P1), an end-user comment, then solved."""
    for name in ("zendesk_ticket_created", "zendesk_ticket_comment_added",
                 "zendesk_ticket_status_solved"):  # fmt: skip
        assert post(client, wh.zendesk(wh.sample(name))).status_code == 202
    created, comment, solved = stream_events(redis)
    assert (created.type, created.issue.severity) == (EventType.OPENED, Severity.P1)
    assert str(created.issue.url) == "https://acme.zendesk.com/agent/tickets/35436"
    assert comment.type is EventType.CUSTOMER_REPLIED
    assert solved.type is EventType.RESOLVED


def test_pagerduty_any_of_several_v1_signatures_accepts(
    client: TestClient, redis: fakeredis.FakeRedis
) -> None:
    """X-PagerDuty-Signature with an unknown v1 value and a right one is accepted."""
    signed = wh.pagerduty(wh.sample("pagerduty_incident_triggered"), secrets=("other", wh.SECRET))
    event = only_event(client, redis, signed)
    assert (event.type, event.issue.severity) == (EventType.OPENED, Severity.P1)
    assert event.issue.assignee == "Earline Greenholt"


def test_pagerduty_resolved_and_urgency_fallback(
    client: TestClient, redis: fakeredis.FakeRedis
) -> None:
    """incident.resolved resolves; with no priority, urgency low maps to P3."""
    payload = wh.sample("pagerduty_incident_resolved")
    payload["event"]["data"]["priority"] = None
    payload["event"]["data"]["urgency"] = "low"
    event = only_event(client, redis, wh.pagerduty(payload))
    assert (event.type, event.issue.severity) == (EventType.RESOLVED, Severity.P3)


def test_alertmanager_one_issue_per_fingerprint_firing_opens_resolved_resolves(
    client: TestClient, redis: fakeredis.FakeRedis
) -> None:
    """Two firing alerts open two issues by severity label; a resolved one resolves its own."""
    assert post(client, wh.alertmanager(wh.sample("alertmanager_firing"))).status_code == 202
    assert post(client, wh.alertmanager(wh.sample("alertmanager_resolved"))).status_code == 202
    a, b, resolved = stream_events(redis)
    assert (a.issue_key, a.type, a.issue.severity) == (
        "alertmanager:5f2a1c7e9b3d4a60", EventType.OPENED, Severity.P1)  # fmt: skip
    assert (b.issue_key, b.issue.severity) == ("alertmanager:8c1d2e3f4a5b6c70", Severity.P3)
    assert (resolved.issue_key, resolved.type) == (a.issue_key, EventType.RESOLVED)


def test_alertmanager_takes_basic_auth(client: TestClient, redis: fakeredis.FakeRedis) -> None:
    """basic_auth with the secret as password is accepted; a wrong password is 401."""
    signed = wh.alertmanager(wh.sample("alertmanager_firing"))
    good = {"content-type": "application/json"}
    assert client.post(signed.path, content=signed.body, headers=good,
                       auth=("alertmanager", wh.SECRET)).status_code == 202  # fmt: skip
    assert client.post(signed.path, content=signed.body, headers=good,
                       auth=("alertmanager", "nope")).status_code == 401  # fmt: skip
