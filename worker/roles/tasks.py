"""Thin Celery tasks: take ids, call a service, hand its effects to `post_commit`."""

from __future__ import annotations

from dataclasses import dataclass

import structlog

from worker.bootstrap import Container, container
from worker.broker.effects import (
    DELIVER,
    DELIVER_BATCH,
    FIRE,
    run_effects,
    send_deliveries,
    settle,
)
from worker.broker.inflight import inflight
from worker.broker.leases import LeaseKeeper
from worker.roles.celery_app import app
from worker.roles.policy_reload import Reloader
from worker.services.deliver import FINISHED, deliver
from worker.services.deliver_batch import deliver_many
from worker.services.fire import fire

log = structlog.get_logger("escalator.tasks")
_reloader: Reloader | None = None


@dataclass(frozen=True, slots=True)
class Keepers:
    """The leases a worker process renews while its tasks run."""

    fires: LeaseKeeper[int]
    deliveries: LeaseKeeper[str]


_keepers_of: tuple[Container, Keepers] | None = None


def current() -> Container:
    """This process's container, with the policy file reloaded if that was asked for."""
    global _reloader
    c = container()
    if _reloader is None or _reloader.c is not c:
        _reloader = Reloader(c)
    _reloader.check()
    return c


def _keepers(c: Container) -> Keepers:
    """This process's lease keepers (firings, deliveries), for this process's container."""
    global _keepers_of
    if _keepers_of is None or _keepers_of[0] is not c:
        marks = inflight(c.redis)
        fires = LeaseKeeper("firings", c.index.renew, c.clock, c.settings.scheduler_lease_s)
        deliveries: LeaseKeeper[str] = LeaseKeeper(
            "deliveries",
            lambda ids, until: marks.renew(ids, until.timestamp()),
            c.clock,
            c.settings.delivery_running_lease_s,
        )
        _keepers_of = (c, Keepers(fires, deliveries))
    return _keepers_of[1]


@app.task(name=FIRE, acks_late=True)
def fire_deadline(deadline_id: int) -> None:
    """Fire one claimed deadline, then release its claim. If it fails (the database or Redis
    away), its lease runs out within `scheduler_lease_s` and a scheduler sends it again: one
    task per deadline at a time, never a chain of retries beside a reclaim."""
    c = current()
    with _keepers(c).fires.holding([deadline_id]):  # its lease lives as long as the firing
        result = fire(c.sessions, c.policies, c.clock, deadline_id)
        run_effects(c, result.effects)
    c.index.ack(deadline_id)
    if not result.fired:
        log.debug("escalation.fenced", deadline_id=deadline_id, reason=result.note)


@app.task(name=DELIVER, acks_late=True)
def deliver_message(message_id: str) -> None:
    """Deliver one outbox message; on failure schedule its retry after the backoff."""
    deliver_messages([message_id])


@app.task(name=DELIVER_BATCH, acks_late=True)
def deliver_batch(message_ids: list[str]) -> None:
    """Deliver the messages one transaction wrote, in one task."""
    deliver_messages(message_ids)


def deliver_messages(message_ids: list[str]) -> None:
    """Deliver, holding the ids' in-flight marks with the running lease meanwhile; then drop
    the marks of what is done and send the retries (their marks last until due)."""
    c = current()
    marks = inflight(c.redis)
    with _keepers(c).deliveries.holding(message_ids):  # the running lease, renewed
        if len(message_ids) == 1:
            [only] = message_ids
            outcomes = {only: deliver(c.sessions, c.channels, c.clock, c.settings, only)}
        else:  # two transactions for the lot instead of two per message
            outcomes = deliver_many(c.sessions, c.channels, c.clock, c.settings, message_ids)
    # A skipped id is another task's (it holds the database lease): its mark is left alone.
    done = [m for m, outcome in outcomes.items() if outcome.state in FINISHED]
    if done:
        settle("unmark", lambda: marks.unmark(done), "the marks expire", messages=len(done))
    for message_id, outcome in outcomes.items():
        if outcome.retry_in is not None:
            # A countdown is fine here: a short retry backoff, never an SLA deadline. If it is
            # lost, the scheduler's outbox sweep sends the message anyway.
            send_deliveries(c, [message_id], countdown=max(outcome.retry_in, 0.001))
