"""The console and API under hostile or heavy input: a malformed session cookie, an overflowing
or too long period, a second backtest while one runs, and the console's Redis client (one per
app, with socket timeouts)."""

from __future__ import annotations

import base64
import re
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import fakeredis
import pytest
from sqlalchemy import Engine
from starlette.testclient import TestClient

from config.settings import PACKAGED_POLICY, Settings
from worker.broker.connection import SOCKET_TIMEOUT_S
from worker.domain.clock import ManualClock
from worker.gateway import create_app
from worker.gateway.console.auth import COOKIE, Keys
from worker.services import backtest as backtest_service

from ..factories import T0

MGMT, VIEWER = "mgmt-token", "viewer-token"
BEARER = {"Authorization": f"Bearer {MGMT}", "Content-Type": "application/yaml"}


def settings(tmp_path: Path) -> Settings:
    values: dict[str, Any] = {
        "_env_file": None,
        "data_dir": tmp_path,
        "management_token": MGMT,
        "viewer_token": VIEWER,
    }
    return Settings(**values)


@pytest.fixture
def client(tmp_path: Path, server: fakeredis.FakeServer, engine: Engine) -> Iterator[TestClient]:
    """The gateway with the console, on SQLite and the fake Redis, its own Redis client left
    as `mount` builds it."""
    app = create_app(
        settings(tmp_path),
        lambda: fakeredis.FakeAsyncRedis(server=server, decode_responses=True),
        engine,
        ManualClock(T0),
    )
    with TestClient(app, raise_server_exceptions=False) as test_client:
        yield test_client


def sign_in(client: TestClient) -> None:
    response = client.post("/login", data={"token": MGMT, "name": "Ann"}, follow_redirects=False)
    assert response.status_code == 303, response.text


def test_the_console_redis_client_is_made_once_with_timeouts(client: TestClient) -> None:
    """Every request gets the same client, whose sockets time out (no hang on a dead Redis)."""
    console = client.app.state.console  # type: ignore[attr-defined]
    first, second = console.sync_redis(), console.sync_redis()
    assert first is second
    kwargs = first.connection_pool.connection_kwargs
    assert kwargs["socket_timeout"] == SOCKET_TIMEOUT_S
    assert kwargs.get("socket_connect_timeout") or kwargs["path"]  # TCP: connect timeout too


def test_the_operations_page_does_not_close_the_shared_client(
    client: TestClient, server: fakeredis.FakeServer
) -> None:
    """The Operations page and a replay use the app's client and leave it open for the next."""
    shared = fakeredis.FakeRedis(server=server, decode_responses=True)
    closed: list[bool] = []
    shared.close = lambda: closed.append(True)  # type: ignore[method-assign]
    client.app.state.console.sync_redis = lambda: shared  # type: ignore[attr-defined]
    sign_in(client)
    assert client.get("/operations").status_code == 200
    assert client.get("/operations").status_code == 200
    assert closed == []


@pytest.mark.parametrize("cookie", ["x.é", "x.\u00ff\u00fe", "é.x", "e30.x", "..", "x"])
def test_a_malformed_session_cookie_is_no_session(client: TestClient, cookie: str) -> None:
    """A cookie with non-ASCII characters (or otherwise malformed) is no session, not a 500:
    the sign-in page shows and a page sends to it."""
    raw = f"{COOKIE}={cookie}".encode()
    login = client.get("/login", headers={"cookie": raw})
    assert login.status_code == 200
    board = client.get("/", headers={"cookie": raw}, follow_redirects=False)
    assert board.status_code in (303, 307) and "/login" in board.headers["location"]


def test_a_signed_cookie_whose_payload_is_not_an_object_is_no_session(tmp_path: Path) -> None:
    """A correctly signed payload that is a JSON list, not an object, reads as no session."""
    keys = Keys(settings(tmp_path))
    body = base64.urlsafe_b64encode(b"[1, 2]").rstrip(b"=").decode()
    assert keys.read(f"{body}.{keys._sign(body)}", T0) is None
    assert keys.read("x.é", T0) is None


@pytest.mark.parametrize("since", ["99999999d", "401d"])
def test_a_report_period_overflowing_or_too_long_is_422(client: TestClient, since: str) -> None:
    """The API and the console answer 422 (not 500) to since=99999999d or 401 days by day."""
    api = client.get("/v1/reports/sla", params={"since": since, "by": "day"}, headers=BEARER)
    assert api.status_code == 422, api.text
    sign_in(client)
    page = client.get("/reports", params={"since": since, "by": "day"})
    assert page.status_code == 422
    export = client.get("/reports/sla.csv", params={"since": since, "by": "day"})
    assert export.status_code == 422


@pytest.mark.parametrize(
    "since", ["99999999999999d", "401d", (T0 - timedelta(days=500)).isoformat()]
)
def test_a_backtest_period_over_400_days_is_422(client: TestClient, since: str) -> None:
    """The backtest API refuses more than 400 days, or an overflowing span, with 422."""
    response = client.post(
        "/v1/policies/backtest",
        params={"since": since},
        content=PACKAGED_POLICY.read_text(),
        headers=BEARER,
    )
    assert response.status_code == 422, response.text


def test_a_second_backtest_while_one_runs_is_429(client: TestClient) -> None:
    """While a backtest holds the process's slot, the API and the console answer 429."""
    sign_in(client)
    form = client.get("/backtest").text
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', form)
    assert csrf
    assert backtest_service._RUNNING.acquire(blocking=False)
    try:
        api = client.post(
            "/v1/policies/backtest", content=PACKAGED_POLICY.read_text(), headers=BEARER
        )
        assert api.status_code == 429, api.text
        assert "already running" in api.json()["detail"]
        page = client.post(
            "/backtest",
            data={"policy": PACKAGED_POLICY.read_text(), "csrf_token": csrf.group(1)},
        )
        assert page.status_code == 429 and "already running" in page.text
    finally:
        backtest_service._RUNNING.release()
    again = client.post(
        "/v1/policies/backtest", content=PACKAGED_POLICY.read_text(), headers=BEARER
    )
    assert again.status_code == 200, again.text
