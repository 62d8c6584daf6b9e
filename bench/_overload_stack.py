"""The stack `overload.py` runs against: a private redis-server, a fresh SQLite file, a webhook
sink, and the real roles of one checkout as processes, counted by `_overload_site`.

Nothing here imports the product: the checkout under test is a separate tree (`--tree`), run
by its own roles; this process only writes events onto the stream (raw JSON, the stream
contract), reads the database with `sqlite3` and reads Redis.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from _overload_servers import RedisServer, Sink
from _overload_tree import Tree, const, tree_env

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
COUNT = "bench:count:"


def write_policy(path: Path, tier_s: int, webhook_url: str) -> Path:
    """One policy, P1: L1 holds an issue `tier_s` seconds, then the escalation to L2 sends one
    signed webhook. L1 has no channel (opening sends nothing); L2 holds for a day."""
    path.write_text(
        "version: 1\n"
        "channels:\n"
        f"  sink: {{type: webhook, url: '{webhook_url}', secret: sink, timeout: 20s}}\n"
        "tiers:\n"
        "  - {name: L1, assignee: l1-oncall, channels: []}\n"
        "  - {name: L2, assignee: l2-oncall, channels: [sink]}\n"
        "policies:\n"
        "  - name: bench\n"
        "    acknowledge:\n"
        "      ladder:\n"
        f"        - {{tier: L1, within: {tier_s}s}}\n"
        "        - {tier: L2, within: 24h}\n"
        "      renotify_every: 24h\n"
        "default: bench\n"
    )
    return path


def opened(source: str, issue: str, at: datetime) -> str:
    """An `issue.opened` event as JSON, the stream's contract."""
    return json.dumps(
        {
            "event_id": f"{source}-{issue}-{uuid.uuid4().hex[:12]}",
            "type": "issue.opened",
            "occurred_at": at.isoformat(),
            "source": source,
            "issue": {"id": issue, "severity": "P1", "title": f"overload {issue}"},
        }
    )


def _sqlite_time(value: str | None) -> float | None:
    if value is None:
        return None
    return datetime.fromisoformat(value).replace(tzinfo=UTC).timestamp()


@dataclass
class Deadlines:
    due: list[float] = field(default_factory=list)
    fired: list[float | None] = field(default_factory=list)
    states: dict[str, int] = field(default_factory=dict)
    ids: list[int] = field(default_factory=list)


