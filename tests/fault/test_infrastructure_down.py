"""Roles never die of their infrastructure: Redis down at start, or restarted under them.

Each test has a redis-server of its own, so that it can stop and start it at will.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from functools import partial
from pathlib import Path

import httpx
import pytest

from tests.support.stack import Stack, event, write_policy
from worker.broker.embedded import EmbeddedRedis
from worker.broker.keys import ESCALATION_QUEUE, OUTBOX_QUEUE

pytestmark = [pytest.mark.integration, pytest.mark.fault]

TIER_S = 3.0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[EmbeddedRedis]:
    """A redis-server of this test's own, not started yet (AOF on, a short socket path)."""
    sock = Path("/tmp") / f"escalator-down-{os.getpid()}-{uuid.uuid4().hex[:8]}.sock"
    server = EmbeddedRedis(tmp_path / "redis", sock)
    yield server
    server.stop()


@pytest.fixture
def stack(tmp_path: Path, private_redis: EmbeddedRedis, database_url: str) -> Iterator[Stack]:
    """Role processes pointed at the private Redis, whether or not it runs."""
    policy = write_policy(tmp_path / "policy.yaml", tier_s=TIER_S)
    roles = Stack(tmp_path, private_redis.url, database_url, policy)
    yield roles
    roles.stop()


def _alive(stack: Stack) -> dict[str, int | None]:
    """Each role process's exit code (None: running)."""
    return {f"{role}-{n}": proc.poll() for n, (role, proc) in enumerate(stack.procs)}


def _log(stack: Stack, n: int) -> str:
    return (stack.tmp / f"{stack.procs[n][0]}-{n}.log").read_text(errors="replace")


def _said(stack: Stack, n: int, words: str) -> bool:
    return words in _log(stack, n)


def _readyz(port: int) -> int | None:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=5).status_code
    except httpx.HTTPError:
        return None


def _escalated_once(stack: Stack, issue: str) -> bool:
    """L1 → L2 happened, and exactly once."""
    steps = [e.message.split(":")[0] for e in stack.timeline(issue) if e.kind == "escalate"]
    assert steps.count("escalated L1 → L2") <= 1, steps
    return steps.count("escalated L1 → L2") == 1


def _all_sent(stack: Stack, issue: str) -> bool:
    messages = stack.outbox(issue)
    return bool(messages) and all(m.state == "sent" for m in messages)


def test_every_role_started_while_redis_is_down_waits_for_it_then_works(
    stack: Stack, private_redis: EmbeddedRedis
) -> None:
    """api, ingest, scheduler and both workers outlive a Redis that is not there yet, say so,
    report not ready, and escalate and deliver once it comes up."""
    port = _free_port()
    stack.env_extra["ESCALATOR_API_PORT"] = str(port)
    for role in ("api", "ingest", "scheduler"):
        stack.start(role)
    stack.start("worker", "--queue", ESCALATION_QUEUE)
    stack.start("worker", "--queue", OUTBOX_QUEUE)
    complaints = {  # what each role logs while Redis is away
        0: "Application startup complete",
        1: "ingest.failed",
        2: "scheduler.failed",
        3: "Cannot connect to redis",
        4: "Cannot connect to redis",
    }
    for n, words in complaints.items():
        stack.wait_for(partial(_said, stack, n, words), 60, f"role {n} to say {words}")
    stack.wait_for(lambda: _readyz(port) == 503, 30, "/readyz to answer 503")
    assert all(code is None for code in _alive(stack).values()), _alive(stack)

    private_redis.start()
    stack.wait_for(lambda: _readyz(port) == 200, 60, "/readyz to answer 200")
    stack.wait_for(lambda: _log(stack, 3).count(" ready.") >= 1, 90, "the escalation worker")
    stack.wait_for(lambda: _log(stack, 4).count(" ready.") >= 1, 90, "the outbox worker")
    stack.producer.send(event("issue.opened", "DOWN-1", at=datetime.now(UTC)))
    stack.wait_for(lambda: stack.issue("DOWN-1"), 60, "ingest to apply the event")
    stack.wait_for(lambda: _escalated_once(stack, "DOWN-1"), 60, "the escalation to L2")
    stack.wait_for(lambda: _all_sent(stack, "DOWN-1"), 60, "every message delivered")
    assert all(code is None for code in _alive(stack).values()), _alive(stack)


