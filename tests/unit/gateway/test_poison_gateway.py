"""Poison at the gateway: every source answers 422 problem+json naming the field (never 500) for
out-of-range times, NUL bytes, times outside the window and malformed vendor values."""

from __future__ import annotations

import copy
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import fakeredis
import pytest
from sqlalchemy.orm import Session, sessionmaker
from starlette.testclient import TestClient

from config.settings import Settings
from schemas.events import EventWindow
from tests.support import webhooks as wh
from tests.support.webhooks import Signed
from worker.errors import Rejected
from worker.gateway.intake import interpret
from worker.gateway.sources.common import Incoming, Mapped
from worker.gateway.sources.jira import JiraAdapter

from .conftest import MakeClient, post
from .test_management import AUTH, add_issue

BEYOND_9999 = "9999-12-31T23:59:59-01:00"  # its UTC form is in year 10000
BEFORE_1 = "0001-01-01T00:00:00+01:00"  # its UTC form is in year 0
GO_ZERO = "0001-01-01T00:00:00Z"
Mutate = Callable[[Any], None]


def iso(at: datetime) -> str:
    return at.isoformat().replace("+00:00", "Z")


def now() -> datetime:
    return datetime.now(UTC)


# name: (fixture, signer, how to set the time the event's occurred_at comes from)
SOURCES: dict[str, tuple[str, Callable[..., Signed], Callable[[Any, Any], object]]] = {
    "events": ("", wh.events, lambda p, t: p.update(occurred_at=t)),
    "github": ("github_issues_opened", wh.github, lambda p, t: p["issue"].update(created_at=t)),
    "jira": ("jira_issue_created", wh.jira, lambda p, t: p.update(timestamp=t)),
    "zendesk": ("zendesk_ticket_created", wh.zendesk, lambda p, t: p.update(time=t)),
    "pagerduty": (
        "pagerduty_incident_triggered",
        wh.pagerduty,
        lambda p, t: p["event"].update(occurred_at=t),
    ),
    "alertmanager": (
        "alertmanager_firing",
        wh.alertmanager,
        lambda p, t: [a.update(startsAt=t) for a in p["alerts"]],
    ),
}


def payload(name: str) -> Any:
    """The source's sample, its time moved to now (inside the window)."""
    fixture, _, set_time = SOURCES[name]
    body = copy.deepcopy(wh.sample(fixture)) if fixture else wh.issue_event()
    set_time(body, int(now().timestamp() * 1000) if name == "jira" else iso(now()))
    return body


def refused(client: TestClient, name: str, body: Any, redis: fakeredis.FakeRedis) -> set[str]:
    """POST the signed body; assert a 422 problem+json that added nothing; the fields named."""
    response = post(client, SOURCES[name][1](body))
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert redis.xlen("escalator:events") == 0
    return {e["field"] for e in response.json()["errors"]}


def occurred_at(name: str) -> str:
    """How a source's 422 names the time: our own events as sent, vendors' as the event field."""
    return "occurred_at" if name == "events" else "event.occurred_at"


@pytest.mark.parametrize("name", SOURCES)
def test_every_source_still_accepts_its_sample_at_the_current_time(
    name: str, client: TestClient
) -> None:
    """The guards refuse poison only: the sample, timed now, is accepted."""
    assert post(client, SOURCES[name][1](payload(name))).status_code == 202


@pytest.mark.parametrize("name", [n for n in SOURCES if n != "jira"])
@pytest.mark.parametrize("at", [BEYOND_9999, BEFORE_1])
def test_a_time_whose_utc_form_is_out_of_range_is_a_422_naming_the_field(
    name: str, at: str, client: TestClient, redis: fakeredis.FakeRedis
) -> None:
    """9999-12-31T23:59:59-01:00 or 0001-01-01T00:00:00+01:00: 422, not an OverflowError 500."""
    body = payload(name)
    SOURCES[name][2](body, at)
    assert occurred_at(name) in refused(client, name, body, redis)


