"""`escalator run` loses its Redis: the supervisor brings it back, nothing is lost or doubled."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from config.settings import Settings
from tests.support.stack import Stack, event, write_policy

pytestmark = [pytest.mark.integration, pytest.mark.fault]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_escalator_run_survives_redis_being_killed(tmp_path: Path, database_url: str) -> None:
    """SIGKILL the embedded Redis mid-flight: it restarts from its AOF and escalations fire once."""
    data = tmp_path / "data"
    policy = write_policy(tmp_path / "policy.yaml", tier_s=4.0)
    env = {k: v for k, v in os.environ.items() if not k.startswith("ESCALATOR_")}
    env.update(
        ESCALATOR_DATA_DIR=str(data),
        ESCALATOR_DATABASE_URL=database_url,
        ESCALATOR_POLICY_FILE=str(policy),
        ESCALATOR_API_PORT=str(_free_port()),
        ESCALATOR_LOG_FORMAT="json",
        ESCALATOR_SCHEDULER_LEASE_S="3",
    )
    log = (tmp_path / "run.log").open("wb")
    run = subprocess.Popen(
        [sys.executable, "-m", "worker.cli.main", "run"],
        env=env,
        cwd=tmp_path,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    sock = Settings(_env_file=None, data_dir=data).embedded_socket()
    stack = Stack(tmp_path, f"unix://{sock}", database_url, policy)  # to send, wait and read

    def text() -> str:
        return (tmp_path / "run.log").read_text(errors="replace")

    try:
        stack.wait_for(lambda: " ready." in text() and "scheduler.started" in text(), 60, "roles")
        t0 = datetime.now(UTC)
        stack.producer.send(event("issue.opened", "RK-1", at=t0))
        stack.wait_for(lambda: stack.issue("RK-1"), 10, "RK-1 opened")
        time.sleep(1.5)  # past the AOF's once-a-second fsync
        os.kill(int((data / "redis.pid").read_text()), signal.SIGKILL)
        stack.wait_for(lambda: "embedded_redis.exited" in text(), 10, "the supervisor to notice")
        stack.wait_for(lambda: stack.tier("RK-1") == "L2", 45, "the escalation after the restart")
        stack.producer.send(event("issue.opened", "RK-2"))
        stack.wait_for(lambda: stack.issue("RK-2"), 30, "ingest to take events again")
        time.sleep(1.0)
        assert stack.kinds("RK-1").count("escalate") == 1
        [fired] = [d for d in stack.deadlines("RK-1") if d.kind == "escalate" and d.fired_at]
        assert fired.fired_at is not None and fired.fired_at >= fired.due_at
    finally:
        os.killpg(run.pid, signal.SIGINT)
        run.wait(30)
        stack.redis.close()
        stack.engine.dispose()
