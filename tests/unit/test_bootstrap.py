"""The builders of worker/bootstrap.py close what they open, and CLI commands leave no engine."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import pytest
from rich.console import Console
from sqlalchemy import Engine, event, select, text
from sqlalchemy.pool import Pool
from starlette.testclient import TestClient
from typer.testing import CliRunner

from config.settings import Settings
from worker import bootstrap
from worker.cli import inspect
from worker.cli import main as cli
from worker.store.models import Issue


@pytest.fixture
def connections() -> Iterator[list[Any]]:
    """The DBAPI connections any pool has opened and not yet closed while the test runs."""
    open_: list[Any] = []

    def opened(dbapi_conn: Any, _record: Any) -> None:
        open_.append(dbapi_conn)

    def closed(dbapi_conn: Any, _record: Any) -> None:
        if dbapi_conn in open_:  # not one the fixtures opened before the test
            open_.remove(dbapi_conn)

    event.listen(Pool, "connect", opened)
    event.listen(Pool, "close", closed)
    yield open_
    event.remove(Pool, "connect", opened)
    event.remove(Pool, "close", closed)


@pytest.fixture
def on_unit_db(settings: Settings, engine: Engine, tmp_path: Path) -> Settings:
    """Settings pointing at the unit test's SQLite file (its tables created)."""
    return settings.model_copy(update={"database_url": f"sqlite:///{tmp_path / 'unit.db'}"})


def test_readers_dispose_their_engine(on_unit_db: Settings, connections: list[Any]) -> None:
    """`readers()` opens a connection for a query and closes it when the block ends."""
    with bootstrap.readers(on_unit_db) as sessions:
        with sessions() as session:
            assert session.scalars(select(Issue)).all() == []
        assert len(connections) == 1  # pooled while the block runs
    assert connections == []


def test_store_writes_and_reads_then_disposes(on_unit_db: Settings, connections: list[Any]) -> None:
    """`store()` gives writer and reader sessions on one engine, disposed on exit."""
    with bootstrap.store(on_unit_db) as db:
        with db.sessions() as session, session.begin():
            session.execute(text("CREATE TABLE scratch (n INTEGER)"))
            session.execute(text("INSERT INTO scratch VALUES (7)"))
        with db.readers() as session:
            assert session.scalar(text("SELECT n FROM scratch")) == 7
    assert connections == []


def test_store_disposes_when_the_block_fails(on_unit_db: Settings, connections: list[Any]) -> None:
    """An exception inside the block still disposes the engine."""
    with pytest.raises(RuntimeError), bootstrap.readers(on_unit_db) as sessions:
        with sessions() as session:
            session.execute(text("SELECT 1"))
        raise RuntimeError("the command failed")
    assert connections == []


def test_redis_client_is_closed_on_exit(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`redis_client()` connects to the configured URL and closes the client afterwards."""

    class Client:
        closed = False

        def close(self) -> None:
            self.closed = True

    made: list[tuple[str, Client]] = []

    def connect(url: str) -> Client:
        made.append((url, Client()))
        return made[-1][1]

    monkeypatch.setattr(bootstrap, "connect", connect)
    with bootstrap.redis_client(settings) as opened:
        assert not made[0][1].closed
    client = cast(Client, opened)  # `connect` is patched: what it opened is the fake
    assert made == [(settings.resolved_redis_url(), client)] and client.closed


def test_api_app_disposes_its_engine_at_shutdown(
    on_unit_db: Settings, connections: list[Any]
) -> None:
    """The api app's readiness check reads the database; shutting the app down closes it."""
    with TestClient(bootstrap.api_app(on_unit_db)) as client:
        health = client.get("/readyz").json()
        assert health["database"] == "ok"
        assert connections
    assert connections == []


@pytest.fixture
def cli_env(cli_tasks: list[Any], monkeypatch: pytest.MonkeyPatch, engine: Engine) -> None:
    """The CLI on the unit test's SQLite file (tables created), its tables wide."""
    monkeypatch.setattr(inspect, "console", Console(width=300))


@pytest.mark.parametrize(
    ("argv", "code"),
    [
        (["issues", "--all"], 0),
        (["show", "jira:OPS-1"], 1),
        (["notifications", "list"], 0),
        (["notifications", "retry", "msg_nothing"], 1),
    ],
)
def test_cli_commands_leave_no_connection_open(
    cli_env: None, connections: list[Any], argv: list[str], code: int
) -> None:
    """Each database command of the CLI disposes the engine it opened before it returns."""
    result = CliRunner().invoke(cli.app, argv)
    assert result.exit_code == code, result.output
    assert connections == []