def test_a_jira_timestamp_out_of_range_is_a_422_naming_it(
    client: TestClient, redis: fakeredis.FakeRedis
) -> None:
    """Jira's epoch milliseconds beyond year 5000 are refused by the payload model."""
    body = payload("jira")
    body["timestamp"] = 10**15
    assert refused(client, "jira", body, redis) == {"timestamp"}


@pytest.mark.parametrize("name", SOURCES)
@pytest.mark.parametrize(
    "shift",
    [timedelta(hours=2), -timedelta(days=367), datetime(1970, 1, 1, tzinfo=UTC) - now()],
    ids=["2h-ahead", "367d-old", "unix-epoch"],
)
def test_a_time_outside_the_window_is_a_422_naming_occurred_at(
    name: str, shift: timedelta, make_client: MakeClient, redis: fakeredis.FakeRedis
) -> None:
    """More than 5 minutes ahead or more than 366 days old: refused at the door, field named."""
    client = make_client(event_max_age_s=Settings.model_fields["event_max_age_s"].default)
    body = payload(name)
    at = now() + shift
    SOURCES[name][2](body, int(at.timestamp() * 1000) if name == "jira" else iso(at))
    assert refused(client, name, body, redis) == {occurred_at(name)}


@pytest.mark.parametrize("name", [n for n in SOURCES if n != "jira"])
def test_go_zero_time_is_refused_naming_occurred_at(
    name: str, client: TestClient, redis: fakeredis.FakeRedis
) -> None:
    """0001-01-01T00:00:00Z, a common producer bug, is far outside the window."""
    body = payload(name)
    SOURCES[name][2](body, GO_ZERO)
    assert refused(client, name, body, redis) == {occurred_at(name)}


def test_the_window_follows_the_settings(make_client: MakeClient) -> None:
    """ESCALATOR_EVENT_MAX_SKEW_S=60 refuses an event 2 minutes ahead that the default admits."""
    ahead = wh.issue_event(occurred_at=iso(now() + timedelta(minutes=2)))
    assert post(make_client(), wh.events(ahead)).status_code == 202
    tight = make_client(event_max_skew_s=60)
    response = post(tight, wh.events(wh.issue_event(occurred_at=ahead["occurred_at"])))
    assert response.status_code == 422
    assert "in the future" in response.json()["detail"]


NUL: dict[str, tuple[Mutate, str]] = {
    "events": (lambda p: p["issue"].update(title="down\x00"), "issue.title"),
    "github": (lambda p: p["issue"].update(title="down\x00"), "event.issue.title"),
    "jira": (lambda p: p["issue"]["fields"].update(summary="down\x00"), "event.issue.title"),
    "zendesk": (lambda p: p["detail"].update(subject="down\x00"), "event.issue.title"),
    "pagerduty": (lambda p: p["event"]["data"].update(title="down\x00"), "event.issue.title"),
    "alertmanager": (
        lambda p: p["alerts"][0]["labels"].update(instance="db\x00"),
        "event.issue.labels",
    ),
}
NUL_IDS: dict[str, tuple[Mutate, str]] = {
    "events": (lambda p: p["issue"].update(id="OPS\x00-1"), "issue.id"),
    "github": (lambda p: p["repository"].update(full_name="acme/\x00"), "event.issue.id"),
    "jira": (lambda p: p["issue"].update(key="OPS\x00-17"), "event.issue.id"),
    "zendesk": (lambda p: p["detail"].update(id="35\x00"), "event.issue.id"),
    "pagerduty": (lambda p: p["event"]["data"].update(id="Q3\x00"), "event.issue.id"),
    "alertmanager": (lambda p: p["alerts"][0].update(fingerprint="5f\x00"), "event.event_id"),
}


@pytest.mark.parametrize("table", [NUL, NUL_IDS], ids=["text", "id"])
@pytest.mark.parametrize("name", SOURCES)
def test_a_nul_byte_is_a_422_naming_the_field(
    name: str,
    table: dict[str, tuple[Mutate, str]],
    client: TestClient,
    redis: fakeredis.FakeRedis,
) -> None:
    """A NUL in a title, label or id never reaches the stream (nor PostgreSQL's DataError)."""
    mutate, field = table[name]
    body = payload(name)
    mutate(body)
    assert field in refused(client, name, body, redis)


