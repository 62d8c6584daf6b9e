"""Heartbeats from every role: a thread that records one every `heartbeat_every_s`.

A beat never harms its role: with Redis away it logs once (`heartbeat.failed`) and tries again
at the next beat, and says so when Redis answers again. On a clean stop the instance takes its
beat away, so `escalator status` does not call a role stopped on purpose silent.

Celery workers beat from their main process: a thread started when the worker is ready (as the
watchdog's), named after the worker's queue (`worker-escalations`, `worker-outbox`).
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Callable, Mapping
from importlib.metadata import PackageNotFoundError, version
from typing import Any

import structlog
from celery.signals import worker_ready, worker_shutdown
from redis import Redis

from worker.bootstrap import container
from worker.broker.heartbeats import beat, forget

log = structlog.get_logger("escalator.heartbeats")
STARTED = time.time()  # this process's start, near enough: when its modules were loaded


def instance_name() -> str:
    """`<hostname>:<pid>`: unique among the instances of a role."""
    return f"{socket.gethostname()}:{os.getpid()}"


def _version() -> str:
    try:
        return version("escalator")
    except PackageNotFoundError:
        return "unknown"


class Pulse:
    """Beats for one role instance; `start()` runs them in a daemon thread until `stop()`."""

    def __init__(
        self,
        redis: Callable[[], Redis] | Redis,
        role: str,
        every_s: float,
        info: Mapping[str, str] | None = None,
    ) -> None:
        self._redis = redis
        self.role = role
        self.every_s = every_s
        self.instance = instance_name()
        self.info = {"version": _version(), **(info or {})}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._failing = False

    def client(self) -> Redis:
        return self._redis if isinstance(self._redis, Redis) else self._redis()

    def once(self) -> bool:
        """One beat; False (logged once per outage) when Redis did not take it."""
        try:
            beat(self.client(), self.role, self.instance, STARTED, self.info)
        except Exception as exc:  # never let a beat end the role
            if not self._failing:
                log.warning(
                    "heartbeat.failed",
                    role=self.role,
                    error=f"{type(exc).__name__}: {exc}",
                    retry_every_s=self.every_s,
                )
            self._failing = True
            return False
        if self._failing:
            log.info("heartbeat.resumed", role=self.role)
        self._failing = False
        return True

    def _run(self) -> None:
        while not self._stop.is_set():
            self.once()
            self._stop.wait(self.every_s)

    def start(self) -> Pulse:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="heartbeat", daemon=True)
            self._thread.start()
            log.info("heartbeat.started", role=self.role, instance=self.instance)
        return self

    def stop(self) -> None:
        """Stop beating and take the beat away (best effort: Redis may be away)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        try:
            forget(self.client(), self.role, self.instance)
        except Exception as exc:
            log.info("heartbeat.not_forgotten", role=self.role, error=type(exc).__name__)


def worker_role(hostname: str) -> str:
    """`escalations@web-1` -> `worker-escalations` (celery_app.worker_argv names the nodes)."""
    return f"worker-{hostname.split('@', 1)[0]}"


_worker_pulse: Pulse | None = None


@worker_ready.connect
def _start_worker_pulse(sender: Any = None, **_: Any) -> None:
    global _worker_pulse
    hostname = getattr(sender, "hostname", None)
    if not hostname:
        return
    c = container()
    _worker_pulse = Pulse(c.redis, worker_role(hostname), c.settings.heartbeat_every_s).start()


@worker_shutdown.connect
def _stop_worker_pulse(**_: Any) -> None:
    if _worker_pulse is not None:
        _worker_pulse.stop()
