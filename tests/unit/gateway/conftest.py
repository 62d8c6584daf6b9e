"""Gateway fixtures: the app in-process on fakeredis (shared with a sync client) and SQLite."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import fakeredis
import pytest
from sqlalchemy import Engine
from starlette.testclient import TestClient

from config.settings import Settings
from schemas.events import IssueEvent
from tests.support.streams import entries
from tests.support.webhooks import TOKEN, Signed, sources_env
from worker.broker.keys import STREAM, STREAM_FIELD
from worker.gateway import create_app

MakeClient = Callable[..., TestClient]


@pytest.fixture
def make_client(
    tmp_path: Path, server: fakeredis.FakeServer, engine: Engine
) -> Iterator[MakeClient]:
    """Build the gateway with every source configured (overridable) on the shared fake Redis."""
    clients: list[TestClient] = []

    def _make(**overrides: Any) -> TestClient:
        values: dict[str, Any] = {
            "_env_file": None,
            "data_dir": tmp_path,
            "api_token": TOKEN,
            "sources": json.loads(sources_env()),
            # the vendor samples in tests/fixtures/webhooks are dated 2026-11-23: they must
            # not age out of the event window as the years pass
            "event_max_age_s": 50 * 366 * 86400.0,
        }
        values.update(overrides)
        settings = Settings(**values)
        app = create_app(
            settings,
            lambda: fakeredis.FakeAsyncRedis(server=server, decode_responses=True),
            engine,
        )
        client = TestClient(app, raise_server_exceptions=False)
        clients.append(client)
        return client

    yield _make
    for client in clients:
        client.close()


@pytest.fixture
def client(make_client: MakeClient) -> TestClient:
    """The gateway with every source configured."""
    return make_client()


def post(client: TestClient, signed: Signed) -> Any:
    return client.post(signed.path, content=signed.body, headers=signed.headers)


def stream_events(redis: fakeredis.FakeRedis) -> list[IssueEvent]:
    """Every event on the stream, oldest first."""
    return [
        IssueEvent.model_validate_json(fields[STREAM_FIELD])
        for _, fields in entries(redis.xrange(STREAM))
    ]