def test_a_signed_jira_delivery_with_an_unsplittable_self_url_is_a_422_naming_it(
    client: TestClient, redis: fakeredis.FakeRedis
) -> None:
    """issue.self `http://[::1/...` made urllib raise ValueError (a 500); now it is named."""
    body = payload("jira")
    body["issue"]["self"] = "http://[::1/rest/api/2/issue/10002"
    assert refused(client, "jira", body, redis) == {"issue.self"}


WRONG_TYPES: dict[str, Mutate] = {
    "events": lambda p: p["issue"].update(title=["a", "list"]),
    "github": lambda p: p["issue"].update(title=1347),
    "jira": lambda p: p["issue"]["fields"].update(summary={"text": "nested"}),
    "zendesk": lambda p: p["detail"].update(tags="refund"),
    "pagerduty": lambda p: p["event"]["data"].update(title=["not", "text"]),
    "alertmanager": lambda p: p["alerts"][0]["labels"].update(severity=5),
}


@pytest.mark.parametrize("name", SOURCES)
def test_a_value_of_the_wrong_type_is_a_422(
    name: str, client: TestClient, redis: fakeredis.FakeRedis
) -> None:
    """A number, list or object where text belongs: 422 with the field, not a 500."""
    body = payload(name)
    WRONG_TYPES[name](body)
    assert refused(client, name, body, redis)


@pytest.mark.parametrize(
    "error",
    [ValueError("Invalid IPv6 URL"), TypeError("bad"), KeyError("k"), OverflowError("big")],
    ids=["ValueError", "TypeError", "KeyError", "OverflowError"],
)
def test_any_mapping_error_of_any_adapter_becomes_a_422(error: Exception) -> None:
    """The one common place: an adapter tripping on a vendor value is the sender's 422."""

    class Tripping:
        name = "tripping"

        def authenticate(self, request: Incoming) -> None:
            """Accept everything."""

        def interpret(self, request: Incoming, payload: Any) -> Mapped:
            raise error

    request = Incoming({}, b"{}", now(), 300.0)
    with pytest.raises(Rejected) as caught:
        interpret(Tripping(), request, {}, EventWindow.of_seconds(300, 86400))
    assert caught.value.status == 422
    [named] = caught.value.errors or []
    assert named["field"] == "body"
    assert type(error).__name__ in named["message"]


def test_a_mapping_error_over_http_is_a_422_problem_not_a_500(
    client: TestClient, redis: fakeredis.FakeRedis, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Through the app's fast path too: a bug-shaped error in mapping answers 422."""

    def trip(*_: Any) -> Any:
        raise OverflowError("date value out of range")

    monkeypatch.setattr(JiraAdapter, "_event", trip)
    assert refused(client, "jira", payload("jira"), redis) == {"body"}


def test_a_management_key_with_a_nul_byte_is_a_4xx_not_a_500(
    client: TestClient, sessions: sessionmaker[Session]
) -> None:
    """GET /v1/issues/jira:OPS%00-1 (and an action on it) is refused before any query."""
    add_issue(sessions, "OPS-1")
    response = client.get("/v1/issues/jira:OPS%00-1", headers=AUTH)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["errors"][0]["field"] == "path: key"
    acted = client.post("/v1/issues/jira:OPS%00-1/acknowledge", headers=AUTH)
    assert acted.status_code == 422


def test_a_snooze_until_out_of_range_is_a_422_naming_until(
    client: TestClient, sessions: sessionmaker[Session], redis: fakeredis.FakeRedis
) -> None:
    """POST .../snooze with until 9999-12-31T23:59:59-01:00: 422 on `until`, nothing queued."""
    add_issue(sessions, "acme/app#1")
    response = client.post(
        "/v1/issues/github:acme/app%231/snooze", headers=AUTH, json={"until": BEYOND_9999}
    )
    assert response.status_code == 422, response.text
    assert [e["field"] for e in response.json()["errors"]] == ["until"]
    assert redis.xlen("escalator:events") == 0
