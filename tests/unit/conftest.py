"""Unit-test fixtures: a manual clock, the packaged policies, SQLite in tmp_path, fakeredis."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import fakeredis
import httpx
import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from config.settings import DEMO_POLICY, PACKAGED_POLICY, Settings
from schemas.policy import PolicyFile
from tests.support.posters import HttpxPoster
from worker.bootstrap import Container
from worker.broker.celery_app import app
from worker.broker.deadline_index import DeadlineIndex
from worker.broker.effects import BrokerEffects, Tasks
from worker.broker.inflight import InFlight
from worker.broker.leases import Keepers
from worker.domain.clock import ManualClock
from worker.services.policy_loader import load_policy
from worker.services.uow import Units
from worker.store.db import create_all, make_engine, session_factory

from .factories import T0


@pytest.fixture
def clock() -> ManualClock:
    """A clock standing at T0 until a test moves it."""
    return ManualClock(T0)


@pytest.fixture(scope="session")
def policies() -> PolicyFile:
    """The packaged default policy (P1 ladder L1 5m, L2 10m, L3 15m, manager 15m)."""
    return load_policy(PACKAGED_POLICY)


@pytest.fixture(scope="session")
def demo_policies() -> PolicyFile:
    """The packaged demo policy (tiers lasting seconds)."""
    return load_policy(DEMO_POLICY)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """Settings that read no environment file, with a short delivery ladder."""
    return Settings(
        _env_file=None,
        data_dir=tmp_path,
        delivery_max_attempts=3,
        delivery_backoff_s=2.0,
        delivery_backoff_max_s=60.0,
        delivery_lease_s=30.0,
    )


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    """A SQLite file in tmp_path with every table created."""
    eng = make_engine(f"sqlite:///{tmp_path / 'unit.db'}")
    create_all(eng)
    yield eng
    eng.dispose()


@pytest.fixture
def sessions(engine: Engine) -> sessionmaker[Session]:
    """Sessions on the tmp SQLite file."""
    return session_factory(engine)


@pytest.fixture
def server() -> fakeredis.FakeServer:
    """One fake Redis server; clients made on it share its data."""
    return fakeredis.FakeServer()


@pytest.fixture
def redis(server: fakeredis.FakeServer) -> Iterator[fakeredis.FakeRedis]:
    """A fake Redis client that returns str, as production's connection does."""
    client = fakeredis.FakeRedis(server=server, decode_responses=True)
    yield client
    client.close()


@pytest.fixture
def container(
    settings: Settings,
    clock: ManualClock,
    engine: Engine,
    sessions: sessionmaker[Session],
    redis: fakeredis.FakeRedis,
    policies: PolicyFile,
) -> Iterator[Container]:
    """A Container built by hand: fakeredis, SQLite, the default policy, no channels."""
    http = httpx.Client()
    index, marks, tasks = DeadlineIndex(redis), InFlight(redis), Tasks(app)
    yield Container(
        settings=settings,
        clock=clock,
        engine=engine,
        sessions=sessions,
        readers=sessions,
        redis=redis,
        index=index,
        policies=policies,
        channels={},
        http=http,
        poster=HttpxPoster(http),
        tasks=tasks,
        marks=marks,
        units=Units(sessions, BrokerEffects(index, marks, tasks, clock, settings)),
        keepers=Keepers.of(
            index, marks, clock, settings.scheduler_lease_s, settings.delivery_running_lease_s
        ),
    )
    http.close()


@pytest.fixture
def cli_tasks(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> list[tuple[str, Any]]:
    """The CLI on the unit test's SQLite file (no other ESCALATOR_ setting, no logging set-up),
    the Celery tasks it sends recorded instead of sent: (name, args) each."""
    from worker.cli import main as cli
    from worker.cli import notifications

    for name in list(os.environ):
        if name.startswith("ESCALATOR_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("ESCALATOR_DATABASE_URL", f"sqlite:///{tmp_path / 'unit.db'}")
    monkeypatch.setattr(cli, "configure_logging", lambda _settings: None)
    monkeypatch.setattr(notifications, "configure", lambda _settings: None)
    sent: list[tuple[str, Any]] = []
    monkeypatch.setattr(app, "send_task", lambda name, args: sent.append((name, args)))
    return sent
