"""`escalator run`: every role as its own process, supervised, on one machine.

The roles are the production ones (`escalator api|ingest|scheduler`, and the two Celery
workers `escalator worker --queue escalations|outbox`) started as child processes. A child that
exits, whatever its exit code, is restarted after a backoff that doubles while it keeps dying
young (0.5 s up to 30 s), and each exit and restart is logged. Ctrl-C or SIGTERM stops them all
with SIGTERM (each finishes what it holds: ingest its batch, a worker its tasks), then the
embedded Redis, which writes its AOF on the way down.

`run_together` is the small version for `escalator worker`: it runs both worker pools and
stops, non-zero, as soon as one of them exits, so that its own supervisor restarts the pair.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, TextIO

import structlog
from redis.exceptions import RedisError
from sqlalchemy.exc import OperationalError

from config.settings import Settings
from worker.broker.connection import connect
from worker.broker.embedded import EmbeddedRedis
from worker.broker.keys import ESCALATION_QUEUE, OUTBOX_QUEUE, POLICY_GENERATION
from worker.domain.retry import backoff
from worker.errors import EscalatorError
from worker.gateway.metrics import clean, process_dead
from worker.roles.banner import announce
from worker.store.migrate import upgrade

log = structlog.get_logger("escalator.supervisor")

# Each role: the arguments after `python -m worker.cli.main`.
ROLES: tuple[tuple[str, ...], ...] = (
    ("api",),
    ("ingest",),
    ("scheduler",),
    ("worker", "--queue", ESCALATION_QUEUE),
    ("worker", "--queue", OUTBOX_QUEUE),
)
YOUNG_S = 10.0  # a child that dies younger than this is restarted after a longer backoff
BACKOFF_MAX_S = 30.0


def command(role: Sequence[str]) -> list[str]:
    """The command line of a role process."""
    return [sys.executable, "-m", "worker.cli.main", *role]


def metrics_dir(settings: Settings) -> Path:
    """The multiprocess directory the roles of `escalator run` share."""
    return settings.prometheus_multiproc_dir or settings.data_dir / "metrics"


def role_env(
    env: dict[str, str],
    directory: Path,
    base_port: int | None,
    roles: Sequence[Sequence[str]],
    role: Sequence[str],
) -> dict[str, str]:
    """A child's environment: the shared metrics directory (`ESCALATOR_METRICS_DIR`: it must
    not clean it), and its metrics port: the roles other than api, in the order of `roles`,
    get the base port + 1, + 2, ...; the api serves /metrics on its own port."""
    env = dict(env, ESCALATOR_METRICS_DIR=str(directory.resolve()))
    env.pop("ESCALATOR_METRICS_PORT", None)
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    others = [tuple(r) for r in roles if r[0] != "api"]
    if base_port is not None and tuple(role) in others:
        env["ESCALATOR_METRICS_PORT"] = str(base_port + 1 + others.index(tuple(role)))
    return env


@dataclass
class Child:
    role: str
    argv: tuple[str, ...]
    process: subprocess.Popen[bytes]
    started: float
    restarts: int = 0  # consecutive quick deaths
    restart_at: float | None = None  # set once it has exited: when to start it again


@dataclass
class Supervisor:
    """Starts the embedded Redis if needed, migrates, and keeps the role processes running."""

    settings: Settings
    roles: tuple[tuple[str, ...], ...] = ROLES
    env: dict[str, str] = field(default_factory=dict)
    output: IO[bytes] | None = None  # None: children share our terminal
    stop_event: threading.Event = field(default_factory=threading.Event)
    children: dict[str, Child] = field(default_factory=dict)
    redis: EmbeddedRedis | None = None
    reload_requested: bool = False
    monotonic: Callable[[], float] = time.monotonic
    _redis_failures: int = 0
    _redis_retry_at: float = 0.0
    _metrics: Path | None = None  # the metrics directory the roles share, set by `start`
    banner: TextIO | None = None  # where to say, once every role is ready, how to use them

    def start(self) -> None:
        env = dict(os.environ, **self.env)
        if not self.settings.redis_url:
            self.redis = EmbeddedRedis(self.settings.data_dir, self.settings.embedded_socket())
            env["ESCALATOR_REDIS_URL"] = self.redis.start()
        self._metrics = metrics_dir(self.settings)
        clean(self._metrics)  # counts of an earlier run are not this one's
        self._env = env
        self._migrate()
        if self.stop_event.is_set():
            return
        for role in self.roles:
            self._spawn(role)

    def _migrate(self) -> None:
        """Bring the schema up to date, waiting for the database if it is not there yet."""
        failures = 0
        while not self.stop_event.is_set():
            try:
                upgrade(self.settings.resolved_database_url())
                return
            except (OperationalError, OSError) as exc:
                failures += 1
                delay = backoff(failures)
                log.error("database.unavailable", error=str(exc), retry_in_s=delay)
                self.stop_event.wait(delay)

    def _spawn(self, role: Sequence[str], restarts: int = 0) -> None:
        name = " ".join(role)
        process = subprocess.Popen(
            command(role),
            env=role_env(
                self._env,
                self._metrics or metrics_dir(self.settings),
                self.settings.metrics_port,
                self.roles,
                role,
            ),
            stdin=subprocess.DEVNULL,
            stdout=self.output,
            stderr=self.output,
            start_new_session=self.output is not None,
        )
        self.children[name] = Child(name, tuple(role), process, self.monotonic(), restarts)
        log.info("role.started", role=name, pid=process.pid, restarts=restarts)

    def watch(self) -> None:
        """Restart children that exit, until asked to stop."""
        while not self.stop_event.wait(0.5):
            self.check()

    def check(self) -> None:
        """One round: reload if asked, revive Redis, note exits, restart those whose time came."""
        if self.reload_requested:
            self.reload_requested = False
            self._request_reload()
        self._keep_redis()
        now = self.monotonic()
        for child in list(self.children.values()):
            code = child.process.poll()
            if code is None or self.stop_event.is_set():
                continue
            if child.restart_at is None:
                process_dead(child.process.pid, self._metrics or metrics_dir(self.settings))
                young = now - child.started < YOUNG_S
                restarts = child.restarts + 1 if young else 0
                delay = backoff(restarts) if young else 0.5
                child.restarts, child.restart_at = restarts, now + delay
                log.error(
                    "role.exited",
                    role=child.role,
                    code=code,
                    restart_in_s=delay,
                    quick_exits=restarts,
                )
            elif now >= child.restart_at:
                log.warning("role.restarting", role=child.role, after_exit_code=code)
                self._spawn(child.argv, child.restarts)

    def _keep_redis(self) -> None:
        """Start the embedded Redis again if it died (its AOF brings back what it held)."""
        if not self.redis or self.redis.alive() or self.monotonic() < self._redis_retry_at:
            return
        log.error("embedded_redis.exited", restarting=True)
        try:
            self.redis.start()
            self._redis_failures = 0
        except EscalatorError as exc:  # the roles keep retrying meanwhile
            self._redis_failures += 1
            delay = backoff(self._redis_failures)
            self._redis_retry_at = self.monotonic() + delay
            log.error("embedded_redis.restart_failed", error=str(exc), retry_in_s=delay)

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

    def _announce(self, started: float) -> None:
        """Print the banner from a thread once every role is ready (worker/roles/banner.py)."""
        if self.banner is None or self.stop_event.is_set():
            return
        url = self._env.get("ESCALATOR_REDIS_URL") or self.settings.resolved_redis_url()
        args = (self.settings, url, self.stop_event, self.banner, started)
        threading.Thread(target=announce, args=args, name="banner", daemon=True).start()

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
            started = time.time()
            self.start()
            self._announce(started)
            log.info(
                "escalator.running",
                data_dir=str(Path(self.settings.data_dir).resolve()),
                api=f"http://{self.settings.api_host}:{self.settings.api_port}",
                metrics=f"http://{self.settings.api_host}:{self.settings.api_port}/metrics",
            )
            self.watch()
        finally:
            self.shutdown()


def run_together(roles: Sequence[Sequence[str]], metrics: Path | None = None) -> int:
    """Run role processes side by side until SIGINT/SIGTERM (then 0) or until one of them exits.

    A role that exits on its own has failed, whatever its code: the others are stopped and the
    code returned is never 0, so that a restart-on-failure policy brings the lot back. The
    children stay in our process group: a SIGKILL of the group takes them too. With `metrics`,
    they share that multiprocess directory, and the caller serves their metrics port.
    """
    stop = threading.Event()

    def _stop(*_: Any) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, _stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    names = [" ".join(role) for role in roles]
    envs = [
        None if metrics is None else role_env(dict(os.environ), metrics, None, roles, role)
        for role in roles
    ]
    processes = [
        subprocess.Popen(command(role), stdin=subprocess.DEVNULL, env=env)
        for role, env in zip(roles, envs, strict=True)
    ]
    code = 0
    try:
        while not stop.wait(0.5):
            exited = [(n, p) for n, p in zip(names, processes, strict=True) if p.poll() is not None]
            if exited:
                name, process = exited[0]
                code = process.returncode if process.returncode > 0 else 1
                log.error(
                    "role.exited", role=name, code=process.returncode, stopping="the other roles"
                )
                break
    finally:
        for process in processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in processes:
            process.wait()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return code
