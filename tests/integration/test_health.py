"""Health end to end: the canary proves escalations run (/health/engine, `escalator status`), and
the dead-man's switch is pinged only while they do."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time
from typing import Any

import httpx
import pytest

from tests.support.fixtures import StackFactory
from tests.support.sink import Sink
from tests.support.stack import Stack
from worker.broker.keys import ESCALATION_QUEUE, OUTBOX_QUEUE

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

EVERY_S = "1"  # a canary a second; the window is 3 x 1 s + 2 s
MAX_LATENESS_S = "2"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _engine(port: int) -> int | None:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/health/engine", timeout=5).status_code
    except httpx.HTTPError:
        return None


def _start(make_stack: StackFactory, **env: str) -> tuple[Stack, int]:
    """api, ingest, scheduler and one worker per queue, canaries every second."""
    port = _free_port()
    stack = make_stack(
        roles=("api", "ingest", "scheduler"),
        ESCALATOR_API_PORT=str(port),
        ESCALATOR_CANARY_EVERY_S=EVERY_S,
        ESCALATOR_CANARY_MAX_LATENESS_S=MAX_LATENESS_S,
        ESCALATOR_HEARTBEAT_EVERY_S="1",
        **env,
    )
    stack.start_ready("worker", "--queue", ESCALATION_QUEUE, timeout=90)
    stack.start_ready("worker", "--queue", OUTBOX_QUEUE, timeout=90)
    return stack, port


def _status(stack: Stack) -> tuple[int, dict[str, Any]]:
    done = subprocess.run(
        [sys.executable, "-m", "worker.cli.main", "status", "--json"],
        env=stack.env(),
        cwd=stack.tmp,
        capture_output=True,
        timeout=60,
        check=False,
    )
    return done.returncode, json.loads(done.stdout) if done.stdout.strip() else {}


def _healthy_status(stack: Stack) -> dict[str, Any] | None:
    """`escalator status --json`'s object when it exits 0, else None."""
    code, body = _status(stack)
    return body if code == 0 else None


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)  # DB-agnostic: CI time
def test_the_engine_turns_unhealthy_when_the_scheduler_stops_and_back(
    make_stack: StackFactory,
) -> None:
    """With every role up, /health/engine is 200 and `escalator status` exits 0 listing all five
    roles; the scheduler stopped, /health/engine turns 503 within seconds (and status exits 1);
    a scheduler started again makes it 200 again."""
    stack, port = _start(make_stack)
    stack.wait_for(lambda: _engine(port) == 200, 60, "/health/engine to answer 200")
    body = stack.wait_for(lambda: _healthy_status(stack), 60, "status to exit 0")
    assert body is not None
    roles = {b["role"] for b in body["beats"]}
    assert roles == {"api", "ingest", "scheduler", "worker-escalations", "worker-outbox"}
    assert body["engine"]["healthy"] is True

    scheduler = next(proc for role, proc in stack.procs if role == "scheduler")
    stack.kill(scheduler, signal.SIGTERM)
    stopped = time.monotonic()
    stack.wait_for(lambda: _engine(port) == 503, 30, "/health/engine to answer 503")
    reason = httpx.get(f"http://127.0.0.1:{port}/health/engine", timeout=5).json()["reason"]
    assert "ago" in reason, reason
    assert time.monotonic() - stopped < 30
    code, body = _status(stack)
    assert code == 1 and "scheduler: no heartbeat" in body["problems"]

    stack.start_ready("scheduler")
    stack.wait_for(lambda: _engine(port) == 200, 60, "/health/engine to answer 200 again")


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)  # DB-agnostic: CI time
def test_the_dead_mans_switch_is_pinged_only_while_healthy(
    make_stack: StackFactory, sink: Sink
) -> None:
    """Canaries firing: the sink receives GET pings. The escalation worker stopped (the
    scheduler still running): once the engine is unhealthy the pings stop; the worker back,
    they resume."""
    stack, port = _start(make_stack, ESCALATOR_HEARTBEAT_URL=sink.url)
    stack.wait_for(lambda: len(sink.received) >= 2, 60, "two pings of the dead-man's switch")
    assert {r.path for r in sink.received} == {"/hook"}

    worker = next(p for r, p in stack.procs if r == "worker" and ESCALATION_QUEUE in str(p.args))
    stack.kill(worker, signal.SIGKILL)
    stack.wait_for(lambda: _engine(port) == 503, 30, "/health/engine to answer 503")
    time.sleep(1.5)  # a ping decided just before the verdict turned may still land
    silent_from = len(sink.received)
    time.sleep(4)  # four canary periods
    assert len(sink.received) == silent_from, "pinged while the engine was unhealthy"

    stack.start_ready("worker", "--queue", ESCALATION_QUEUE, timeout=90)
    stack.wait_for(lambda: _engine(port) == 200, 90, "/health/engine to answer 200 again")
    stack.wait_for(lambda: len(sink.received) > silent_from, 30, "pings to resume")
