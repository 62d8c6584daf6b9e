"""Rebuilding the deadline index from the database, which is the source of truth."""

from __future__ import annotations

from dataclasses import dataclass

import structlog

from worker.domain.clock import Clock
from worker.domain.ports import Index
from worker.store import repository as repo
from worker.store.db import SessionFactory

log = structlog.get_logger("escalator.reconciler")


@dataclass(frozen=True, slots=True)
class Report:
    """How many deadlines were missing from the index, and how many stale entries were dropped."""

    armed: int
    rearmed: int
    dropped: int


def reconcile(index: Index, readers: SessionFactory, clock: Clock, page: int = 5000) -> Report:
    """Index every armed deadline (skipping ones in flight); drop entries no longer armed."""
    armed = rearmed = dropped = 0
    after = 0
    index.mark_intact(clock.now())  # a loss from here on is noticed and rebuilt again
    while True:
        with readers() as session:
            rows = repo.armed_deadlines(session, after_id=after, limit=page)
        if not rows:
            break
        armed += len(rows)
        rearmed += index.arm(rows)
        after = rows[-1][0]
    for members in index.members(page):
        with readers() as session:
            stale = repo.not_armed(session, members)
        # In-flight entries of fired deadlines are acked by their task; dropping them is safe.
        index.disarm(stale)
        dropped += len(stale)
    report = Report(armed, rearmed, dropped)
    if rearmed or dropped:
        log.warning("reconcile.repaired", armed=armed, rearmed=rearmed, dropped=dropped)
    else:
        log.info("reconcile.ok", armed=armed)
    return report
