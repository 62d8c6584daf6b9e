"""Every source: accepted, duplicate, bad signature, stale, malformed, oversized, not configured."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import fakeredis
import pytest
from redis.asyncio import Redis
from starlette.testclient import TestClient

from config.settings import Settings
from tests.support import webhooks as wh
from tests.support.webhooks import Signed
from worker.gateway import create_app

from .conftest import MakeClient, post, stream_events

Sign = Callable[[Any], Signed]

SOURCES: dict[str, tuple[str, Sign]] = {
    "events": ("", lambda p: wh.events(p)),
    "github": ("github_issues_opened", lambda p: wh.github(p)),
    "jira": ("jira_issue_created", lambda p: wh.jira(p)),
    "zendesk": ("zendesk_ticket_created", lambda p: wh.zendesk(p)),
    "pagerduty": ("pagerduty_incident_triggered", lambda p: wh.pagerduty(p)),
    "alertmanager": ("alertmanager_firing", lambda p: wh.alertmanager(p)),
}
STALE: dict[str, Callable[[Any], Signed]] = {
    "events": lambda p: wh.events(p, at=datetime.now(UTC).timestamp() - 301),
    "zendesk": lambda p: wh.zendesk(p, at=datetime.now(UTC) - timedelta(seconds=301)),
}


def valid(name: str) -> Signed:
    fixture, sign = SOURCES[name]
    return sign(wh.sample(fixture) if fixture else wh.issue_event())


def tampered(signed: Signed) -> Signed:
    """The same headers on a body changed by one byte (for bearer auth: a wrong token)."""
    headers = dict(signed.headers)
    if headers.get("authorization", "").startswith("Bearer"):
        headers["authorization"] = "Bearer not-the-token"
    return Signed(signed.path, signed.body + b" ", headers)


@pytest.mark.parametrize("name", SOURCES)
def test_accepted_request_is_on_the_stream_before_the_202(
    name: str, client: TestClient, redis: fakeredis.FakeRedis
) -> None:
    """A genuine sample answers 202 with its event ids, and those events are on the stream."""
    response = post(client, valid(name))
    assert response.status_code == 202, response.text
    body = response.json()
    assert body["status"] == "accepted" and body["event_ids"]
    on_stream = stream_events(redis)
    assert [e.event_id for e in on_stream] == body["event_ids"]
    assert len(body["stream_ids"]) == len(body["event_ids"])


@pytest.mark.parametrize("name", SOURCES)
def test_a_repeated_delivery_answers_200_with_the_first_ids_and_adds_nothing(
    name: str, client: TestClient, redis: fakeredis.FakeRedis
) -> None:
    """The same delivery twice: one set of stream entries; the repeat names them."""
    signed = valid(name)
    first = post(client, signed).json()
    again = post(client, signed)
    assert again.status_code == 200
    assert again.json()["status"] == "duplicate"
    assert again.json()["event_ids"] == first["event_ids"]
    assert again.json()["stream_ids"] == first["stream_ids"]
    assert redis.xlen("escalator:events") == len(first["event_ids"])


@pytest.mark.parametrize("name", SOURCES)
def test_bad_signature_or_token_is_401_and_adds_nothing(
    name: str, client: TestClient, redis: fakeredis.FakeRedis
) -> None:
    """A body that does not match its signature (or a wrong token) is refused as a problem."""
    response = post(client, tampered(valid(name)))
    assert response.status_code == 401
    assert response.headers["content-type"] == "application/problem+json"
    assert redis.xlen("escalator:events") == 0


@pytest.mark.parametrize("name", SOURCES)
def test_missing_credentials_are_401(name: str, client: TestClient) -> None:
    """No signature headers and no token at all: 401."""
    signed = valid(name)
    response = client.post(signed.path, content=signed.body)
    assert response.status_code == 401


@pytest.mark.parametrize("name", STALE)
def test_timestamp_outside_the_replay_window_is_401(
    name: str, client: TestClient, redis: fakeredis.FakeRedis
) -> None:
    """A correctly signed request stamped just over 5 minutes ago is refused as a replay."""
    fixture, _ = SOURCES[name]
    signed = STALE[name](wh.sample(fixture) if fixture else wh.issue_event())
    response = post(client, signed)
    assert response.status_code == 401
    assert "replay window" in response.json()["detail"]
    assert redis.xlen("escalator:events") == 0


@pytest.mark.parametrize("name", SOURCES)
def test_malformed_json_is_400(name: str, client: TestClient) -> None:
    """A correctly signed body that is not JSON answers 400 as a problem."""
    _, sign = SOURCES[name]
    response = post(client, sign(b'{"action": "opened",'))
    assert response.status_code == 400
    assert response.headers["content-type"] == "application/problem+json"


@pytest.mark.parametrize("name", SOURCES)
def test_invalid_payload_is_422_naming_the_field(name: str, client: TestClient) -> None:
    """Valid JSON that lacks what the source needs answers 422 with the field named."""
    _, sign = SOURCES[name]
    response = post(client, sign({"unexpected": True}))
    assert response.status_code == 422, response.text
    problem = response.json()
    assert problem["errors"] and all(e["field"] for e in problem["errors"])


@pytest.mark.parametrize("name", SOURCES)
def test_body_over_one_mebibyte_is_413_by_content_length(name: str, client: TestClient) -> None:
    """A declared Content-Length over 1 MiB is refused before it is read."""
    _, sign = SOURCES[name]
    response = post(client, sign(b" " * (1024 * 1024 + 1)))
    assert response.status_code == 413


@pytest.mark.parametrize("name", SOURCES)
def test_streamed_body_over_one_mebibyte_is_413(name: str, client: TestClient) -> None:
    """A chunked body with no Content-Length is counted as it streams and refused past 1 MiB."""
    signed = valid(name)

    def chunks() -> Iterator[bytes]:
        for _ in range(20):
            yield b" " * 65536

    response = client.post(signed.path, content=chunks(), headers=signed.headers)
    assert "content-length" not in {k.lower() for k in signed.headers}
    assert response.status_code == 413


@pytest.mark.parametrize("name", [n for n in SOURCES if n != "events"])
def test_a_source_that_is_not_configured_is_404(name: str, make_client: MakeClient) -> None:
    """With no settings for a source, its endpoint answers 404 even to a genuine request, as
    problem+json naming the variable that sets the source up."""
    client = make_client(sources={})
    refused = post(client, valid(name))
    assert refused.status_code == 404
    assert refused.headers["content-type"].startswith("application/problem+json")
    assert "ESCALATOR_SOURCES" in refused.json()["detail"] and name in refused.json()["detail"]


def test_events_endpoint_needs_a_token_or_secret_to_be_served(make_client: MakeClient) -> None:
    """/v1/events without ESCALATOR_API_TOKEN and without an events secret is not served; the
    refusal names both ways to turn it on."""
    client = make_client(sources={}, api_token=None)
    refused = post(client, valid("events"))
    assert refused.status_code == 404
    detail = refused.json()["detail"]
    assert "ESCALATOR_API_TOKEN" in detail and "ESCALATOR_SOURCES" in detail


def test_events_endpoint_takes_the_api_token_as_bearer(
    client: TestClient, redis: fakeredis.FakeRedis
) -> None:
    """An unsigned IssueEvent with the API token is accepted; a repeat of its event id is not."""
    event = wh.issue_event()
    headers = {"authorization": f"Bearer {wh.TOKEN}"}
    assert client.post("/v1/events", json=event, headers=headers).status_code == 202
    assert client.post("/v1/events", json=event, headers=headers).status_code == 200
    assert redis.xlen("escalator:events") == 1


def test_redis_down_is_503(tmp_path: Path) -> None:
    """When Redis does not answer, a genuine request gets 503 (retry), never a 500."""
    settings = Settings(_env_file=None, data_dir=tmp_path, sources=json.loads(wh.sources_env()))
    app = create_app(settings, lambda: Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.5))
    with TestClient(app) as down:
        response = post(down, valid("github"))
    assert response.status_code == 503
    assert response.headers["content-type"] == "application/problem+json"
