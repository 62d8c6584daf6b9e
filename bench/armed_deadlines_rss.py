"""Memory of the roles while 100,000 deadlines are armed, and what arming them costs.

Sets up 100,000 open issues with one armed deadline each, weeks in the future (bulk insert into
a fresh SQLite file), indexes them with `worker.services.reconcile.reconcile` (timed, from an empty
index, then again on a full one: the scheduler's periodic pass), then starts the real role
processes, `escalator scheduler`, `escalator worker` (Celery prefork -c 2) and `escalator
ingest`, waits for each to settle and measures their RSS (the whole process tree: parent and
children) with psutil, plus the Redis memory the index takes.

Compared with the textbook baseline of DESIGN.md: 100,000 Celery countdown tasks made one
worker hold 932 MB RSS and take 110 s to absorb them.

    python bench/armed_deadlines_rss.py                  # 100,000 deadlines
    python bench/armed_deadlines_rss.py --quick          # 10,000
    python bench/armed_deadlines_rss.py --deadlines 250000
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import _common as common
import psutil
from _common import header, ratio, row
from _roles import better, summary
from redis import Redis
from sqlalchemy import Engine

MB = 1024 * 1024


def insert_open_issues(engine: Engine, n: int, chunk: int = 10_000) -> None:
    """N open P3 issues, each with one armed escalate deadline 30 days out (spread over a day)."""
    from sqlalchemy import insert

    from worker.store.models import Deadline, Issue

    now = datetime.now(UTC)
    due0 = now + timedelta(days=30)
    for start in range(1, n + 1, chunk):
        ids = range(start, min(start + chunk, n + 1))
        issues = [
            {
                "id": i,
                "source": "jira",
                "external_id": f"OPS-{i}",
                "title": f"bench issue {i}: disk filling up",
                "severity": "P3",
                "status": "open",
                "assignee": "l1-oncall",
                "labels": ["bench"],
                "url": None,
                "policy_name": "medium",
                "lifecycle": "open",
                "tier_index": 0,
                "tier": "L1",
                "clock_version": 1,
                "cycle_started_at": now,
                "lifecycle_at": now,
                "snapshot_at": now,
                "created_at": now,
                "updated_at": now,
            }
            for i in ids
        ]
        deadlines = [
            {
                "id": i,
                "issue_id": i,
                "kind": "escalate",
                "tier_index": 0,
                "clock_version": 1,
                "due_at": due0 + timedelta(seconds=i % 86_400),
                "state": "armed",
                "fired_at": None,
                "note": None,
            }
            for i in ids
        ]
        with engine.begin() as conn:
            conn.execute(insert(Issue), issues)
            conn.execute(insert(Deadline), deadlines)


def tree_memory(pid: int, pss: bool = False) -> tuple[float, float, int]:
    """(RSS MB, peak RSS MB as VmHWM summed, process count) over the process and its children.

    With `pss`, the first figure is the proportional set size instead: pages shared between
    a prefork parent and its children counted once, not once per process."""
    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0.0, 0.0, 0
    rss = peak = 0.0
    count = 0
    for proc in procs:
        try:
            rss += (proc.memory_full_info().pss if pss else proc.memory_info().rss) / MB
            count += 1
            with open(f"/proc/{proc.pid}/status") as status:
                for line in status:
                    if line.startswith("VmHWM:"):
                        peak += int(line.split()[1]) / 1024
        except (psutil.NoSuchProcess, FileNotFoundError, ProcessLookupError):
            continue
    return rss, peak, count


class Role:
    """One role process, its stderr captured line by line (JSON logs, WARNING and up)."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], cwd: Path) -> None:
        self.name = name
        self.started = time.perf_counter()
        self.proc = subprocess.Popen(
            argv,
            env=env,
            cwd=cwd,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,  # Ctrl-C on the benchmark does not hit the roles first
        )
        self.lines: list[tuple[float, str]] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.append((time.perf_counter() - self.started, line.rstrip()))

    def logged(self, event: str) -> float | None:
        """Seconds after spawn at which `event` was logged, if it was."""
        for at, line in list(self.lines):
            try:
                if json.loads(line).get("event") == event:
                    return at
            except ValueError:
                if event in line:
                    return at
        return None

    def alive(self) -> bool:
        return self.proc.poll() is None

    def settle(self, min_procs: int, timeout: float = 60.0, steady_s: float = 2.0) -> float:
        """Wait until the tree has `min_procs` processes and its RSS moved < 1 MB for `steady_s`."""
        last, since = -1.0, time.perf_counter()
        deadline = time.perf_counter() + timeout
        while time.perf_counter() < deadline and self.alive():
            rss, _, count = tree_memory(self.proc.pid)
            if count >= min_procs and abs(rss - last) < 1.0:
                if time.perf_counter() - since >= steady_s:
                    return time.perf_counter() - self.started - steady_s
            else:
                since = time.perf_counter()
            last = rss
            time.sleep(0.25)
        return time.perf_counter() - self.started

    def stop(self, timeout: float = 20.0) -> tuple[int | None, float]:
        """SIGTERM, wait; SIGKILL our own process group only if it will not stop."""
        t = time.perf_counter()
        if self.alive():
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        return self.proc.returncode, time.perf_counter() - t

    def errors(self) -> list[str]:
        return [line for _, line in self.lines if '"error"' in line or "Traceback" in line]