def test_workers_outlive_their_broker_restarting_then_fire_an_escalation(
    stack: Stack, private_redis: EmbeddedRedis
) -> None:
    """Redis killed and restarted three times under busy workers: each worker rides it out or
    exits non-zero (and is started again, as a supervisor would); every escalation of the
    issues open meanwhile fires once, and so does that of an issue opened afterwards."""
    private_redis.start()
    for role in ("ingest", "scheduler"):
        stack.start(role)
    workers = {ESCALATION_QUEUE: 2, OUTBOX_QUEUE: 3}  # queue -> its process's index in procs
    for queue in workers:
        stack.start("worker", "--queue", queue)
    stack.wait_ready(timeout=90)
    issues = [f"BUSY-{i}" for i in range(12)]
    stack.producer.send_many([event("issue.opened", i, at=datetime.now(UTC)) for i in issues])
    stack.wait_for(lambda: all(stack.issue(i) for i in issues), 60, "the issues to open")
    time.sleep(1.5)  # past the AOF's once-a-second fsync: a SIGKILL loses none of them
    exits: list[int] = []

    def supervise() -> None:
        """Restart-on-failure, as `escalator run` and compose do; remember each exit code."""
        for queue, n in list(workers.items()):
            code = stack.procs[n][1].poll()
            if code is not None:
                exits.append(code)
                stack.start("worker", "--queue", queue)
                workers[queue] = len(stack.procs) - 1

    def connections() -> dict[str, int]:
        """How many times each queue's current worker process has connected to Redis."""
        return {q: _log(stack, n).count("Connected to redis") for q, n in workers.items()}

    def back(since: dict[str, int], pids: dict[str, int]) -> bool:
        """Each worker has connected again since then, or exited and was started anew (as a
        supervisor would: a worker left stuck on a dead socket is ended by its watchdog)."""
        supervise()
        now = connections()
        return all(
            (stack.procs[workers[q]][1].pid != pids[q] and now[q] > 0) or now[q] > since[q]
            for q in workers
        )

    # A broker lost while connected, or soon after a reconnection.
    for down_s in (0.5, 3.0, 1.0):
        before = connections()
        pids = {q: stack.procs[n][1].pid for q, n in workers.items()}
        assert private_redis.process is not None
        os.kill(private_redis.process.pid, signal.SIGKILL)
        private_redis.process.wait()
        time.sleep(down_s)  # how long the broker stays away
        private_redis.start()
        stack.wait_for(partial(back, before, pids), 150, "the workers to be back")
        time.sleep(2.0)

    stack.producer.send(event("issue.opened", "AFTER-1", at=datetime.now(UTC)))
    for issue in [*issues, "AFTER-1"]:

        def reached_l2(issue: str = issue) -> bool:
            supervise()
            return _escalated_once(stack, issue)

        stack.wait_for(reached_l2, 150, f"{issue} to reach L2")

    def all_sent() -> bool:
        supervise()
        return _all_sent(stack, "AFTER-1")

    stack.wait_for(all_sent, 150, "every message delivered")
    supervise()
    assert 0 not in exits, f"a worker exited 0 after losing its broker: {exits}"
    for n in workers.values():
        assert stack.procs[n][1].poll() is None, _log(stack, n)[-3000:]


BOOM = """
import sys
from celery import bootsteps
from config.settings import Settings
from config.logging import configure_logging
from worker.broker.celery_app import configure, run_worker, worker_argv

class Boom(bootsteps.StartStopStep):
    requires = {"celery.worker.consumer.tasks:Tasks"}

    def start(self, c):
        raise AttributeError("'NoneType' object has no attribute 'hostname'")

settings = Settings()
configure_logging(settings)
configure(settings).steps["consumer"].add(Boom)
sys.exit(run_worker(worker_argv("escalations", 1, "solo", "INFO")))
"""


def test_a_worker_that_dies_of_an_unrecoverable_error_exits_non_zero(
    stack: Stack, private_redis: EmbeddedRedis
) -> None:
    """Celery's "Unrecoverable error" (kombu's AttributeError on a broker drop) ends the
    worker with exit code 1, not 0, and its traceback is in the log as text."""
    private_redis.start()
    done = subprocess.run(
        [sys.executable, "-c", BOOM],
        env=stack.env(),
        cwd=Path(__file__).resolve().parents[2],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1, done.stderr[-3000:]
    [line] = [json.loads(x) for x in done.stderr.splitlines() if "Unrecoverable error" in x]
    assert line["level"] == "critical"
    assert line["exception"].startswith("Traceback (most recent call last):")
    assert "AttributeError: 'NoneType' object has no attribute 'hostname'" in line["exception"]
