"""The textbook Celery design that DESIGN.md's baseline describes, as a Celery app of its own.

One task per event, each doing one SQLAlchemy upsert (`INSERT ... ON CONFLICT DO UPDATE`) of the
issue row into SQLite (WAL), under `celery worker -P prefork -c 2`. `_textbook.py` runs it.
Nothing here imports the product.

Configured through the environment (the worker is a subprocess):
    TEXTBOOK_BROKER_URL     the private redis-server `_textbook.py` started
    TEXTBOOK_DATABASE_URL   sqlite:///... of a fresh file (the table is created by `_textbook.py`)

The only addition to the textbook row is `version`, incremented by every upsert: the sum over
the table is the number of events applied, which is how the benchmark knows when all N are
committed (and that none was applied twice). Each worker process notes, once, the wall-clock
time its first task started (HSETNX on `FIRST_STARTED`), so the timing starts there.
"""

from __future__ import annotations

import os
import time
from datetime import datetime
from typing import Any

from celery import Celery
from redis import Redis
from sqlalchemy import DateTime, String, UniqueConstraint, create_engine, event
from sqlalchemy.dialects.sqlite import insert
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, sessionmaker

QUEUE = "textbook"
TASK = "textbook.upsert_issue"
FIRST_STARTED = "textbook:first-started"  # hash: worker pid -> time.time() of its first task

app = Celery("textbook")
app.conf.update(
    broker_url=os.environ.get("TEXTBOOK_BROKER_URL", "memory://"),
    task_default_queue=QUEUE,
    task_serializer="json",
    accept_content=["json"],
    task_ignore_result=True,
    broker_connection_retry_on_startup=True,
    worker_hijack_root_logger=False,
)


class Base(DeclarativeBase):
    pass


class Issue(Base):
    __tablename__ = "issues"
    __table_args__ = (UniqueConstraint("source", "external_id", name="uq_issue_source_external"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    source: Mapped[str] = mapped_column(String(32))
    external_id: Mapped[str] = mapped_column(String(128))
    severity: Mapped[str] = mapped_column(String(8))
    status: Mapped[str] = mapped_column(String(32))
    title: Mapped[str] = mapped_column(String(500))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    version: Mapped[int] = mapped_column(default=1)


def make_engine(url: str) -> Engine:
    """SQLite with the pragmas Escalator's own engine uses (WAL, synchronous=NORMAL, a 30 s busy
    timeout), so the comparison is between designs, not fsync settings."""
    engine = create_engine(url, connect_args={"timeout": 30})

    @event.listens_for(engine, "connect")
    def _pragmas(dbapi_conn: Any, _: Any) -> None:
        cursor = dbapi_conn.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    return engine


# Created at import, before prefork forks; the pool connects lazily, in each child.
engine = make_engine(os.environ.get("TEXTBOOK_DATABASE_URL", "sqlite://"))
SessionLocal = sessionmaker(engine)

_first_noted = False


def _note_first_start() -> None:
    global _first_noted
    if _first_noted:
        return
    _first_noted = True
    now = time.time()
    with Redis.from_url(app.conf.broker_url) as client:
        client.hsetnx(FIRST_STARTED, str(os.getpid()), repr(now))


@app.task(name=TASK)
def upsert_issue(event: dict[str, Any]) -> None:
    _note_first_start()
    issue = event["issue"]
    stmt = insert(Issue).values(
        source=event["source"],
        external_id=issue["id"],
        severity=issue["severity"],
        status=issue["status"],
        title=issue["title"],
        updated_at=datetime.fromisoformat(event["occurred_at"]),
        version=1,
    )
    stmt = stmt.on_conflict_do_update(
        index_elements=[Issue.source, Issue.external_id],
        set_={
            "severity": stmt.excluded.severity,
            "status": stmt.excluded.status,
            "title": stmt.excluded.title,
            "updated_at": stmt.excluded.updated_at,
            "version": Issue.version + 1,
        },
    )
    session: Session
    with SessionLocal() as session:
        session.execute(stmt)
        session.commit()
