"""What `burst.py` and `lateness.py` share: a private stack with the checkout's real roles as
processes, bulk copies of an issue the product itself opened, reading the results back; and
`summary()`, the machine-readable `BENCH-SUMMARY {json}` line every benchmark prints for
`run_all.py`'s table.

The stack is a private `redis-server` (unix socket, `_overload_servers.RedisServer`), a fresh
SQLite file or a PostgreSQL schema of its own (created here, dropped at the end), migrated by the
checkout's own `escalator db upgrade`, and the roles started as `python -m worker.cli.main ROLE`
with `ESCALATOR_*` settings in a temporary folder (no `.env` is picked up); each role's output
(JSON logs) goes to a file there. This process reads the database with plain SQL and Redis
with redis-py; the only product code it imports is `worker.broker.keys` (the key names).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from _common import ROOT, pg_url_with_schema

# --- the BENCH-SUMMARY line -----------------------------------------------------------------------

SUMMARY_PREFIX = "BENCH-SUMMARY "


def summary(
    bench: str,
    metric: str,
    value: float | None,
    unit: str,
    target: str | None = None,
    baseline: float | None = None,
    ratio: float | None = None,
) -> None:
    """One machine-readable line for `run_all.py`: `BENCH-SUMMARY {json}`.

    `target` is a condition on `value` such as "< 5" or ">= 1000" (run_all.py checks it) or
    None; `ratio` is how many times better than `baseline` (> 1: better), None without one.
    NaN becomes null."""

    def clean(x: float | None) -> float | None:
        if x is None or (isinstance(x, float) and not math.isfinite(x)):
            return None
        return round(float(x), 4)

    line = {
        "bench": bench,
        "metric": metric,
        "value": clean(value),
        "unit": unit,
        "target": target,
        "baseline": clean(baseline),
        "ratio": clean(ratio),
    }
    print(SUMMARY_PREFIX + json.dumps(line), flush=True)


def better(ours: float, baseline: float, higher_is_better: bool = True) -> float | None:
    """Times better than the baseline (> 1: better), None when either is not a positive number."""
    if not (ours > 0 and baseline > 0) or not (math.isfinite(ours) and math.isfinite(baseline)):
        return None
    return ours / baseline if higher_is_better else baseline / ours


def pct(values: Sequence[float], q: float) -> float:
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


def ms(value: float) -> str:
    return "n/a" if not math.isfinite(value) else f"{value:,.0f} ms"


def sigterm_as_exit() -> None:
    """SIGTERM (from run_all.py, dev.py or a supervisor) unwinds like Ctrl-C, so the `finally`
    blocks stop the roles and remove the temporary folder."""

    def _exit(*_: Any) -> None:
        raise SystemExit(143)

    signal.signal(signal.SIGTERM, _exit)


# --- roles ----------------------------------------------------------------------------------------


class Role:
    """One role process of the checkout (its own session, so Ctrl-C on the benchmark reaches
    only us and we stop it), its output in a log file."""

    def __init__(self, name: str, argv: Sequence[str], env: dict[str, str], folder: Path) -> None:
        self.name = name
        self.log_path = folder / f"{name}.log"
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "worker.cli.main", *argv],
            env=env,
            cwd=folder,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()

    def alive(self) -> bool:
        return self.proc.poll() is None

    def processes(self) -> list[Any]:
        import psutil

        try:
            root = psutil.Process(self.proc.pid)
            return [root, *root.children(recursive=True)]
        except psutil.NoSuchProcess:
            return []

    def cpu(self) -> tuple[float, int]:
        """(user + system CPU seconds, process count) summed over the process tree now (psutil
        reads /proc). A process that exits between two readings takes its share with it."""
        import psutil

        total, count = 0.0, 0
        for proc in self.processes():
            with contextlib.suppress(psutil.NoSuchProcess, psutil.ZombieProcess):
                times = proc.cpu_times()
                total += times.user + times.system
                count += 1
        return total, count

    def stop(self, timeout: float = 30.0) -> int | None:
        """SIGTERM (a Celery worker's warm shutdown), SIGKILL to its group if it will not stop."""
        if self.alive():
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        # pool children left behind by a killed parent: the group goes too
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        return self.proc.returncode

    def records(self) -> Iterator[dict[str, Any]]:
        """The JSON log records the role wrote (other lines, Celery's own, are skipped)."""
        try:
            text = self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return
        for line in text.splitlines():
            if line.startswith("{"):
                with contextlib.suppress(ValueError):
                    record = json.loads(line)
                    if isinstance(record, dict):
                        yield record

    def count(self, event: str, field: str | None = None) -> int:
        """How many times `event` was logged, or the sum of its `field`."""
        total = 0
        for record in self.records():
            if record.get("event") == event:
                total += int(record.get(field, 0) or 0) if field else 1
        return total

    def problems(self, limit: int = 8) -> list[str]:
        """Error records and tracebacks in the log, the first few."""
        found: list[str] = []
        try:
            lines = self.log_path.read_text(errors="replace").splitlines()
        except FileNotFoundError:
            return found
        for line in lines:
            low = line.lower()
            structured = '"level": "error"' in low or '"level": "critical"' in low
            celery = "error/" in low or "critical/" in low  # [time: ERROR/MainProcess] ...
            if structured or celery or "traceback" in low:
                found.append(line[:400])
            if len(found) >= limit:
                break
        return found

    def tail(self, chars: int = 3000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except FileNotFoundError:
            return ""


# --- the stack ------------------------------------------------------------------------------------


class Stack:
    """A private redis-server, a fresh database (SQLite file or PostgreSQL schema), a policy and
    the environment the roles run with; `spawn()` starts roles. A context manager: on the way
    out (also on Ctrl-C or an error) every role is stopped, the schema dropped, the Redis stopped
    and the temporary folder removed (`keep`: left for reading)."""

    def __init__(
        self,
        name: str,
        database: str,
        pg_url: str,
        policy: str,
        extra_env: dict[str, str] | None = None,
        keep: bool = False,
    ) -> None:
        self.name = name
        self.database = database
        self.pg_url = pg_url
        self.policy = policy
        self.extra_env = extra_env or {}
        self.keep = keep
        self.roles: dict[str, Role] = {}
        self.schema = f"escalator_{name}_{os.getpid()}_{uuid.uuid4().hex[:6]}"
        self.engine: Any = None
        self.redis: Any = None
        self._server: Any = None
        self._schema_made = False

    # set-up and tear-down --------------------------------------------------------------------

    def __enter__(self) -> Stack:
        self.folder = Path(tempfile.mkdtemp(prefix=f"escalator-{self.name}-"))
        try:
            self._start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _start(self) -> None:
        from _overload_servers import RedisServer
        from sqlalchemy import create_engine, text

        self._server = RedisServer(self.folder / "redis")
        self.redis = self._server.client
        if self.database == "postgres":
            admin = create_engine(self.pg_url, isolation_level="AUTOCOMMIT")
            try:
                with admin.connect() as conn:
                    conn.execute(text(f'CREATE SCHEMA "{self.schema}"'))
                self._schema_made = True
            finally:
                admin.dispose()
            self.url = pg_url_with_schema(self.pg_url, self.schema)
            self.engine = create_engine(self.url, pool_size=2)
        else:
            self.url = f"sqlite:///{self.folder / 'bench.db'}"
            self.engine = create_engine(self.url, connect_args={"timeout": 60})
        policy = self.folder / "policy.yaml"
        policy.write_text(self.policy)
        env = {k: v for k, v in os.environ.items() if not k.startswith("ESCALATOR_")}
        env["PYTHONPATH"] = os.pathsep.join(
            [str(ROOT), *([env["PYTHONPATH"]] if env.get("PYTHONPATH") else [])]
        )
        env.update(
            ESCALATOR_REDIS_URL=self._server.url,
            ESCALATOR_DATABASE_URL=self.url,
            ESCALATOR_POLICY_FILE=str(policy),
            ESCALATOR_DATA_DIR=str(self.folder / "data"),
            ESCALATOR_LOG_FORMAT="json",
            ESCALATOR_LOG_LEVEL="WARNING",
            ESCALATOR_API_PORT="0",
            **self.extra_env,
        )
        self.env = env
        upgrade = subprocess.run(
            [sys.executable, "-m", "worker.cli.main", "db", "upgrade"],
            env=env,
            cwd=self.folder,
            capture_output=True,
            text=True,
        )
        if upgrade.returncode != 0:
            raise SystemExit(f"escalator db upgrade failed:\n{upgrade.stderr[-3000:]}")

    def spawn(self, name: str, argv: Sequence[str]) -> Role:
        role = Role(name, argv, self.env, self.folder)
        self.roles[name] = role
        return role

    def stop_roles(self) -> dict[str, int | None]:
        """Stop every role (SIGTERM first, all at once, then wait for each)."""
        for role in self.roles.values():
            if role.alive():
                with contextlib.suppress(ProcessLookupError):
                    role.proc.send_signal(signal.SIGTERM)
        return {name: role.stop() for name, role in self.roles.items()}

    def close(self) -> None:
        from sqlalchemy import create_engine, text

        with contextlib.suppress(Exception):
            self.stop_roles()
        if self.engine is not None:
            with contextlib.suppress(Exception):
                self.engine.dispose()
        if self._schema_made:
            with contextlib.suppress(Exception):
                admin = create_engine(self.pg_url, isolation_level="AUTOCOMMIT")
                with admin.connect() as conn:
                    conn.execute(text(f'DROP SCHEMA IF EXISTS "{self.schema}" CASCADE'))
                admin.dispose()
                self._schema_made = False
        if self._server is not None:
            with contextlib.suppress(Exception):
                self._server.stop()
            self._server = None
        if self.keep:
            print(f"   (kept {self.folder})", file=sys.stderr)
        else:
            shutil.rmtree(self.folder, ignore_errors=True)

    def dead(self) -> list[str]:
        return [
            f"{name} (exit {role.proc.returncode})"
            for name, role in self.roles.items()
            if not role.alive()
        ]

    def logs(self, chars: int = 2500) -> str:
        return "\n".join(f"----- {n}\n{r.tail(chars)}" for n, r in self.roles.items())

    # reading -----------------------------------------------------------------------------------

    def rows(self, sql: str, **params: Any) -> list[Any]:
        from sqlalchemy import text

        with self.engine.connect() as conn:
            return list(conn.execute(text(sql), params).all())

    def scalar(self, sql: str, **params: Any) -> int:
        from sqlalchemy import text

        with self.engine.connect() as conn:
            return int(conn.execute(text(sql), params).scalar() or 0)

    def issues(self, source: str) -> int:
        return self.scalar("SELECT count(*) FROM issues WHERE source = :s", s=source)

    def armed(self, source: str, kind: str = "escalate") -> int:
        return self.scalar(
            "SELECT count(*) FROM deadlines d JOIN issues i ON i.id = d.issue_id "
            "WHERE i.source = :s AND d.kind = :k AND d.state = 'armed'",
            s=source,
            k=kind,
        )

    def first_steps(self, source: str, state: str | None = None) -> int:
        """First-step escalate deadlines of `source`'s issues: all, or those in `state`."""
        sql = (
            "SELECT count(*) FROM deadlines d JOIN issues i ON i.id = d.issue_id "
            "WHERE i.source = :s AND d.kind = 'escalate' AND d.tier_index = 0"
        )
        if state is None:
            return self.scalar(sql, s=source)
        return self.scalar(sql + " AND d.state = :st", s=source, st=state)

    def pending_messages(self, source: str) -> int:
        return self.scalar(
            "SELECT count(*) FROM outbox o JOIN issues i ON i.id = o.issue_id "
            "WHERE i.source = :s AND o.state = 'pending'",
            s=source,
        )

    def keys(self) -> Any:
        import worker.broker.keys as keys

        return keys

    def push(self, payloads: Sequence[str]) -> None:
        """Raw event JSON onto the stream (the contract), pipelined."""
        k = self.keys()
        pipe = self.redis.pipeline(transaction=False)
        for n, payload in enumerate(payloads, start=1):
            pipe.xadd(k.STREAM, {k.STREAM_FIELD: payload})
            if n % 2000 == 0:
                pipe.execute()
        pipe.execute()

    def backlog(self) -> int:
        """Stream entries the group has not acked yet: unread (lag) plus pending."""
        k = self.keys()
        try:
            groups = self.redis.xinfo_groups(k.STREAM)
        except Exception:
            return -1
        group = next((g for g in groups if g["name"] == k.GROUP), None)
        if group is None:
            return -1
        lag = group.get("lag")
        return int(group["pending"]) + (int(lag) if lag is not None else 0)

    def dead_letters(self) -> int:
        k = self.keys()
        return int(self.redis.xlen(k.DEAD_STREAM) or 0) if self.redis.exists(k.DEAD_STREAM) else 0

    def indexed(self) -> int:
        k = self.keys()
        return int(self.redis.zcard(k.DUE)) + int(self.redis.zcard(k.INFLIGHT))

    def wait_for(
        self, what: str, test: Any, timeout: float, poll: float = 0.1, fatal: bool = True
    ) -> bool:
        """Poll `test()` until it is true; False after `timeout` or as soon as a role died,
        with a FAIL line and the role logs (`fatal`) or a NOTE line."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if test():
                return True
            if self.dead():
                break
            time.sleep(poll)
        if not fatal:
            print(f"   NOTE: not {what} within {timeout:.0f} s", file=sys.stderr)
            return False
        print(
            f"FAIL: {what} (waited {timeout:.0f} s; dead roles: {self.dead() or 'none'})\n"
            f"{self.logs()}",
            file=sys.stderr,
        )
        return False

    # bulk copies -------------------------------------------------------------------------------

    def copy_issue(self, source: str, external_id: str, n: int, prefix: str) -> int:
        """`n` copies of the issue `source:external_id` (ids `prefix1` .. `prefixN`) with its
        armed deadlines, written with one INSERT ... SELECT per table over a generated series:
        every column as the product wrote it (whatever the schema holds today), new ids. They
        are not indexed in Redis: a scheduler's start-up reconcile does that. Returns the
        deadlines copied per issue."""
        from sqlalchemy import MetaData, Table, text

        meta = MetaData()
        issues = Table("issues", meta, autoload_with=self.engine)
        deadlines = Table("deadlines", meta, autoload_with=self.engine)
        with self.engine.begin() as conn:
            template = conn.execute(
                text("SELECT id FROM issues WHERE source = :s AND external_id = :e"),
                {"s": source, "e": external_id},
            ).scalar_one()
            armed = [
                r[0]
                for r in conn.execute(
                    text("SELECT id FROM deadlines WHERE issue_id = :i AND state = 'armed'"),
                    {"i": template},
                )
            ]
            issue_base = int(conn.execute(text("SELECT max(id) FROM issues")).scalar() or 0)
            deadline_base = int(conn.execute(text("SELECT max(id) FROM deadlines")).scalar() or 0)
            series = (
                "WITH RECURSIVE seq(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM seq WHERE n < :n) "
            )
            picks = {
                "id": ":ibase + seq.n",
                "external_id": "CAST(:prefix AS VARCHAR(200)) || CAST(seq.n AS VARCHAR(20))",
            }
            cols = [c.name for c in issues.columns]
            select_list = ", ".join(picks.get(c, f't."{c}"') for c in cols)
            conn.execute(
                text(
                    f"{series}INSERT INTO issues ({quoted(cols)}) "
                    f"SELECT {select_list} FROM seq, issues t WHERE t.id = :template"
                ),
                {"n": n, "ibase": issue_base, "prefix": prefix, "template": template},
            )
            dcols = [c.name for c in deadlines.columns]
            for j, deadline_id in enumerate(armed):
                dpicks = {
                    "id": f":dbase + (seq.n - 1) * {len(armed)} + {j + 1}",
                    "issue_id": ":ibase + seq.n",
                }
                dselect = ", ".join(dpicks.get(c, f't."{c}"') for c in dcols)
                conn.execute(
                    text(
                        f"{series}INSERT INTO deadlines ({quoted(dcols)}) "
                        f"SELECT {dselect} FROM seq, deadlines t WHERE t.id = :template"
                    ),
                    {"n": n, "ibase": issue_base, "dbase": deadline_base, "template": deadline_id},
                )
            if self.database == "postgres":  # the ids were ours: move the sequences past them
                for table in ("issues", "deadlines"):
                    conn.execute(
                        text(
                            f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                            f"(SELECT max(id) FROM {table}))"
                        )
                    )
        return len(armed)


def quoted(columns: Sequence[str]) -> str:
    return ", ".join(f'"{c}"' for c in columns)


# --- events and times -----------------------------------------------------------------------------


def event(
    kind: str,
    source: str,
    issue: str,
    at: datetime,
    severity: str,
    title: str = "",
    status: str = "open",
) -> str:
    """An event as JSON, the stream's contract (`schemas/events.py`)."""
    return json.dumps(
        {
            "event_id": f"{source}-{issue}-{uuid.uuid4().hex[:12]}",
            "type": kind,
            "occurred_at": at.isoformat(),
            "source": source,
            "issue": {
                "id": issue,
                "severity": severity,
                "title": title or f"bench {issue}",
                "status": status,
                "labels": ["bench"],
            },
        }
    )


def epoch(value: Any) -> float | None:
    """A timestamp read with plain SQL (SQLite: naive UTC text; PostgreSQL: aware) as epoch s."""
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return float(value.timestamp())


def as_json(value: Any) -> dict[str, Any]:
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return {}
    return value if isinstance(value, dict) else {}


def load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f} / {five:.2f} / {fifteen:.2f} (1 / 5 / 15 min, {os.cpu_count()} cpus)"


def escalations(stack: Stack, source: str) -> dict[str, Any]:
    """Per issue of `source`: the first-step escalate deadlines by state, their due and fired
    times, and the escalation timeline lines with their `late_ms`."""
    deadlines = stack.rows(
        "SELECT d.issue_id, d.state, d.due_at, d.fired_at FROM deadlines d "
        "JOIN issues i ON i.id = d.issue_id "
        "WHERE i.source = :s AND d.kind = 'escalate' AND d.tier_index = 0",
        s=source,
    )
    lines = stack.rows(
        "SELECT t.issue_id, t.data FROM timeline t JOIN issues i ON i.id = t.issue_id "
        "WHERE i.source = :s AND t.kind = 'escalate'",
        s=source,
    )
    messages = stack.rows(
        "SELECT o.issue_id, o.state FROM outbox o JOIN issues i ON i.id = o.issue_id "
        "WHERE i.source = :s",
        s=source,
    )
    issue_ids = [r[0] for r in stack.rows("SELECT id FROM issues WHERE source = :s", s=source)]
    fired_per: dict[int, int] = dict.fromkeys(issue_ids, 0)
    states: dict[str, int] = {}
    late_db: list[float] = []
    fired_at: list[float] = []
    for issue_id, state, due, fired in deadlines:
        states[state] = states.get(state, 0) + 1
        if state == "fired":
            fired_per[issue_id] = fired_per.get(issue_id, 0) + 1
            f, d = epoch(fired), epoch(due)
            if f is not None and d is not None:
                late_db.append((f - d) * 1000)
                fired_at.append(f)
    lines_per: dict[int, int] = dict.fromkeys(issue_ids, 0)
    late_ms: list[float] = []
    for issue_id, data in lines:
        lines_per[issue_id] = lines_per.get(issue_id, 0) + 1
        value = as_json(data).get("late_ms")
        if isinstance(value, int | float):
            late_ms.append(float(value))
    msg_states: dict[str, int] = {}
    for _, state in messages:
        msg_states[state] = msg_states.get(state, 0) + 1

    def spread(per: dict[int, int]) -> dict[int, int]:
        out: dict[int, int] = {}
        for count in per.values():
            out[count] = out.get(count, 0) + 1
        return dict(sorted(out.items()))

    return {
        "issues": len(issue_ids),
        "states": states,
        "fired_per_issue": spread(fired_per),
        "lines_per_issue": spread(lines_per),
        "late_ms": late_ms,
        "late_db_ms": late_db,
        "fired_at": fired_at,
        "messages": msg_states,
    }
