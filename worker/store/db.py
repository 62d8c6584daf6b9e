"""Engines and sessions. SQLite runs in WAL mode with IMMEDIATE write transactions."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import Session, sessionmaker

from worker.store.models import Base

SessionFactory = sessionmaker[Session]
READONLY = "escalator_readonly"


def normalize_url(url: str) -> str:
    """Prefer psycopg 3 for PostgreSQL URLs that name no driver."""
    for plain in ("postgresql://", "postgres://"):
        if url.startswith(plain):
            return "postgresql+psycopg://" + url[len(plain) :]
    return url


def _sqlite_setup(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _connect(dbapi_conn: Any, _: Any) -> None:
        dbapi_conn.isolation_level = None  # let SQLAlchemy's "begin" below own transactions
        cursor = dbapi_conn.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(conn: Any) -> None:
        # Writers take the lock up front (IMMEDIATE), so concurrent writers wait on busy_timeout
        # instead of failing with "database is locked" when a reader upgrades; readers never
        # take it, so a long write does not stall them (WAL).
        readonly = conn.get_execution_options().get(READONLY)
        conn.exec_driver_sql("BEGIN" if readonly else "BEGIN IMMEDIATE")


def make_engine(url: str, **kwargs: Any) -> Engine:
    """An engine for `url`, with the SQLite pragmas Escalator relies on."""
    url = normalize_url(url)
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": 30}, **kwargs)
        _sqlite_setup(engine)
        return engine
    return create_engine(url, pool_pre_ping=True, **kwargs)


def session_factory(engine: Engine) -> SessionFactory:
    """Sessions that keep loaded values after commit (they are read after the transaction)."""
    return sessionmaker(engine, expire_on_commit=False)


def reader_factory(engine: Engine) -> SessionFactory:
    """Sessions for queries only: on SQLite they never take the write lock."""
    return sessionmaker(engine.execution_options(**{READONLY: True}), expire_on_commit=False)


def create_all(engine: Engine) -> None:
    """Create the tables directly (unit tests); production uses `escalator db upgrade`."""
    Base.metadata.create_all(engine)
