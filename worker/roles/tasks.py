"""Thin Celery tasks: take ids and call a service; its unit of work runs the effects."""

from __future__ import annotations

import structlog
from sqlalchemy import text

from worker.bootstrap import Container, container
from worker.broker import canary
from worker.broker.celery_app import app
from worker.broker.keys import DELIVER, DELIVER_BATCH, FIRE, FIRE_BATCH
from worker.gateway import metrics_record as record
from worker.roles.policy_reload import Reloader
from worker.services.deliver import deliver, deliver_many
from worker.services.fire import fire_many

log = structlog.get_logger("escalator.tasks")
_reloader: Reloader | None = None


def current() -> Container:
    """This process's container, with the policy file reloaded if that was asked for."""
    global _reloader
    c = container()
    if _reloader is None or _reloader.c is not c:
        _reloader = Reloader(c)
    _reloader.check()
    return c


@app.task(name=FIRE_BATCH, acks_late=True)
def fire_deadlines(deadline_ids: list[int]) -> None:
    """Fire claimed deadlines in one transaction, then release their claims. If it fails (the
    database or Redis away), their leases run out within `scheduler_lease_s` and a scheduler
    sends them again: one task per deadline at a time, never a chain of retries beside a
    reclaim."""
    c = current()
    real, canaries = canary.split(deadline_ids)
    failed = False
    if real:
        with c.keepers.fires.holding(real):  # their leases live as long as the firing
            results = fire_many(c.units, c.policies, c.clock, real)
        record.fired(r.happened for r in results if r.happened is not None)
        done = dict(zip(dict.fromkeys(real), results, strict=True))
        # one that failed stays claimed: its lease runs out and a scheduler sends it again
        c.index.ack(*(deadline_id for deadline_id, result in done.items() if not result.failed))
        for deadline_id, result in done.items():
            if not result.fired and not result.failed:
                log.debug("escalation.fenced", deadline_id=deadline_id, reason=result.note)
        failed = any(result.failed for result in results)
    if canaries and not failed:
        # A canary (worker/broker/canary.py) counts as fired only when escalations could run:
        # the lot's real deadlines fired, and the database takes a write. Otherwise it stays
        # claimed, is sent again once its lease runs out, and fires late: the engine is unhealthy.
        _database_takes_writes(c)
        canary.fire(c.index, canaries, c.clock.now().timestamp())


def _database_takes_writes(c: Container) -> None:
    """A write statement that changes no row: a read-only PostgreSQL (after a failover) or a
    SQLite file that cannot be locked for writing refuses it, and the canary is not recorded."""
    with c.sessions() as session:
        session.execute(text("UPDATE deadlines SET id = id WHERE id < 0"))
        session.commit()


@app.task(name=FIRE, acks_late=True)
def fire_deadline(deadline_id: int) -> None:
    """One claimed deadline (the task earlier schedulers sent)."""
    fire_deadlines([deadline_id])


@app.task(name=DELIVER, acks_late=True)
def deliver_message(message_id: str) -> None:
    """Deliver one outbox message; on failure schedule its retry after the backoff."""
    deliver_messages([message_id])


@app.task(name=DELIVER_BATCH, acks_late=True)
def deliver_batch(message_ids: list[str]) -> None:
    """Deliver the messages one transaction wrote, in one task."""
    deliver_messages(message_ids)


def deliver_messages(message_ids: list[str]) -> None:
    """Deliver, holding the ids' in-flight marks with the running lease meanwhile. The effects
    (drop the marks of what is done, send the retries, whose marks last until due) run once
    the marks are no longer renewed. A skipped id is another task's: its mark is left alone."""
    c = current()
    with c.units.deferred() as units, c.keepers.deliveries.holding(message_ids):
        if len(message_ids) == 1:
            [only] = message_ids
            outcomes = [deliver(units, c.channels, c.clock, c.settings, only)]
        else:  # two transactions for the lot instead of two per message
            many = deliver_many(units, c.channels, c.clock, c.settings, message_ids)
            outcomes = list(many.values())
    record.delivered(outcomes)
