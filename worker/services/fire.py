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
from worker.services.firing import Happened, happened
from worker.services.history import Loaded
from worker.services.uow import Effects, Units
from worker.store import repository as repo

log = structlog.get_logger("escalator.escalation")


@dataclass(frozen=True, slots=True)
class FireResult:
    """What one firing did: `fired` is False for a fenced no-op; `failed` when it raised (it
    stays armed and claimed: its lease runs out and a scheduler sends it again)."""

    fired: bool
    note: str
    effects: Effects
    issue_key: str | None = None
    failed: bool = False
    happened: Happened | None = None  # a firing that counted: what it did, for the metrics


def fire(units: Units, policies: PolicyFile, clock: Clock, deadline_id: int) -> FireResult:
    """Fire one deadline, at most once in effect however often it is called; what it arms,
    cancels and queues is indexed and dispatched after the commit (the unit of work)."""
    [result] = _fire_together(units, policies, clock, [deadline_id])
    return result


def fire_many(
    units: Units, policies: PolicyFile, clock: Clock, deadline_ids: Sequence[int]
) -> list[FireResult]:
    """Fire claimed deadlines together: one transaction, each fenced as `fire` fences it, in
    order of due time. If the lot fails (a bug tripped by one of them), each is fired again
    in a transaction of its own, so one bad deadline never holds up the others."""
    ids = list(dict.fromkeys(deadline_ids))
    if len(ids) <= 1:
        return [fire(units, policies, clock, deadline_id) for deadline_id in ids]
    try:
        return _fire_together(units, policies, clock, ids)
    except (OperationalError, DBAPIError) as exc:
        if not isinstance(exc, IntegrityError):
            raise  # the database is away: the task's leases run out and a scheduler resends
        log.info("escalation.fire_one_by_one", reason=str(exc), count=len(ids))
    except Exception:
        log.warning("escalation.fire_one_by_one", count=len(ids), exc_info=True)
    return [_fire_alone(units, policies, clock, deadline_id) for deadline_id in ids]


def _fire_alone(units: Units, policies: PolicyFile, clock: Clock, deadline_id: int) -> FireResult:
    """One of a lot that failed, in a transaction of its own: if it fails again, the others
    still fire, and it is left claimed (retried when its lease runs out)."""
    error: Exception
    try:
        return fire(units, policies, clock, deadline_id)
    except (OperationalError, DBAPIError) as exc:
        if not isinstance(exc, IntegrityError):
            raise
        error = exc
    except Exception as exc:
        error = exc
    log.error(
        "escalation.fire_failed", deadline_id=deadline_id, error=f"{type(error).__name__}: {error}"
    )
    return FireResult(False, f"failed: {type(error).__name__}: {error}", Effects(), failed=True)


def _fire_together(
    units: Units, policies: PolicyFile, clock: Clock, ids: list[int]
) -> list[FireResult]:
    results: dict[int, FireResult] = {}
    with units() as uow:
        store, effects = uow.store, uow.effects
        keys = store.issues.keys_of_deadlines(ids)
        # Lock the issues first (loading them with their armed deadlines), in id order, then
        # the deadlines: the order ingest takes, so the two never deadlock on PostgreSQL.
        loaded = Loaded(uow, (), set(keys.values()))
        deadlines = store.deadlines.lock_many(keys)
        now = clock.now()
        # every armed one claimed in one statement, each still fenced by its own row
        won = store.deadlines.claim_many(
            [i for i, d in deadlines.items() if d.state == repo.ARMED], now
        )
        for deadline_id, deadline in sorted(deadlines.items(), key=lambda d: d[1].due_at):
            issue = loaded.issues[keys[deadline_id]]
            if deadline.state != repo.ARMED:
                # A repeat (or cancelled by a firing before it in this transaction): make sure
                # what the first firing armed is indexed, then do nothing.
                effects.arm += loaded.armed_ids(issue)
                note = f"already {deadline.state}"
                results[deadline_id] = FireResult(False, note, effects, issue.key)
                continue
            if deadline_id not in won:
                results[deadline_id] = FireResult(False, "lost the race", effects, issue.key)
                continue
            under = store.policies.under(issue.policy_version, policies)
            firing = loaded.fire(issue, deadline, under, now, now, claimed=True)
            assert firing is not None  # claimed above
            if not firing.changes:  # the fence: nothing to do
                results[deadline_id] = FireResult(False, firing.message, effects, issue.key)
            else:
                # the deadline fired here is acked by its task, not dropped from the index
                loaded.disarm.remove(deadline_id)
                record = happened(issue, deadline, firing, now)
                results[deadline_id] = FireResult(
                    True, firing.message, effects, issue.key, happened=record
                )
        effects.merge(loaded.effects())
    missing = FireResult(False, "no such deadline", effects)
    return [results.get(deadline_id, missing) for deadline_id in ids]
