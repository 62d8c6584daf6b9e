"""Health endpoints: /healthz alive, /readyz Redis + database + migrations, /health/engine the
canary."""

from __future__ import annotations

import time
from pathlib import Path

import fakeredis
import pytest
from alembic import command
from sqlalchemy import Engine, text
from starlette.testclient import TestClient

from config.settings import Settings
from worker.broker import canary
from worker.gateway import create_app
from worker.store.migrate import alembic_config


def _broken_redis() -> fakeredis.FakeAsyncRedis:
    server = fakeredis.FakeServer()
    server.connected = False  # every command raises ConnectionError
    return fakeredis.FakeAsyncRedis(server=server, decode_responses=True)


def test_healthz_only_says_the_process_is_alive(client: TestClient) -> None:
    """/healthz answers 200 whatever Redis and the database do (not migrated here)."""
    answer = client.get("/healthz")
    assert answer.status_code == 200 and answer.json() == {"status": "alive"}


def test_readyz_names_migrations_behind(client: TestClient) -> None:
    """Tables made without Alembic: Redis and the database answer, the migrations are not at
    head: 503 naming them."""
    answer = client.get("/readyz")
    assert answer.status_code == 503
    body = answer.json()
    assert body["failed"] == ["migrations"] and body["redis"] == body["database"] == "ok"
    assert body["migrations"].startswith("behind:")


def test_readyz_is_ready_at_head(client: TestClient, engine: Engine) -> None:
    """Redis answers, the database answers and its schema is at head: 200."""
    command.stamp(alembic_config(str(engine.url)), "head")
    answer = client.get("/readyz")
    assert answer.status_code == 200, answer.json()
    assert answer.json()["status"] == "ready"


def test_readyz_is_ready_when_a_newer_release_migrated_the_database(
    client: TestClient, engine: Engine
) -> None:
    """A rolling upgrade: the database is at a revision this code does not know (ahead of its
    head): the running api stays ready rather than leaving the load balancer with none."""
    command.stamp(alembic_config(str(engine.url)), "head")
    with engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '9999_from_a_newer_release'"))
    answer = client.get("/readyz")
    assert answer.status_code == 200, answer.json()


def test_readyz_and_engine_name_redis_when_it_is_away(engine: Engine, tmp_path: Path) -> None:
    """Redis away: /readyz 503 with `redis` among the failed checks; /health/engine 503 saying
    Redis is unreachable; /healthz still 200."""
    settings = Settings(_env_file=None, data_dir=tmp_path)
    with TestClient(create_app(settings, _broken_redis, engine)) as client:
        answer = client.get("/readyz")
        assert answer.status_code == 503 and "redis" in answer.json()["failed"]
        answer = client.get("/health/engine")
        assert answer.status_code == 503 and "redis unreachable" in answer.json()["reason"]
        assert client.get("/healthz").status_code == 200


def test_engine_is_unhealthy_until_a_canary_fires(
    client: TestClient, server: fakeredis.FakeServer
) -> None:
    """No canary: 503 saying so; a canary fired just now, 0.3 s late: 200 with its lateness."""
    answer = client.get("/health/engine")
    assert answer.status_code == 503
    assert answer.json()["reason"] == "no canary fired yet"
    now = time.time()
    canary.record(fakeredis.FakeRedis(server=server), [canary.canary_id(now - 0.3)], now)
    answer = client.get("/health/engine")
    assert answer.status_code == 200, answer.json()
    body = answer.json()
    assert body["status"] == "healthy" and body["lateness_s"] == pytest.approx(0.3, abs=0.01)
    assert body["last_fired_at"] and body["window_s"] == 3 * 5.0 + 10.0


def test_engine_is_unhealthy_when_canaries_stopped(
    client: TestClient, server: fakeredis.FakeServer
) -> None:
    """The last canary fired longer ago than the window: 503 saying how long ago."""
    then = time.time() - 120
    canary.record(fakeredis.FakeRedis(server=server), [canary.canary_id(then)], then)
    answer = client.get("/health/engine")
    assert answer.status_code == 503 and "ago" in answer.json()["reason"]
