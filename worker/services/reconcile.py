"""Rebuilding the deadline index from the database, which is the source of truth."""

from __future__ import annotations

from dataclasses import dataclass

import structlog

from worker.bootstrap import Container
from worker.store import repository as repo

log = structlog.get_logger("escalator.reconciler")


@dataclass(frozen=True, slots=True)
class Report:
    """How many deadlines were missing from the index, and how many stale entries were dropped."""

    armed: int
    rearmed: int
    dropped: int


def reconcile(c: Container, page: int = 5000) -> Report:
    """Index every armed deadline (skipping ones in flight); drop entries no longer armed."""
    armed = rearmed = dropped = 0
    after = 0
    c.index.mark_intact(c.clock.now())  # a loss from here on is noticed and rebuilt again
    while True:
        with c.readers() as session:
            rows = repo.armed_deadlines(session, after_id=after, limit=page)
        if not rows:
            break
        armed += len(rows)
        rearmed += c.index.arm(rows)
        after = rows[-1][0]
    for members in c.index.members(page):
        with c.readers() as session:
            stale = repo.not_armed(session, members)
        # In-flight entries of fired deadlines are acked by their task; dropping them is safe.
        c.index.disarm(stale)
        dropped += len(stale)
    report = Report(armed, rearmed, dropped)
    if rearmed or dropped:
        log.warning("reconcile.repaired", armed=armed, rearmed=rearmed, dropped=dropped)
    else:
        log.info("reconcile.ok", armed=armed)
    return report
