"""After a commit: mirror deadlines into the index and hand outbox messages to delivery tasks.

`BrokerEffects` is the `AfterCommit` that bootstrap gives every unit of work
(`worker.services.uow`); `Tasks` is the one place that sends Celery tasks by name. Nothing here
may kill the role that committed: the database already holds the truth. A Redis or broker error
is retried a few times with a short backoff, then logged loudly and dropped, because the
reconciler re-arms deadlines from the database and the outbox sweep sends again every pending
message that no delivery task holds (`worker.broker.inflight`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any, Protocol

import structlog
from kombu.exceptions import KombuError
from redis.exceptions import RedisError

from config.settings import Settings
from worker.broker.deadline_index import DeadlineIndex
from worker.broker.inflight import InFlight
from worker.broker.keys import DELIVER, DELIVER_BATCH, FIRE_BATCH
from worker.domain.clock import Clock
from worker.domain.retry import backoff
from worker.services.uow import Effects

TRIES = 3
BACKOFF_S = 0.1  # then 0.2: under half a second in all before giving up
INFRASTRUCTURE = (RedisError, KombuError, OSError)

log = structlog.get_logger("escalator.post_commit")


class Sender(Protocol):
    """What sends a task by name: the Celery app."""

    def send_task(self, name: str, args: Sequence[Any], countdown: float | None = None) -> Any: ...


def settle(step: str, action: Callable[[], object], recovery: str, **context: object) -> bool:
    """Run one post-commit step, retried on infrastructure errors; False once given up."""
    for tried in range(1, TRIES + 1):
        try:
            action()
            return True
        except INFRASTRUCTURE as exc:
            if tried == TRIES:
                log.error(
                    "effects.failed",
                    step=step,
                    error=f"{type(exc).__name__}: {exc}",
                    tries=tried,
                    recovery=recovery,
                    **context,
                )
                return False
            time.sleep(backoff(tried - 1, BACKOFF_S, cap=1.0))
    return False  # pragma: no cover - the loop returns


class Tasks:
    """Sends Escalator's Celery tasks by name: firings, or a delivery of message ids."""

    def __init__(self, app: Sender) -> None:
        self._app = app

    def fire(self, deadline_ids: Sequence[int]) -> None:
        """One task fires these claimed deadlines together (one transaction, each fenced)."""
        self._app.send_task(FIRE_BATCH, args=[list(deadline_ids)])

    def deliver(self, message_ids: Sequence[str], countdown: float = 0.0) -> None:
        """One batch now, or one id after `countdown` seconds (a retry's backoff)."""
        if countdown:
            [only] = message_ids
            self._app.send_task(DELIVER, args=[only], countdown=countdown)
        else:
            self._app.send_task(DELIVER_BATCH, args=[list(message_ids)])


class BrokerEffects:
    """Runs a committed unit of work's `Effects` on Redis and Celery; never raises."""

    def __init__(
        self,
        index: DeadlineIndex,
        marks: InFlight,
        tasks: Tasks,
        clock: Clock,
        settings: Settings,
    ) -> None:
        self.index, self.marks, self.tasks = index, marks, tasks
        self.clock, self.settings = clock, settings

    def __call__(self, effects: Effects) -> None:
        """Drop disarmed deadlines, index armed ones, forget finished messages' marks, send
        the new messages (one task) and the retries. A batch can arm a deadline and cancel it
        again (opened, then acknowledged): what was cancelled is never indexed."""
        cancelled = set(effects.disarm)
        rearmed = "the reconciler re-arms from the database"
        if effects.disarm:
            disarm = effects.disarm
            settle("disarm", lambda: self.index.disarm(disarm), rearmed, count=len(cancelled))
        arm = [item for item in effects.arm if item[0] not in cancelled]
        if arm:
            settle("arm", lambda: self.index.arm(arm), rearmed, count=len(arm))
        if effects.finished:
            done = effects.finished
            expire = "the marks expire"
            settle("unmark", lambda: self.marks.unmark(done), expire, messages=len(done))
        self.send_deliveries(effects.outbox)
        for message_id, delay in effects.retry:
            # A countdown is fine here: a short retry backoff, never an SLA deadline. If it is
            # lost, the scheduler's outbox sweep sends the message anyway.
            self.send_deliveries([message_id], countdown=max(delay, 0.001))

    def send_deliveries(self, message_ids: Sequence[str], countdown: float = 0.0) -> bool:
        """Mark the ids held by a queued delivery task, then send it (one id after `countdown`
        seconds: a retry; else one batch now). Never raises: on failure the marks are dropped
        so that the sweep sends the messages when they are due."""
        ids = list(message_ids)
        if not ids:
            return True
        until = self.clock.now().timestamp() + countdown + self.settings.delivery_queued_lease_s

        def send() -> None:
            self.marks.mark(ids, until)
            self.tasks.deliver(ids, countdown)
            self.marks.counted(len(ids))

        recovery = "the outbox sweep sends them when due"
        if settle("send_deliveries", send, recovery, messages=len(ids), first=ids[0]):
            return True
        settle("unmark", lambda: self.marks.unmark(ids), recovery, messages=len(ids))
        return False
