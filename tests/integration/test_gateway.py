"""The gateway end to end: signed webhooks over real HTTP to `escalator api`, real roles behind."""

from __future__ import annotations

import socket
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from tests.support import webhooks as wh
from tests.support.fixtures import StackFactory

pytestmark = pytest.mark.integration

TIER_S = 4.0  # GitHub times are whole seconds: leave ingest time to arm the deadline
ISSUE = "octocat/Hello-World#1347"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_signed_github_p1_escalates_on_time_and_closing_resolves_it(
    make_stack: StackFactory,
) -> None:
    """issues.opened (label P1) → 202, escalates L1 → L2 on time; issues.closed resolves it."""
    port = free_port()
    stack = make_stack(
        roles=("api", "ingest", "scheduler", "worker"),
        tier_s=TIER_S,
        ESCALATOR_API_PORT=str(port),
        ESCALATOR_SOURCES=wh.sources_env(),
    )
    base = f"http://127.0.0.1:{port}"
    opened_at = datetime.now(UTC).replace(microsecond=0)
    opened = wh.sample("github_issues_opened")
    opened["issue"]["created_at"] = opened["issue"]["updated_at"] = opened_at.isoformat()
    with httpx.Client(base_url=base, timeout=10) as http:
        signed = wh.github(opened, delivery="it-opened")
        response = http.post(signed.path, content=signed.body, headers=signed.headers)
        assert response.status_code == 202, response.text
        assert response.json()["event_ids"] == ["github:it-opened"]
        repeat = http.post(signed.path, content=signed.body, headers=signed.headers)
        assert repeat.status_code == 200 and repeat.json()["status"] == "duplicate"

        def tier() -> str | None:
            issue = stack.issue(ISSUE, source="github")
            return issue.tier if issue else None

        stack.wait_for(lambda: tier() == "L2", 30, "the P1 to escalate to L2")
        issue = stack.issue(ISSUE, source="github")
        assert issue is not None and issue.severity == "P1"
        fired = [d for d in stack.deadlines(ISSUE) if d.kind == "escalate" and d.fired_at]
        assert fired[0].due_at == opened_at + timedelta(seconds=TIER_S)
        assert fired[0].fired_at is not None and fired[0].fired_at >= fired[0].due_at

        closed = wh.sample("github_issues_closed")
        closed_at = (datetime.now(UTC) + timedelta(seconds=1)).replace(microsecond=0)
        closed["issue"]["created_at"] = opened_at.isoformat()
        closed["issue"]["closed_at"] = closed["issue"]["updated_at"] = closed_at.isoformat()
        signed = wh.github(closed, delivery="it-closed")
        response = http.post(signed.path, content=signed.body, headers=signed.headers)
        assert response.status_code == 202, response.text

        def lifecycle() -> str | None:
            issue = stack.issue(ISSUE, source="github")
            return issue.lifecycle if issue else None

        stack.wait_for(lambda: lifecycle() == "resolved", 15, "issues.closed to resolve it")
        assert not [d for d in stack.deadlines(ISSUE) if d.state == "armed"]

        detail = http.get(
            "/v1/issues/github:octocat/Hello-World%231",
            headers={"authorization": f"Bearer {wh.TOKEN}"},
        )
        assert detail.status_code == 401  # no API token configured for this stack


def test_management_acknowledge_goes_through_the_stream(make_stack: StackFactory) -> None:
    """POST /v1/issues/{key}/acknowledge over HTTP stops the ladder of a webhook-opened issue."""
    port = free_port()
    stack = make_stack(
        roles=("api", "ingest", "scheduler", "worker"),
        tier_s=5.0,
        ESCALATOR_API_PORT=str(port),
        ESCALATOR_API_TOKEN=wh.TOKEN,
        ESCALATOR_SOURCES=wh.sources_env(),
    )
    auth = {"authorization": f"Bearer {wh.TOKEN}"}
    payload = wh.sample("pagerduty_incident_triggered")
    payload["event"]["occurred_at"] = datetime.now(UTC).isoformat()
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as http:
        signed = wh.pagerduty(payload)
        assert (
            http.post(signed.path, content=signed.body, headers=signed.headers).status_code == 202
        )
        key = "pagerduty:Q3BYBG2P0B6NYN"
        stack.wait_for(
            lambda: http.get(f"/v1/issues/{key}", headers=auth).status_code == 200, 15, "opened"
        )
        response = http.post(f"/v1/issues/{key}/acknowledge", headers=auth)
        assert response.status_code == 202, response.text
        stack.wait_for(
            lambda: (
                http.get(f"/v1/issues/{key}", headers=auth).json()["lifecycle"] == "acknowledged"
            ),
            15,
            "the acknowledgement to apply",
        )
        body = http.get(f"/v1/issues/{key}", headers=auth).json()
        assert body["tier"] == "L1"
        assert {d["kind"]: d["state"] for d in body["deadlines"]}["escalate"] == "cancelled"