def worker_first_task(
    worker: Role, concurrency: int, redis: Redis, timeout: float = 60.0
) -> float | None:
    """Seconds from spawn until the worker has consumed and acked probe tasks.

    The probes are `outbox.deliver_batch` with no ids: they build the child's container and
    deliver nothing; twice as many as children are sent, so each child usually runs one."""
    from worker.broker.celery_app import app
    from worker.broker.effects import DELIVER_BATCH
    from worker.broker.keys import OUTBOX_QUEUE

    for _ in range(2 * concurrency):
        app.send_task(DELIVER_BATCH, args=[[]])
    deadline = time.perf_counter() + timeout
    while time.perf_counter() < deadline and worker.alive():
        # kombu's redis transport: waiting messages in the queue list, reserved ones in `unacked`
        if redis.llen(OUTBOX_QUEUE) == 0 and redis.hlen("unacked") == 0:
            return time.perf_counter() - worker.started
        time.sleep(0.05)
    return None


def escalator_argv(*args: str) -> list[str]:
    script = Path(sys.executable).with_name("escalator")
    if script.exists():
        return [str(script), *args]
    return [sys.executable, "-m", "worker.cli.main", *args]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--deadlines", type=int, default=100_000, help="how many armed deadlines (default 100,000)"
    )
    parser.add_argument("--quick", action="store_true", help="smoke run: 10,000 deadlines")
    parser.add_argument(
        "--redis-url", default=common.DEFAULT_REDIS_URL, help="flushed before and after"
    )
    parser.add_argument(
        "--concurrency", type=int, default=2, help="Celery worker processes (default 2)"
    )
    args = parser.parse_args(argv)
    n = 10_000 if args.quick else args.deadlines

    from config.logging import configure_logging
    from worker.bootstrap import build
    from worker.broker import canary
    from worker.broker.keys import DUE, INFLIGHT
    from worker.services.reconcile import reconcile

    header(f"armed deadlines: RSS of the roles with {n:,} armed deadlines (SQLite)")
    common.flush_redis(args.redis_url)
    redis = Redis.from_url(args.redis_url, decode_responses=True)
    tmp = tempfile.TemporaryDirectory(prefix="escalator-bench-")
    workdir = Path(tmp.name)
    database_url = common.fresh_sqlite(workdir)
    settings = common.make_settings(args.redis_url, database_url)
    # The in-process reconcile below would log reconcile.repaired: expected here, not news.
    configure_logging(settings.model_copy(update={"log_level": "ERROR"}))
    c = build(settings)
    roles: list[Role] = []
    status = 0
    try:
        with common.timed() as t_insert:
            insert_open_issues(c.engine, n)
        row("bulk insert issues + deadlines (Core)", f"{t_insert[0]:.2f} s")
        mem_empty = int(redis.info("memory")["used_memory"])

        with common.timed() as t_cold:
            report = reconcile(c.index, c.readers, c.clock)
        row(
            "reconcile from an empty index",
            f"{t_cold[0]:.2f} s = {n / t_cold[0]:,.0f} deadlines/s "
            f"(armed {report.armed:,}, indexed {report.rearmed:,})",
        )
        row(
            "  vs textbook: worker absorbing 100k countdowns",
            ratio(
                t_cold[0] * common.BASELINE_COUNTDOWN_TASKS / n,
                common.BASELINE_COUNTDOWN_ABSORB_S,
                higher_is_better=False,
            )
            + " (scaled to 100k)",
        )
        with common.timed() as t_warm:
            warm = reconcile(c.index, c.readers, c.clock)
        row(
            "reconcile again, index full (periodic pass)",
            f"{t_warm[0]:.2f} s (re-indexed {warm.rearmed}, "
            f"dropped {warm.dropped}); runs every {settings.reconcile_every_s:.0f} s "
            "in the scheduler's housekeeping thread",
        )
        mem_full = int(redis.info("memory")["used_memory"])
        zset = int(redis.memory_usage(DUE) or 0)
        row(
            "Redis used_memory, empty -> indexed",
            f"{mem_empty / MB:.1f} -> {mem_full / MB:.1f} MB "
            f"(+{(mem_full - mem_empty) / MB:.1f} MB)",
        )
        row(
            "  MEMORY USAGE of the due ZSET",
            f"{zset / MB:.1f} MB = {zset / max(n, 1):.0f} bytes/deadline",
        )
        if redis.zcard(DUE) != n:
            print(
                f"FAIL: the index holds {redis.zcard(DUE):,} deadlines, expected {n:,}",
                file=sys.stderr,
            )
            status = 1

        env = {key: value for key, value in os.environ.items() if not key.startswith("ESCALATOR_")}
        env.update(
            ESCALATOR_REDIS_URL=args.redis_url,
            ESCALATOR_DATABASE_URL=database_url,
            ESCALATOR_POLICY_FILE=str(common.DEFAULT_POLICY),
            ESCALATOR_LOG_LEVEL="WARNING",
            ESCALATOR_LOG_FORMAT="json",
            ESCALATOR_DATA_DIR=str(workdir / "data"),
            ESCALATOR_WORKER_CONCURRENCY=str(args.concurrency),
        )

        # Scheduler: empty the index first, so its start-up reconcile has all of it to re-arm
        # and says so at WARNING (reconcile.repaired): the moment it is ready, all of it armed.
        redis.delete(DUE, INFLIGHT)
        scheduler = Role("scheduler", escalator_argv("scheduler"), env, workdir)
        roles.append(scheduler)
        give_up = time.perf_counter() + 120
        while (
            scheduler.logged("reconcile.repaired") is None
            and scheduler.alive()
            and time.perf_counter() < give_up
        ):
            time.sleep(0.05)
        ready = scheduler.logged("reconcile.repaired")
        print()
        if ready is None:
            print("FAIL: the scheduler did not finish its start-up reconcile", file=sys.stderr)
            status = 1
        else:
            row(
                "scheduler start-up (spawn -> index rebuilt)",
                f"{ready:.2f} s (cold: imports, build, reconcile {n:,})",
            )
        scheduler.settle(1, timeout=15)

        worker = Role("worker", escalator_argv("worker"), env, workdir)
        roles.append(worker)
        worker_ready = worker_first_task(worker, args.concurrency, redis)
        if worker_ready is None:
            print("FAIL: the worker did not run a probe task within 60 s", file=sys.stderr)
            status = 1
        else:
            row("worker start-up (spawn -> first tasks executed)", f"{worker_ready:.2f} s")
        worker.settle(1 + args.concurrency, timeout=30)

        ingest = Role("ingest", escalator_argv("ingest"), env, workdir)
        roles.append(ingest)
        ingest_ready = ingest.settle(1, timeout=30)
        row("ingest start-up (spawn -> RSS steady)", f"{ingest_ready:.2f} s")

        time.sleep(1.0)
        print()
        total = total_peak = total_pss = 0.0
        worker_rss = 0.0
        for role in roles:
            if not role.alive():
                print(f"FAIL: {role.name} exited with {role.proc.returncode}", file=sys.stderr)
                status = 1
            rss, peak, count = tree_memory(role.proc.pid)
            pss = tree_memory(role.proc.pid, pss=True)[0]
            total += rss
            worker_rss = rss if role is worker else worker_rss
            total_peak += peak
            total_pss += pss
            row(
                f"RSS {role.name} ({count} process{'es' if count > 1 else ''})",
                f"{rss:7.1f} MB   (peak {peak:.1f} MB, PSS {pss:.1f} MB)",
            )
        row(
            "RSS all roles", f"{total:7.1f} MB   (peak {total_peak:.1f} MB, PSS {total_pss:.1f} MB)"
        )
        row(
            "  all roles vs textbook worker with 100k countdowns",
            ratio(total, common.BASELINE_COUNTDOWN_RSS_MB, higher_is_better=False),
        )
        row(
            "  worker tree alone vs that worker",
            ratio(worker_rss, common.BASELINE_COUNTDOWN_RSS_MB, higher_is_better=False),
        )
        bench = f"armed_deadlines_rss ({n:,})"
        cold_100k = t_cold[0] * common.BASELINE_COUNTDOWN_TASKS / n
        base_rss, base_absorb = common.BASELINE_COUNTDOWN_RSS_MB, common.BASELINE_COUNTDOWN_ABSORB_S
        summary(bench, "RSS all roles", total, "MB", "< 250", base_rss,
                better(total, base_rss, higher_is_better=False))  # fmt: skip
        summary(bench, "RSS worker tree", worker_rss, "MB", None, base_rss,
                better(worker_rss, base_rss, higher_is_better=False))  # fmt: skip
        summary(bench, "reconcile from empty, per 100k", cold_100k, "s", None, base_absorb,
                better(cold_100k, base_absorb, higher_is_better=False))  # fmt: skip
        summary(bench, "reconcile, periodic pass", t_warm[0], "s")
        if ready is not None:
            summary(bench, "scheduler start-up", ready, "s")
        due_after, inflight_after = c.index.sizes()
        due_after -= canary.in_index(c.redis)[0]  # the schedulers' canary is no deadline
        row("index after the roles ran: due / in flight", f"{due_after:,} / {inflight_after:,}")
        if due_after != n:
            print(f"FAIL: the index holds {due_after:,} deadlines, expected {n:,}", file=sys.stderr)
            status = 1
    finally:
        # Clean up first (stop our roles, flush Redis), print afterwards: a closed stdout
        # (`| head`) must not leave role processes or benchmark keys behind.
        stopped = [(role, *role.stop()) for role in reversed(roles)]
        c.close()
        redis.close()
        common.flush_redis(args.redis_url)
        tmp.cleanup()
        if any(code not in (0, -signal.SIGTERM) for _, code, _ in stopped):
            status = 1
        with contextlib.suppress(BrokenPipeError):
            print()
            for role, code, took in stopped:
                row(f"stop {role.name} (SIGTERM)", f"exit {code} in {took:.2f} s")
                for line in role.errors()[:5]:
                    print(f"   !! {role.name}: {line[:300]}", file=sys.stderr)
    return status


if __name__ == "__main__":
    sys.exit(main())
