"""A Celery worker that stops consuming without exiting is made to exit, so it is restarted.

kombu's Redis transport can be left waiting on a dead socket after Redis restarts (celery
issues #8030, #8091, #9054): the process stays up and consumes nothing, and a supervisor that
restarts processes when they exit never notices. The watchdog is a thread of the worker's main
process, started when the worker is ready. Every `EVERY_S` it asks the worker itself whether it
answers: a remote-control ping through the broker, answered by the same event loop that consumes
the tasks. When Redis answers its own PING but the worker has not answered `MISSES` times in a
row, the worker is stuck: the watchdog logs `worker.stuck`, ends the pool processes and exits
with code 1, so that `escalator run`, `escalator worker` or compose starts it again (its tasks
are acked late: they are delivered again). While Redis is away it only waits: Celery retries
the broker by itself. On the solo pool, where a task runs on the loop that answers the pings,
there is no watchdog.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import psutil
import structlog
from celery.signals import worker_ready
from redis import Redis

from worker.broker.celery_app import app

log = structlog.get_logger("escalator.watchdog")

EVERY_S = 10.0
PING_TIMEOUT_S = 5.0
MISSES = 3


@dataclass
class Watchdog:
    """Decides, one look at a time, whether the worker is stuck."""

    answers: Callable[[], bool]  # does the worker answer a ping through the broker?
    broker_up: Callable[[], bool]  # does Redis itself answer?
    misses: int = 0

    def look(self) -> bool:
        """One look; True once the worker is stuck (`MISSES` unanswered pings in a row while
        the broker was up)."""
        if not self.broker_up():
            self.misses = 0  # the broker is away: that is Celery's to retry, not ours
            return False
        self.misses = 0 if self.answers() else self.misses + 1
        return self.misses >= MISSES


def _exit_stuck(hostname: str, misses: int) -> None:
    log.error("worker.stuck", worker=hostname, unanswered_pings=misses, action="exit 1")
    for child in psutil.Process().children(recursive=True):
        child.kill()
    os._exit(1)


def _broker_up() -> bool:
    try:
        url = redis_url_of(str(app.conf.broker_url))
        with Redis.from_url(url, socket_timeout=PING_TIMEOUT_S) as client:
            return bool(client.ping())
    except Exception:
        return False


def redis_url_of(broker: str) -> str:
    """redis-py's URL for kombu's broker URL (`redis+socket://` is a unix socket)."""
    prefix = "redis+socket://"
    return "unix://" + broker[len(prefix) :] if broker.startswith(prefix) else broker


def watch(hostname: str) -> None:
    """Look every `EVERY_S` for ever; exit the process once the worker is stuck."""

    def answers() -> bool:
        try:
            return bool(app.control.ping(destination=[hostname], timeout=PING_TIMEOUT_S))
        except Exception:
            return False

    dog = Watchdog(answers, _broker_up)
    log.info("watchdog.started", worker=hostname, every_s=EVERY_S)
    while True:
        time.sleep(EVERY_S)
        if dog.look():
            _exit_stuck(hostname, dog.misses)


def _solo(consumer: Any) -> bool:
    """On the solo pool a task runs on the loop that answers pings: a long task would look
    stuck, so there is no watchdog there."""
    pool = getattr(getattr(consumer, "controller", None), "pool_cls", None)
    return "solo" in f"{getattr(pool, '__module__', '')}.{getattr(pool, '__name__', pool)}".lower()


@worker_ready.connect
def _start(sender: Any = None, **_: Any) -> None:
    hostname = getattr(sender, "hostname", None)
    if hostname and not _solo(sender):
        threading.Thread(target=watch, args=(hostname,), name="watchdog", daemon=True).start()
