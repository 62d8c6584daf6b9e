"""The backtest over HTTP: `POST /v1/policies/backtest` (token, YAML body, period in the query,
problems named) and the console's Backtest page (its form carries the CSRF token; a viewer may
run it; bad input is shown on the page), on a P1 issue applied through the ingest service under
the packaged policy (L1 5m, L2 10m: acknowledged at 12 min, it escalated once)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import fakeredis
import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker
from starlette.testclient import TestClient

from config.settings import PACKAGED_POLICY, Settings
from schemas.policy import PolicyFile
from worker.domain.clock import ManualClock
from worker.gateway import create_app
from worker.services.ingest import apply_batch
from worker.services.uow import Units

from ..factories import T0, event_json, minutes

MGMT, VIEWER = "mgmt-token", "viewer-token"
BEARER = {"Authorization": f"Bearer {MGMT}", "Content-Type": "application/yaml"}
# until just after the acknowledgement: nothing fired the resolve target's deadlines after it
PERIOD = {"since": (T0 - minutes(60)).isoformat(), "until": (T0 + minutes(13)).isoformat()}
TIGHTER = PACKAGED_POLICY.read_text().replace("within: 5m", "within: 1m", 1)


@pytest.fixture
def client(
    tmp_path: Path,
    server: fakeredis.FakeServer,
    engine: Engine,
    sessions: sessionmaker[Session],
    policies: PolicyFile,
) -> Iterator[TestClient]:
    """The gateway over one P1 issue, opened at T0 and acknowledged at 12 min."""
    clock = ManualClock(T0)
    opened = event_json(issue_id="OPS-1", at=T0)
    apply_batch(Units(sessions), [("1-0", opened)], policies, clock)
    clock.set(T0 + minutes(12))
    acked = event_json("issue.acknowledged", issue_id="OPS-1", at=T0 + minutes(12))
    apply_batch(Units(sessions), [("2-0", acked)], policies, clock)
    clock.set(T0 + minutes(24 * 60))
    values: dict[str, Any] = {
        "_env_file": None,
        "data_dir": tmp_path,
        "management_token": MGMT,
        "viewer_token": VIEWER,
    }
    app = create_app(
        Settings(**values),
        lambda: fakeredis.FakeAsyncRedis(server=server, decode_responses=True),
        engine,
        clock,
    )
    with TestClient(app, raise_server_exceptions=False) as test_client:
        yield test_client


def csrf_of(page: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert found, "no CSRF token on the page"
    return found.group(1)


def test_the_api_needs_a_token(client: TestClient) -> None:
    """Without a bearer, or with a wrong one, the backtest is a 401 problem."""
    body = PACKAGED_POLICY.read_text()
    assert client.post("/v1/policies/backtest", content=body).status_code == 401
    wrong = {"Authorization": "Bearer nope"}
    assert client.post("/v1/policies/backtest", content=body, headers=wrong).status_code == 401


def test_the_policy_in_force_reproduces_what_happened(client: TestClient) -> None:
    """The packaged policy, backtested over the issue's life: one escalation on both sides."""
    response = client.post(
        "/v1/policies/backtest", params=PERIOD, content=PACKAGED_POLICY.read_text(), headers=BEARER
    )
    assert response.status_code == 200, response.text
    report = response.json()
    assert report["differences"] == 0 and report["skipped"] == []
    assert report["real"]["escalations_by_tier"] == {"L2": 1}
    assert report["real"] == report["replayed"]


def test_a_tighter_policy_escalates_earlier_and_once_more(client: TestClient) -> None:
    """L1 within 1m: L2 at 1 min and L3 at 11 min, before the acknowledgement at 12."""
    response = client.post(
        "/v1/policies/backtest", params={**PERIOD, "top": 1}, content=TIGHTER, headers=BEARER
    )
    assert response.status_code == 200, response.text
    report = response.json()
    assert report["replayed"]["escalations_by_tier"] == {"L2": 1, "L3": 1}
    assert report["changed_issues"] == 1 and report["top"][0]["issue"] == "jira:OPS-1"
    assert report["top"][0]["real"] and report["top"][0]["replayed"]


@pytest.mark.parametrize(
    ("params", "body", "named"),
    [
        (PERIOD, "policies: [", "not valid YAML"),
        (PERIOD, "default: nope\npolicies: []\n", "policies"),
        ({"since": "3 days"}, PACKAGED_POLICY.read_text(), "since"),
        ({"since": "2026-01-02T00:00:00"}, PACKAGED_POLICY.read_text(), "time zone offset"),
        ({**PERIOD, "tz": "Mars/Olympus"}, PACKAGED_POLICY.read_text(), "unknown time zone"),
    ],
)
def test_bad_input_is_a_422_naming_it(
    client: TestClient, params: dict[str, str], body: str, named: str
) -> None:
    """A broken policy file, an unreadable period or zone: 422 problem+json saying which."""
    response = client.post("/v1/policies/backtest", params=params, content=body, headers=BEARER)
    assert response.status_code == 422
    assert response.headers["content-type"].startswith("application/problem+json")
    assert named in response.json()["detail"]


def test_a_viewer_runs_the_console_page_with_the_csrf_token(client: TestClient) -> None:
    """The Backtest page is in the menu; its form needs the session's CSRF token, and a
    read-only viewer may run it (it writes nothing); the comparison and the changed issue
    with both timelines are shown."""
    response = client.post("/login", data={"token": VIEWER}, follow_redirects=False)
    assert response.status_code == 303
    page = client.get("/backtest").text
    assert 'href="/backtest"' in page and 'name="policy"' in page
    form = {"policy": TIGHTER, **PERIOD, "tz": "UTC", "top": "3"}
    assert client.post("/backtest", data=form).status_code == 403
    shown = client.post("/backtest", data={**form, "csrf_token": csrf_of(page)})
    assert shown.status_code == 200, shown.text
    assert 'data-figure="differences"' in shown.text and "Escalations per tier" in shown.text
    assert "jira:OPS-1" in shown.text and "escalated to L3" in shown.text


def test_the_console_page_shows_a_bad_policy(client: TestClient) -> None:
    """A policy file that does not validate is shown on the page with a 422, not a crash."""
    client.post("/login", data={"token": MGMT, "name": "Ann"}, follow_redirects=False)
    token = csrf_of(client.get("/backtest").text)
    form = {"policy": "policies: [", "since": "30d", "csrf_token": token}
    shown = client.post("/backtest", data=form)
    assert shown.status_code == 422 and 'id="backtest-error"' in shown.text
    assert "not valid YAML" in shown.text
