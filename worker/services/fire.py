"""Firing a deadline: the fenced transaction that escalates, reminds or reports a breach.

The fence is twofold. The deadline row moves from `armed` to `fired` with a conditional UPDATE
(`claim`), so of any number of concurrent or repeated firings exactly one wins; and the domain's
`decide` applies the winner only if the issue still has the clock version and tier it was armed
for.

A firing takes its place in the issue's history at the deadline's due time, whenever it is
processed: `fire` runs it for the scheduler, and ingest runs the ones an event finds overdue
before applying that event (`worker/services/ingest.py`), so an acknowledgement processed after an
overdue escalation finds the issue escalated, as it was at the time.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import structlog
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError

from schemas.policy import PolicyFile
from worker.domain import Clock
from worker.services.history import Loaded
from worker.services.uow import Effects, Units
from worker.store import repository as repo

log = structlog.get_logger("escalator.escalation")


@dataclass(frozen=True, slots=True)
class FireResult:
    """What one firing did: `fired` is False for a fenced no-op."""

    fired: bool
    note: str
    effects: Effects
    issue_key: str | None = None


def fire(units: Units, policies: PolicyFile, clock: Clock, deadline_id: int) -> FireResult:
    """Fire one deadline, at most once in effect however often it is called; what it arms,
    cancels and queues is indexed and dispatched after the commit (the unit of work)."""
    with units() as uow:
        store, effects = uow.store, uow.effects
        key = store.issues.key_of_deadline(deadline_id)
        if key is None:
            return FireResult(False, "no such deadline", effects)
        # Lock the issue first (loading it with its armed deadlines), then the deadline: the
        # same order as ingest, so the two never deadlock on PostgreSQL.
        loaded = Loaded(uow, (), [key])
        issue = loaded.issues[key]
        deadline = store.deadlines.lock(deadline_id)
        if deadline.state != repo.ARMED:
            # A repeat: make sure what the first firing armed is indexed, then do nothing.
            effects.arm = [(d.id, d.due_at) for d in loaded.armed[issue]]
            return FireResult(False, f"already {deadline.state}", effects, issue.key)
        now = clock.now()
        under = store.policies.under(issue.policy_version, policies)
        firing = loaded.fire(issue, deadline, under, now, now)
        if firing is None:
            return FireResult(False, "lost the race", effects, issue.key)
        if not firing.changes:  # the fence: nothing to do
            return FireResult(False, firing.message, effects, issue.key)
        # the deadline fired here is acked by its task, not dropped from the index
        loaded.disarm.remove(deadline.id)
        effects.merge(loaded.effects())
    return FireResult(True, firing.message, effects, issue.key)


def fire_many(
    units: Units, policies: PolicyFile, clock: Clock, deadline_ids: Sequence[int]
) -> list[FireResult]:
    """Fire claimed deadlines together: one transaction, each fenced as `fire` fences it, in
    order of due time. If the lot fails (a bug tripped by one of them), each is fired again
    in a transaction of its own, so one bad deadline never holds up the others."""
    ids = list(dict.fromkeys(deadline_ids))
    if len(ids) == 1:
        return [fire(units, policies, clock, ids[0])]
    try:
        return _fire_together(units, policies, clock, ids)
    except (OperationalError, DBAPIError) as exc:
        if not isinstance(exc, IntegrityError):
            raise  # the database is away: the task's leases run out and a scheduler resends
        log.info("escalation.fire_one_by_one", reason=str(exc), count=len(ids))
    except Exception:
        log.warning("escalation.fire_one_by_one", count=len(ids), exc_info=True)
    return [fire(units, policies, clock, deadline_id) for deadline_id in ids]


def _fire_together(
    units: Units, policies: PolicyFile, clock: Clock, ids: list[int]
) -> list[FireResult]:
    results: dict[int, FireResult] = {}
    with units() as uow:
        store, effects = uow.store, uow.effects
        keys = store.issues.keys_of_deadlines(ids)
        # the issues first, in id order, then their deadlines: the order every writer takes
        loaded = Loaded(uow, (), set(keys.values()))
        deadlines = store.deadlines.lock_many(sorted(keys))
        now = clock.now()
        fired: list[int] = []
        for deadline in sorted(deadlines.values(), key=lambda d: (d.due_at, d.id)):
            issue = loaded.issues[keys[deadline.id]]
            if deadline.state != repo.ARMED:
                # a repeat (or cancelled by a firing before it): index what is armed
                effects.arm += [(d.id, d.due_at) for d in loaded.armed[issue]]
                note = f"already {deadline.state}"
                results[deadline.id] = FireResult(False, note, effects, issue.key)
                continue
            under = store.policies.under(issue.policy_version, policies)
            firing = loaded.fire(issue, deadline, under, now, now)
            if firing is None:
                results[deadline.id] = FireResult(False, "lost the race", effects, issue.key)
            elif not firing.changes:
                results[deadline.id] = FireResult(False, firing.message, effects, issue.key)
            else:
                fired.append(deadline.id)
                results[deadline.id] = FireResult(True, firing.message, effects, issue.key)
        # the deadlines fired here are acked by their task, not dropped from the index
        done = set(fired)
        loaded.disarm[:] = [i for i in loaded.disarm if i not in done]
        effects.merge(loaded.effects())
    missing = FireResult(False, "no such deadline", effects)
    return [results.get(deadline_id, missing) for deadline_id in ids]
