"""After a commit: mirror deadlines into the index and hand outbox messages to the dispatcher."""

from __future__ import annotations

from typing import TYPE_CHECKING

from worker.celery_app import app
from worker.effects import Effects

if TYPE_CHECKING:
    from worker.bootstrap import Container

DELIVER = "outbox.deliver"
DELIVER_BATCH = "outbox.deliver_batch"
FIRE = "escalation.fire"


def run_effects(c: Container, effects: Effects) -> None:
    """Index armed deadlines, drop disarmed ones, enqueue outbox delivery (one task).

    A batch can arm a deadline and cancel it again (opened, then acknowledged): what was
    cancelled is never indexed.
    """
    cancelled = set(effects.disarm)
    c.index.disarm(effects.disarm)
    c.index.arm([item for item in effects.arm if item[0] not in cancelled])
    if effects.outbox:
        app.send_task(DELIVER_BATCH, args=[effects.outbox])
