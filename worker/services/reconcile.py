"""Rebuilding the deadline index from the database, which is the source of truth.

One pass walks the armed deadlines in order of due time, a page at a time
(`worker/store/reconcile_queries.py: armed_page`, a range scan of an index: O(n) for the pass),
and compares each page with the slice of the index that covers the same due times, read in one
round trip (`Index.due_between`). Only the differences are written: deadlines missing from the
index or indexed at another time are armed (never one in flight: the arm script skips those);
index entries of that slice that the page does not hold are looked up in the database *after*
the index was read, and dropped if they are no longer armed. Then the in-flight entries are
checked the same way. A pass over a healthy index therefore reads the database and Redis once
and writes nothing; a rebuilt index gets its earliest deadlines first, so a scheduler claims
the overdue ones within a page of the rebuild's start.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import structlog

from worker.domain.clock import Clock
from worker.domain.ports import Index
from worker.store.db import SessionFactory
from worker.store.reconcile_queries import Cursor, Page, armed_page, not_armed

log = structlog.get_logger("escalator.reconciler")


@dataclass(frozen=True, slots=True)
class Report:
    """How many deadlines were missing from the index, and how many stale entries were dropped."""

    armed: int
    rearmed: int
    dropped: int


@dataclass
class _Pass:
    index: Index
    readers: SessionFactory
    page: int
    armed: int = 0
    rearmed: int = 0
    dropped: int = 0

    def drop_stale(self, candidates: Sequence[int]) -> int:
        """Drop the candidates the database does not hold as armed (read after the index)."""
        if not candidates:
            return 0
        with self.readers() as session:
            stale = not_armed(session, candidates)
        # In-flight entries of fired deadlines are acked by their task; dropping them is safe.
        self.index.disarm(stale)
        self.dropped += len(stale)
        return len(stale)

    def compare(
        self,
        rows: Page,
        low: float | None,
        high: float | None,
        boundary: set[int],
    ) -> None:
        """Make the index's due entries scored from `low` to `high` equal to `rows`. Entries at
        `low` in `boundary` belong to the page before; those at `high` (unless it is the last
        page, `high` None) are left for the page after, whose range starts there."""
        due = dict(rows)
        matched: set[int] = set()
        offset, chunk = 0, 2 * self.page
        while True:
            part = self.index.due_between(low, high, offset, chunk)
            extra = []
            for member, at in part:
                if member < 0:  # a canary (worker/broker/canary.py): no row, left alone
                    continue
                if due.get(member) == at:
                    matched.add(member)
                elif member not in due and member not in boundary and at != high:
                    extra.append(member)
            # dropped entries leave the range: the next slice starts that much nearer
            offset += len(part) - self.drop_stale(extra)
            if len(part) < chunk:
                break
        missing = [(i, datetime.fromtimestamp(at, UTC)) for i, at in rows if i not in matched]
        if missing:
            self.rearmed += self.index.arm(missing)
        self.armed += len(rows)


def reconcile(index: Index, readers: SessionFactory, clock: Clock, page: int = 5000) -> Report:
    """Make the index hold every armed deadline (skipping ones in flight) and nothing else."""
    started = time.monotonic()
    intact = index.mark_intact(clock.now())  # a loss from here on is noticed and rebuilt again
    if not intact:
        log.warning("reconcile.rebuilding", reason="the index was lost (or never built)")
    run = _Pass(index, readers, page)
    after: Cursor | None = None
    low: float | None = None  # the index range of this page starts here, included
    boundary: set[int] = set()  # ids of the pages before, due exactly at `low`
    while True:
        with readers() as session:
            rows, cursor = armed_page(session, after, page)
        last = len(rows) < page
        high = None if last else rows[-1][1]
        run.compare(rows, low, high, boundary)
        if last:
            break
        ties = {i for i, at in rows if at == high}
        boundary = boundary | ties if high == low else ties
        after, low = cursor, high
    run.drop_stale([i for i in index.in_flight() if i >= 0])  # canaries are the task's to ack
    took = round(time.monotonic() - started, 2)
    report = Report(run.armed, run.rearmed, run.dropped)
    if run.rearmed or run.dropped:
        log.warning(
            "reconcile.repaired",
            armed=run.armed,
            rearmed=run.rearmed,
            dropped=run.dropped,
            took_s=took,
        )
    else:
        log.info("reconcile.ok", armed=run.armed, took_s=took)
    return report
