"""After a commit: mirror deadlines into the index and hand outbox messages to the dispatcher.

Nothing here may kill the role that committed: the database already holds the truth. A Redis
or broker error is retried a few times with a short backoff, then logged loudly and dropped,
because the reconciler re-arms deadlines from the database and the outbox sweep sends again
every pending message that no delivery task holds (`worker.broker.inflight`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import structlog
from kombu.exceptions import KombuError
from redis.exceptions import RedisError

from worker.broker.inflight import inflight
from worker.roles.celery_app import app
from worker.services.effects import Effects

if TYPE_CHECKING:
    from worker.bootstrap import Container

DELIVER = "outbox.deliver"
DELIVER_BATCH = "outbox.deliver_batch"
FIRE = "escalation.fire"

TRIES = 3
BACKOFF_S = 0.1  # then 0.2: under half a second in all before giving up
INFRASTRUCTURE = (RedisError, KombuError, OSError)

log = structlog.get_logger("escalator.post_commit")


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
            time.sleep(BACKOFF_S * 2 ** (tried - 1))
    return False  # pragma: no cover - the loop returns


def send_deliveries(c: Container, message_ids: Sequence[str], countdown: float = 0.0) -> bool:
    """Mark the ids held by a queued delivery task, then send it (one id after `countdown`
    seconds: a retry; else one batch now). Never raises: on failure the marks are dropped so
    that the sweep sends the messages when they are due."""
    ids = list(message_ids)
    if not ids:
        return True
    marks = inflight(c.redis)
    settings = c.settings
    until = c.clock.now().timestamp() + countdown + settings.delivery_queued_lease_s

    def send() -> None:
        marks.mark(ids, until)
        if countdown:
            [only] = ids
            app.send_task(DELIVER, args=[only], countdown=countdown)
        else:
            app.send_task(DELIVER_BATCH, args=[ids])
        marks.counted(len(ids))

    recovery = "the outbox sweep sends them when due"
    if settle("send_deliveries", send, recovery, messages=len(ids), first=ids[0]):
        return True
    settle("unmark", lambda: marks.unmark(ids), recovery, messages=len(ids))
    return False


def run_effects(c: Container, effects: Effects) -> None:
    """Index armed deadlines, drop disarmed ones, enqueue outbox delivery (one task).

    A batch can arm a deadline and cancel it again (opened, then acknowledged): what was
    cancelled is never indexed. Never raises on Redis or broker errors (see the module).
    """
    cancelled = set(effects.disarm)
    rearmed = "the reconciler re-arms from the database"
    if effects.disarm:
        settle("disarm", lambda: c.index.disarm(effects.disarm), rearmed, count=len(cancelled))
    arm = [item for item in effects.arm if item[0] not in cancelled]
    if arm:
        settle("arm", lambda: c.index.arm(arm), rearmed, count=len(arm))
    send_deliveries(c, effects.outbox)
