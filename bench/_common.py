"""Shared helpers for the benchmarks: fresh stores, settings, baselines, printing.

Baselines are the "textbook Celery" figures measured on the 2-core reference machine and
recorded in DESIGN.md ("Facts measured on this 2-core machine"). The benchmarks print their
own figures next to these, as ratios; they never assert timings.
"""

from __future__ import annotations

import os
import platform
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from config.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # `python bench/x.py` from a checkout without an install
    sys.path.insert(0, str(ROOT))

DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/10"  # apart from the test databases (13-15)
DEFAULT_PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
PG_SCHEMA = "escalator_bench"  # our own schema, so nothing else in the database is touched
DEFAULT_POLICY = ROOT / "config" / "default_policy.yaml"

# DESIGN.md, "Facts measured on this 2-core machine (Redis 7, Celery 5.7)".
BASELINE_CELERY_EVENTS_PER_S = 493.0  # one task per event, SQLAlchemy upsert into SQLite, -c 2
BASELINE_CELERY_DELAY_PER_S = 1300.0  # producer .delay()
BASELINE_COUNTDOWN_RSS_MB = 932.0  # one worker holding 100,000 countdown tasks
BASELINE_COUNTDOWN_ABSORB_S = 110.0  # time for that worker to absorb them
BASELINE_COUNTDOWN_TASKS = 100_000


def header(title: str) -> None:
    """A banner with what ran where, so pasted output is self-describing."""
    print(f"== {title}")
    print(
        f"   {datetime.now(UTC).isoformat(timespec='seconds')}  host={platform.node()}  "
        f"cpus={os.cpu_count()}  python={platform.python_version()}"
    )


def row(label: str, value: str) -> None:
    print(f"   {label:<50} {value}")


def ratio(ours: float, baseline: float, higher_is_better: bool = True) -> str:
    """`x.xx x baseline`, phrased so that > 1 always means better than the baseline."""
    if ours <= 0 or baseline <= 0:
        return "n/a"
    if higher_is_better:
        return f"{ours / baseline:.2f}x the baseline ({ours:,.1f} vs {baseline:,.1f})"
    return f"{baseline / ours:.2f}x better than the baseline ({ours:,.1f} vs {baseline:,.1f})"


@contextmanager
def timed() -> Iterator[list[float]]:
    """`with timed() as t: ...` then `t[0]` holds the elapsed seconds."""
    box = [0.0]
    start = time.perf_counter()
    try:
        yield box
    finally:
        box[0] = time.perf_counter() - start


def flush_redis(url: str) -> None:
    from redis import Redis

    client = Redis.from_url(url)
    try:
        client.flushdb()
    finally:
        client.close()


def pg_url_with_schema(url: str, schema: str = PG_SCHEMA) -> str:
    """The URL, with every connection's search_path set to our schema (psycopg `options`)."""
    sep = "&" if "?" in url else "?"
    return f"{url}{sep}options=-csearch_path%3D{schema}"


def fresh_postgres(url: str, schema: str = PG_SCHEMA) -> str:
    """Drop and recreate our schema, migrate it to head; returns the URL that uses it."""
    from sqlalchemy import create_engine, text

    from worker.store.migrate import upgrade

    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    admin.dispose()
    scoped = pg_url_with_schema(url, schema)
    upgrade(scoped)
    return scoped


def drop_postgres_schema(url: str, schema: str = PG_SCHEMA) -> None:
    from sqlalchemy import create_engine, text

    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
    admin.dispose()


def fresh_sqlite(directory: Path) -> str:
    """A new SQLite file in `directory`, migrated to head; returns its URL."""
    from worker.store.migrate import upgrade

    url = f"sqlite:///{directory / 'bench.db'}"
    upgrade(url)
    return url


def without_calendars(folder: Path) -> Path:
    """A copy of the default policy whose targets all run 24x7 (for the comparison run)."""
    text = DEFAULT_POLICY.read_text()
    text = text.replace(", calendar: office}", "}").replace("      calendar: office\n", "")
    path = folder / "policy_24x7.yaml"
    path.write_text(text)
    return path


def make_settings(redis_url: str, database_url: str, **extra: Any) -> Settings:
    """Settings for a benchmark: no `.env`, the packaged default policy, WARNING logs."""
    from config.settings import Settings

    values: dict[str, Any] = {
        "redis_url": redis_url,
        "database_url": database_url,
        "policy_file": DEFAULT_POLICY,
        "log_level": "WARNING",
        **extra,
    }
    return Settings(_env_file=None, **values)


def quiet_logging() -> None:
    """Benchmarks print their own figures; keep structlog and stdlib logging at WARNING."""
    import logging

    import structlog

    logging.basicConfig(level=logging.WARNING)
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
