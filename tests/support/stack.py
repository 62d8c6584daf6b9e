"""The real roles as separate processes, for integration and fault tests.

Each role runs as `python -m worker.cli.main ROLE` in its own session (so a SIGKILL can take a
Celery worker's whole process tree), with a clean ESCALATOR_* environment and its log in a file.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any, ClassVar, TypeVar

from redis import Redis
from sqlalchemy import func, select

from schemas.events import IssueEvent
from worker.broker.producer import Producer
from worker.store.db import make_engine, reader_factory
from worker.store.models import Deadline, Issue, OutboxMessage, ProcessedEvent, TimelineEntry

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
T = TypeVar("T")
R = TypeVar("R", Deadline, OutboxMessage)
_ids = itertools.count(1)


def write_policy(
    path: Path, tier_s: float = 2.0, webhook_url: str | None = None, resolve_s: float | None = None
) -> Path:
    """A four-tier policy whose tiers last `tier_s` seconds; optionally a signed webhook channel."""
    channels = "  log: {type: log}\n"
    tier_channels = "[log]"
    if webhook_url:
        channels += f"  sink: {{type: webhook, url: '{webhook_url}', secret: sink, timeout: 20s}}\n"
        tier_channels = "[log, sink]"
    resolve = f"    resolve: {{within: {resolve_s}s}}\n" if resolve_s else ""
    ladder = "".join(
        f"        - {{tier: {t}, within: {tier_s}s}}\n" for t in ("L1", "L2", "L3", "manager")
    )
    path.write_text(
        "version: 1\nchannels:\n"
        + channels
        + "tiers:\n"
        + "".join(
            f"  - {{name: {t}, assignee: {t.lower()}-oncall, channels: {tier_channels}}}\n"
            for t in ("L1", "L2", "L3", "manager")
        )
        + "policies:\n  - name: fast\n    acknowledge:\n      ladder:\n"
        + ladder
        + f"      renotify_every: {tier_s * 10}s\n"
        + resolve
        + "default: fast\n"
    )
    return path


def event(
    kind: str,
    issue: str,
    at: datetime | None = None,
    severity: str = "P1",
    event_id: str | None = None,
    source: str = "test",
    **snapshot: Any,
) -> IssueEvent:
    """An IssueEvent with sensible defaults."""
    return IssueEvent.model_validate(
        {
            "event_id": event_id or f"ev-{os.getpid()}-{next(_ids)}",
            "type": kind,
            "occurred_at": (at or datetime.now(UTC)).isoformat(),
            "source": source,
            "issue": {"id": issue, "severity": severity, "title": f"{issue} title", **snapshot},
        }
    )


@dataclass
class Stack:
    """Role processes against one Redis and one database, plus ways to look at both."""

    tmp: Path
    redis_url: str
    database_url: str
    policy_file: Path
    env_extra: dict[str, str] = field(default_factory=dict)
    procs: list[tuple[str, subprocess.Popen[bytes]]] = field(default_factory=list)
    ready_counts: list[int] = field(default_factory=list)  # " ready." lines each process owes

    def __post_init__(self) -> None:
        self.engine = make_engine(self.database_url)
        self.sessions = reader_factory(self.engine)
        self.redis = Redis.from_url(self.redis_url, decode_responses=True)
        self.producer = Producer(self.redis)

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("ESCALATOR_")}
        env.update(
            ESCALATOR_REDIS_URL=self.redis_url,
            ESCALATOR_DATABASE_URL=self.database_url,
            ESCALATOR_POLICY_FILE=str(self.policy_file),
            ESCALATOR_DATA_DIR=str(self.tmp / "data"),
            ESCALATOR_LOG_FORMAT="json",
            ESCALATOR_SECRETS=f'{{"sink": "{SECRET}"}}',
            ESCALATOR_SCHEDULER_LEASE_S="3",
            ESCALATOR_RECONCILE_EVERY_S="2",
            ESCALATOR_OUTBOX_SWEEP_EVERY_S="1",
            ESCALATOR_DELIVERY_LEASE_S="3",
            ESCALATOR_DELIVERY_BACKOFF_S="0.2",
            ESCALATOR_DELIVERY_BACKOFF_MAX_S="1",
            ESCALATOR_INGEST_CLAIM_IDLE_MS="2000",
            ESCALATOR_INGEST_BLOCK_MS="200",
        )
        env.update(self.env_extra)
        return env

    def start(self, role: str, *args: str) -> subprocess.Popen[bytes]:
        """Start one role process (`escalator ROLE ARGS...`); its output goes to tmp/ROLE-N.log."""
        log = (self.tmp / f"{role}-{len(self.procs)}.log").open("wb")
        proc = subprocess.Popen(
            [sys.executable, "-m", "worker.cli.main", role, *args],
            env=self.env(),
            cwd=self.tmp,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.procs.append((role, proc))
        # `escalator worker` with no --queue runs two Celery workers: both say they are ready.
        self.ready_counts.append(2 if role == "worker" and "--queue" not in args else 1)
        return proc

    READY: ClassVar[dict[str, str]] = {
        "worker": " ready.",
        "scheduler": "scheduler.started",
        "ingest": "ingest.started",
        "api": "Application startup complete",
    }

    def is_ready(self, n: int) -> bool:
        """Whether the n-th started process has said it is ready (each of its workers has)."""
        role = self.procs[n][0]
        text = (self.tmp / f"{role}-{n}.log").read_text(errors="replace")
        return text.count(self.READY[role]) >= self.ready_counts[n]

    def wait_ready(self, timeout: float = 30) -> None:
        """Wait until every started role has said it is ready."""
        for n, (role, _) in enumerate(self.procs):
            self.wait_for(partial(self.is_ready, n), timeout, f"{role}-{n}.log to be ready")

    def start_ready(self, role: str, *args: str, timeout: float = 30) -> subprocess.Popen[bytes]:
        """Start a role and wait until it is ready."""
        proc = self.start(role, *args)
        n = len(self.procs) - 1
        self.wait_for(partial(self.is_ready, n), timeout, f"{role}-{n}.log ready")
        return proc

    def kill(self, proc: subprocess.Popen[bytes], sig: int = signal.SIGKILL) -> None:
        """Signal a role's whole process group (a Celery worker and its pool children)."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        proc.wait(15)

    def stop(self) -> None:
        for _, proc in self.procs:
            if proc.poll() is None:
                try:
                    os.killpg(proc.pid, signal.SIGTERM)
                except ProcessLookupError:
                    continue
        for _, proc in self.procs:
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                self.kill(proc)
        self.redis.close()
        self.engine.dispose()

    def logs(self) -> str:
        return "\n".join(
            f"===== {p.name}\n{p.read_text(errors='replace')[-4000:]}"
            for p in sorted(self.tmp.glob("*.log"))
        )

    def wait_for(self, check: Callable[[], T], timeout: float, what: str) -> T:
        """Poll `check` until it returns something truthy; fail with the role logs otherwise."""
        deadline = time.monotonic() + timeout
        while True:
            value = check()
            if value:
                return value
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"timed out after {timeout}s waiting for {what}\n{self.logs()}"
                )
            time.sleep(0.1)

    # --- reading the store -------------------------------------------------------------------

    def issue(self, external_id: str, source: str = "test") -> Issue | None:
        with self.sessions() as s:
            return s.scalars(
                select(Issue).where(Issue.source == source, Issue.external_id == external_id)
            ).one_or_none()

    def timeline(self, external_id: str, source: str = "test") -> list[TimelineEntry]:
        with self.sessions() as s:
            return list(
                s.scalars(
                    select(TimelineEntry)
                    .join(Issue)
                    .where(Issue.source == source, Issue.external_id == external_id)
                    .order_by(TimelineEntry.id)
                )
            )

    def kinds(self, external_id: str) -> list[str]:
        return [e.kind for e in self.timeline(external_id)]

    def _rows(self, model: type[R], external_id: str, order: Any) -> list[R]:
        """Rows of `model` that belong to the issue, in `order`."""
        with self.sessions() as s:
            query = select(model).join(Issue).where(Issue.external_id == external_id)
            return list(s.scalars(query.order_by(order)))

    def deadlines(self, external_id: str) -> list[Deadline]:
        return self._rows(Deadline, external_id, Deadline.id)

    def outbox(self, external_id: str) -> list[OutboxMessage]:
        return self._rows(OutboxMessage, external_id, OutboxMessage.created_at)

    def processed_count(self) -> int:
        with self.sessions() as s:
            return int(s.scalar(select(func.count()).select_from(ProcessedEvent)) or 0)

    def tier(self, external_id: str) -> str | None:
        issue = self.issue(external_id)
        return issue.tier if issue else None


def ago(seconds: float) -> datetime:
    return datetime.now(UTC) - timedelta(seconds=seconds)
