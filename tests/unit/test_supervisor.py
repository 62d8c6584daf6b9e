"""`escalator run` restarts any role that exits, with a capped backoff, and says so."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from config.settings import Settings
from worker.domain.retry import backoff
from worker.roles import supervisor
from worker.roles.supervisor import Supervisor, run_together


class FakeProcess:
    """Stands in for a role's Popen: alive until `code` is set."""

    def __init__(self) -> None:
        self.code: int | None = None
        self.pid = 4242

    def poll(self) -> int | None:
        return self.code


@pytest.fixture
def spawned(monkeypatch: pytest.MonkeyPatch) -> list[FakeProcess]:
    """Every process the supervisor starts, in order, as fakes."""
    processes: list[FakeProcess] = []

    def popen(*_: Any, **__: Any) -> FakeProcess:
        processes.append(FakeProcess())
        return processes[-1]

    monkeypatch.setattr(subprocess, "Popen", popen)
    return processes


@pytest.fixture
def clock() -> list[float]:
    """A monotonic clock for the supervisor, moved by hand."""
    return [1000.0]


def test_backoff_doubles_and_is_capped() -> None:
    """0.5 s, 1 s, 2 s ... and never more than 30 s, however many failures."""
    assert [backoff(n) for n in range(4)] == [0.5, 1.0, 2.0, 4.0]
    assert backoff(7) == 30.0 and backoff(10_000) == 30.0


@pytest.mark.parametrize("code", [0, 1, -9])
def test_a_role_that_exits_is_restarted_whatever_its_code(
    code: int, spawned: list[FakeProcess], clock: list[float], tmp_path: Path
) -> None:
    """Exit 0, 1 or a signal: the role is logged as exited and started again after its delay."""
    sup = Supervisor(
        Settings(_env_file=None, data_dir=tmp_path),
        roles=(("ingest",),),
        monotonic=lambda: clock[0],
    )
    sup._env = {}
    sup._spawn(("ingest",))
    clock[0] += 60  # it ran for a while: restarted after the short delay
    spawned[0].code = code
    with capture_logs() as logs:
        sup.check()
        assert len(spawned) == 1  # not at once
        clock[0] += 0.5
        sup.check()
    assert len(spawned) == 2 and sup.children["ingest"].process.poll() is None
    exited = next(e for e in logs if e["event"] == "role.exited")
    assert exited["code"] == code and exited["restart_in_s"] == 0.5
    assert exited["log_level"] == "error"
    assert any(e["event"] == "role.restarting" for e in logs)


def test_a_role_that_keeps_dying_young_waits_longer_each_time_up_to_the_cap(
    spawned: list[FakeProcess], clock: list[float], tmp_path: Path
) -> None:
    """Each quick death doubles the delay before the next start, capped at 30 s."""
    sup = Supervisor(
        Settings(_env_file=None, data_dir=tmp_path),
        roles=(("worker",),),
        monotonic=lambda: clock[0],
    )
    sup._env = {}
    sup._spawn(("worker",))
    delays = []
    with capture_logs() as logs:
        for _ in range(9):
            spawned[-1].code = 1
            sup.check()
            delays.append(logs[-1]["restart_in_s"])
            clock[0] += delays[-1]
            sup.check()
    assert delays == [1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0, 30.0, 30.0]
    assert len(spawned) == 10


def test_worker_pair_stops_non_zero_when_one_pool_exits_cleanly(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """`escalator worker`: a pool exiting on its own (even with 0) stops the other, non-zero."""
    scripts = {"quits": "raise SystemExit(0)", "runs": "import time; time.sleep(60)"}
    monkeypatch.setattr(
        supervisor, "command", lambda role: [sys.executable, "-c", scripts[role[0]]]
    )
    with capture_logs() as logs:
        code = run_together([("runs",), ("quits",)])
    assert code == 1
    exited = [e for e in logs if e["event"] == "role.exited"]
    assert [(e["role"], e["code"], e["log_level"]) for e in exited] == [("quits", 0, "error")]
