"""`escalator run`: every role as its own process, supervised, on one machine.

The roles are the production ones (`escalator api|ingest|scheduler|worker`) started as child
processes; a child that dies is restarted with backoff. Ctrl-C or SIGTERM stops them all with
SIGTERM (each finishes what it holds: ingest its batch, the worker its tasks), then the
embedded Redis, which writes its AOF on the way down.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import structlog
from redis.exceptions import RedisError

from config.settings import Settings
from worker.constants import POLICY_GENERATION
from worker.embedded import EmbeddedRedis
from worker.redis_conn import connect
from worker.store.migrate import upgrade

log = structlog.get_logger("escalator.supervisor")

ROLES = ("api", "ingest", "scheduler", "worker")


@dataclass
class Child:
    role: str
    process: subprocess.Popen[bytes]
    started: float
    restarts: int = 0


@dataclass
class Supervisor:
    """Starts the embedded Redis if needed, migrates, and keeps the role processes running."""

    settings: Settings
    roles: tuple[str, ...] = ROLES
    env: dict[str, str] = field(default_factory=dict)
    output: IO[bytes] | None = None  # None: children share our terminal
    stop_event: threading.Event = field(default_factory=threading.Event)
    children: dict[str, Child] = field(default_factory=dict)
    redis: EmbeddedRedis | None = None
    reload_requested: bool = False

    def start(self) -> None:
        env = dict(os.environ, **self.env)
        if not self.settings.redis_url:
            self.redis = EmbeddedRedis(self.settings.data_dir, self.settings.embedded_socket())
            env["ESCALATOR_REDIS_URL"] = self.redis.start()
        upgrade(self.settings.resolved_database_url())
        self._env = env
        for role in self.roles:
            self._spawn(role)

    def _spawn(self, role: str, restarts: int = 0) -> None:
        command = [sys.executable, "-m", "worker.cli.main", role]
        process = subprocess.Popen(
            command,
            env=self._env,
            stdin=subprocess.DEVNULL,
            stdout=self.output,
            stderr=self.output,
            start_new_session=self.output is not None,
        )
        self.children[role] = Child(role, process, time.monotonic(), restarts)
        log.info("role.started", role=role, pid=process.pid)

    def watch(self) -> None:
        """Restart children that die, until asked to stop."""
        while not self.stop_event.wait(0.5):
            if self.reload_requested:
                self.reload_requested = False
                self._request_reload()
            if self.redis and not self.redis.alive():
                # The AOF brings back what it held; the roles reconnect (or are restarted below).
                log.error("embedded_redis.exited", restarting=True)
                self.redis.start()
            for role, child in list(self.children.items()):
                code = child.process.poll()
                if code is None:
                    continue
                quick = time.monotonic() - child.started < 10
                restarts = child.restarts + 1 if quick else 0
                delay = min(30.0, 0.5 * 2**restarts) if quick else 0.5
                log.error("role.exited", role=role, code=code, restart_in_s=delay)
                if self.stop_event.wait(delay):
                    return
                self._spawn(role, restarts)

    def _request_reload(self) -> None:
        """SIGHUP: ask every role to reload the policy file (an invalid one is refused)."""
        try:
            with connect(
                self._env.get("ESCALATOR_REDIS_URL") or self.settings.resolved_redis_url()
            ) as r:
                generation = r.incr(POLICY_GENERATION)
            log.info("policy.reload_requested", generation=generation)
        except RedisError as exc:
            log.error("policy.reload_failed", error=str(exc))

    def shutdown(self, timeout: float = 20.0) -> None:
        """SIGTERM every child, wait, SIGKILL stragglers, then stop the embedded Redis."""
        self.stop_event.set()
        for child in self.children.values():
            if child.process.poll() is None:
                child.process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for child in self.children.values():
            try:
                child.process.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.error("role.killed", role=child.role)
                child.process.kill()
                child.process.wait()
        if self.redis:
            self.redis.stop()
        log.info("escalator.stopped")

    def run_forever(self) -> None:
        """Start, supervise until SIGINT/SIGTERM, shut down cleanly."""

        def _stop(signum: int, _: Any) -> None:
            log.info("escalator.stopping", signal=signal.Signals(signum).name)
            self.stop_event.set()

        def _hup(*_: Any) -> None:
            self.reload_requested = True

        signal.signal(signal.SIGINT, _stop)
        signal.signal(signal.SIGTERM, _stop)
        signal.signal(signal.SIGHUP, _hup)
        try:
            self.start()
            log.info(
                "escalator.running",
                data_dir=str(Path(self.settings.data_dir).resolve()),
                api=f"http://{self.settings.api_host}:{self.settings.api_port}",
            )
            self.watch()
        finally:
            self.shutdown()
