"""Engines and sessions. SQLite runs in WAL mode with one writer at a time.

SQLite has one write lock per database. A writer that finds it taken waits in SQLite's busy
handler, which polls with sleeps growing to 100 ms: under load the ingest role, the firing
workers and the deliveries each wait far longer than the transactions they wait for last, and
a writer can be passed over again and again. So every write transaction first takes an
exclusive `flock` on a file beside the database (`<db>.writer.lock`): the kernel wakes a waiter
the moment the lock is released, and the lock goes with a process that dies. Readers never
take it (WAL lets them read beside the writer).
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any
from urllib.parse import quote

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import Session, sessionmaker

from worker.store.models import Base

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX: writers wait in SQLite's busy handler
    fcntl = None  # type: ignore[assignment]

SessionFactory = sessionmaker[Session]
READONLY = "escalator_readonly"


def normalize_url(url: str) -> str:
    """Prefer psycopg 3 for PostgreSQL URLs that name no driver."""
    for plain in ("postgresql://", "postgres://"):
        if url.startswith(plain):
            return "postgresql+psycopg://" + url[len(plain) :]
    return url


def _sqlite_setup(engine: Engine, path: str | None, readonly: bool = False) -> None:
    lock_path = f"{path}.writer.lock" if path and fcntl is not None else None

    @event.listens_for(engine, "connect")
    def _connect(dbapi_conn: Any, record: Any) -> None:
        dbapi_conn.isolation_level = None  # let SQLAlchemy's "begin" below own transactions
        cursor = dbapi_conn.cursor()
        if not readonly:  # WAL is kept in the file: a reader neither can nor needs to set it
            cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()
        if lock_path:
            record.info[_LOCK_FILE] = open(lock_path, "a")  # noqa: SIM115 (closed with it)

    @event.listens_for(engine, "close")
    def _close(dbapi_conn: Any, record: Any) -> None:
        if lock := record.info.pop(_LOCK_FILE, None):
            lock.close()  # also releases a lock still held

    @event.listens_for(engine, "begin")
    def _begin(conn: Any) -> None:
        # Writers take the lock up front (IMMEDIATE), after the writers' flock, so they never
        # fail with "database is locked" when a reader upgrades; readers take neither, so a
        # long write does not stall them (WAL).
        readonly = conn.get_execution_options().get(READONLY)
        lock = None if readonly else conn.info.get(_LOCK_FILE)
        if lock is not None and not getattr(_writing, "held", False):
            # (a thread writing on a second connection meanwhile waits in SQLite's busy
            # handler, as before: waiting on its own flock would never end)
            fcntl.flock(lock, fcntl.LOCK_EX)
            conn.info[_HELD] = _writing.held = True
        try:
            conn.exec_driver_sql("BEGIN" if readonly else "BEGIN IMMEDIATE")
        except BaseException:
            _release(conn.info)
            raise

    @event.listens_for(engine, "commit")
    def _commit(conn: Any) -> None:
        if conn.info.get(_HELD):
            # commit now, then let the next writer in (the driver's own commit after this
            # event finds no transaction open and does nothing)
            try:
                conn.connection.dbapi_connection.execute("COMMIT")
            finally:
                _release(conn.info)

    @event.listens_for(engine, "rollback")
    def _rollback(conn: Any) -> None:
        if conn.info.get(_HELD):
            try:
                if conn.connection.dbapi_connection.in_transaction:
                    conn.connection.dbapi_connection.execute("ROLLBACK")
            finally:
                _release(conn.info)

    @event.listens_for(engine, "reset")
    def _reset(dbapi_conn: Any, record: Any, reset_state: Any) -> None:
        _release(record.info)  # back to the pool: never holding the writers' lock


_LOCK_FILE, _HELD = "escalator_writer_lock", "escalator_writer_lock_held"


_writing = threading.local()  # `held`: this thread holds the writers' flock


def _release(info: dict[str, Any]) -> None:
    if info.pop(_HELD, False) and (lock := info.get(_LOCK_FILE)):
        _writing.held = False
        fcntl.flock(lock, fcntl.LOCK_UN)


def make_engine(url: str, **kwargs: Any) -> Engine:
    """An engine for `url`, with the SQLite pragmas Escalator relies on."""
    url = normalize_url(url)
    if url.startswith("sqlite"):
        path: str | None = url.split("///", 1)[-1].split("?", 1)[0]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        else:
            path = None
        engine = create_engine(url, connect_args={"timeout": 30}, **kwargs)
        _sqlite_setup(engine, path)
        return engine
    return create_engine(url, pool_pre_ping=True, **kwargs)


def make_reader_engine(url: str) -> Engine:
    """An engine that only reads. On SQLite the file is opened read-only (`mode=ro`): a command
    that only looks never creates the database, its folder or the writers' lock file; a file
    that is not there fails to open ("unable to open database file")."""
    url = normalize_url(url)
    path = url.split("///", 1)[-1] if url.startswith("sqlite:///") else ""
    if not path or "?" in path or path == ":memory:":
        return make_engine(url)
    readonly = f"sqlite:///file:{quote(path)}?mode=ro&uri=true"
    engine = create_engine(readonly, connect_args={"timeout": 30})
    _sqlite_setup(engine, None, readonly=True)  # no writers' lock: it never writes
    return engine


def session_factory(engine: Engine) -> SessionFactory:
    """Sessions that keep loaded values after commit (they are read after the transaction)."""
    return sessionmaker(engine, expire_on_commit=False)


def reader_factory(engine: Engine) -> SessionFactory:
    """Sessions for queries only: on SQLite they never take the write lock."""
    return sessionmaker(engine.execution_options(**{READONLY: True}), expire_on_commit=False)


def create_all(engine: Engine) -> None:
    """Create the tables directly (unit tests); production uses `escalator db upgrade`."""
    Base.metadata.create_all(engine)