@dataclass
class Stack:
    """One run's Redis, database and role processes, for one tree."""

    tree: Tree
    folder: Path
    sink: Sink
    tier_s: int
    procs: list[tuple[tuple[str, ...], subprocess.Popen[bytes]]] = field(default_factory=list)

    def start(self) -> None:
        self.redis_server = RedisServer(self.folder / "redis")
        self.redis = self.redis_server.client
        self.db_path = self.folder / "overload.db"
        policy = write_policy(self.folder / "policy.yaml", self.tier_s, self.sink.url)
        self.env = tree_env(
            self.tree.path,
            {
                "ESCALATOR_REDIS_URL": self.redis_server.url,
                "ESCALATOR_DATABASE_URL": f"sqlite:///{self.db_path}",
                "ESCALATOR_POLICY_FILE": str(policy),
                "ESCALATOR_DATA_DIR": str(self.folder / "data"),
                "ESCALATOR_LOG_FORMAT": "json",
                "ESCALATOR_LOG_LEVEL": "WARNING",
                "ESCALATOR_SECRETS": json.dumps({"sink": SECRET}),
                "ESCALATOR_API_PORT": "0",
            },
        )
        upgrade = subprocess.run(
            [sys.executable, "-m", "worker.cli.main", "db", "upgrade"],
            env=self.env,
            cwd=self.folder,
            capture_output=True,
            text=True,
        )
        if upgrade.returncode != 0:
            raise SystemExit(f"db upgrade failed:\n{upgrade.stderr[-3000:]}")
        self.env["ESCALATOR_BENCH_COUNT"] = self.redis_server.url
        for role in self.tree.roles:
            self.spawn(role)
        self.db = sqlite3.connect(f"file:{self.db_path}?mode=ro", uri=True, timeout=60)

    def spawn(self, role: Sequence[str]) -> None:
        name = "-".join(role)
        log = (self.folder / f"{name}.log").open("ab")
        proc = subprocess.Popen(
            [sys.executable, "-m", "worker.cli.main", *role],
            env=self.env,
            cwd=self.folder,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own group: SIGTERM/SIGKILL reach a pool's children
        )
        self.procs.append((tuple(role), proc))

    def dead_roles(self) -> list[str]:
        return [
            f"{' '.join(r)} (exit {p.returncode})" for r, p in self.procs if p.poll() is not None
        ]

    def restart_dead(self) -> list[str]:
        """Start again every role that exited, as `escalator run` would; returns what died."""
        dead = self.dead_roles()
        if dead:
            roles = [r for r, p in self.procs if p.poll() is not None]
            self.procs = [(r, p) for r, p in self.procs if p.poll() is None]
            for role in roles:
                self.spawn(role)
        return dead

    def stop(self, timeout: float = 30.0) -> list[tuple[str, int | None]]:
        """SIGTERM every role's main process (a Celery worker's warm shutdown: its pool children
        finish their task), SIGKILL the whole group of one that will not stop."""
        for _, proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        codes = []
        for role, proc in self.procs:
            name = " ".join(role)
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(10)
            codes.append((name, proc.returncode))
        return codes

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.db.close()
        if hasattr(self, "redis_server"):
            self.redis_server.stop()

    def logs(self, tail: int = 2500) -> str:
        return "\n".join(
            f"----- {p.name}\n{p.read_text(errors='replace')[-tail:]}"
            for p in sorted(self.folder.glob("*.log"))
        )

    # --- producing ------------------------------------------------------------------------------

    def produce(self, source: str, dues: Iterable[datetime]) -> int:
        """One `issue.opened` per due time, opened `tier_s` before it, pipelined onto the stream."""
        stream = const(self.tree, "STREAM", "escalator:events")
        fieldname = const(self.tree, "STREAM_FIELD", "event")
        tier = timedelta(seconds=self.tier_s)
        pipe = self.redis.pipeline(transaction=False)
        n = 0
        for n, due in enumerate(dues, start=1):
            pipe.xadd(stream, {fieldname: opened(source, f"{source}-{n}", due - tier)})
            if n % 5000 == 0:
                pipe.execute()
        pipe.execute()
        return n

    # --- reading the database -------------------------------------------------------------------

    def _scalar(self, sql: str, *args: Any) -> int:
        try:
            row = self.db.execute(sql, args).fetchone()
        except sqlite3.OperationalError:  # locked for longer than the timeout, or no table yet
            return -1
        return int(row[0] or 0) if row else 0

    def issues(self, source: str) -> int:
        return self._scalar("SELECT count(*) FROM issues WHERE source = ?", source)

    def armed(self, source: str) -> int:
        """Offered deadlines (the L1 -> L2 escalations) not fired yet."""
        return self._scalar(
            "SELECT count(*) FROM deadlines d JOIN issues i ON i.id = d.issue_id "
            "WHERE i.source = ? AND d.kind = 'escalate' AND d.state = 'armed'",
            source,
        )

    def pending(self, source: str) -> int:
        return self._scalar(
            "SELECT count(*) FROM outbox o JOIN issues i ON i.id = o.issue_id "
            "WHERE i.source = ? AND o.state = 'pending'",
            source,
        )

    def deadlines(self, source: str) -> Deadlines:
        rows = self.db.execute(
            "SELECT d.id, d.due_at, d.fired_at, d.state FROM deadlines d "
            "JOIN issues i ON i.id = d.issue_id WHERE i.source = ? AND d.kind = 'escalate'",
            (source,),
        ).fetchall()
        found = Deadlines()
        for deadline_id, due, fired, state in rows:
            found.ids.append(int(deadline_id))
            found.due.append(_sqlite_time(due) or 0.0)
            found.fired.append(_sqlite_time(fired))
            found.states[state] = found.states.get(state, 0) + 1
        return found

    def messages(self, source: str) -> tuple[list[str], dict[str, int], float | None]:
        """(ids, count by state, last sent_at) of the messages about `source`'s issues."""
        rows = self.db.execute(
            "SELECT o.id, o.state, o.sent_at FROM outbox o JOIN issues i ON i.id = o.issue_id "
            "WHERE i.source = ?",
            (source,),
        ).fetchall()
        states: dict[str, int] = {}
        last: float | None = None
        for _, state, sent in rows:
            states[state] = states.get(state, 0) + 1
            at = _sqlite_time(sent)
            if at is not None and (last is None or at > last):
                last = at
        return [r[0] for r in rows], states, last

    # --- reading Redis --------------------------------------------------------------------------

    def queues(self) -> dict[str, int]:
        """Waiting tasks per queue, reserved (prefetched or running) ones, and the index."""
        r = self.redis
        esc = const(self.tree, "ESCALATION_QUEUE", "escalations")
        out = const(self.tree, "OUTBOX_QUEUE", "outbox")
        pipe = r.pipeline(transaction=False)
        pipe.llen(esc)
        pipe.llen(out)
        pipe.hlen("unacked")
        pipe.zcard(const(self.tree, "DUE", "escalator:deadlines:due"))
        pipe.zcard(const(self.tree, "INFLIGHT", "escalator:deadlines:inflight"))
        values = pipe.execute()
        return dict(
            zip([esc, out, "reserved", "index due", "index in flight"], values, strict=True)
        )

    def dead_letters(self) -> int:
        return int(self.redis.xlen(const(self.tree, "DEAD_STREAM", "escalator:events:dead")) or 0)

    def counted(self, what: str) -> dict[str, int]:
        return {k: int(v) for k, v in self.redis.hgetall(f"{COUNT}{what}").items()}

    def stats(self) -> dict[str, str]:
        """The tree's own counters (`escalator:stats:*` keys), if it keeps any."""
        found = {}
        for key in self.redis.scan_iter("escalator:stats:*"):
            with contextlib.suppress(Exception):
                found[key] = str(self.redis.get(key))
        return found
