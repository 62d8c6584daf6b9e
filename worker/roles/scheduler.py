"""The scheduler role: claims due deadlines from the index and hands them to Celery.

Any number may run: claims are atomic (see `deadline_index`), and keep a bounded window of
firings in flight. A deadline is claimed once it is due and ingest has applied every event that
reached the stream before its due time (`watermark`). Each scheduler also reconciles the index
with the database at start-up, every `reconcile_every_s`, and at once when the index was lost;
and it sweeps the outbox for messages whose delivery task was lost.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta

import structlog

from worker.bootstrap import Container
from worker.broker.effects import INFRASTRUCTURE
from worker.broker.watermark import applied_until
from worker.domain.retry import backoff
from worker.gateway import metrics_record as record
from worker.roles.deadman import Deadman
from worker.roles.pulse import Pulse
from worker.services.reconcile import reconcile
from worker.store.event_bodies import prune as prune_bodies
from worker.store.outbox import SqlOutbox

log = structlog.get_logger("escalator.scheduler")
BUSY_POLL_S = 0.05  # how soon to look again when due deadlines wait for room or for ingest
SWEEP_SCAN = 5000  # due messages the outbox sweep looks at, oldest first
SWEEP_TASK = 100  # message ids per delivery task the sweep sends, so workers share them


class Scheduler:
    """`tick()` claims and dispatches once; `run()` loops until `stop` is set."""

    def __init__(self, c: Container, stop: threading.Event | None = None) -> None:
        self.c = c
        self.stop = stop or threading.Event()
        self.dispatched = 0
        self._next_reconcile = 0.0
        self._next_sweep = 0.0
        self._next_prune = 0.0
        self.deadman = Deadman(c)  # the canary and the dead-man's switch

    def tick(self) -> int:
        """Claim what is due now and send it to the workers; returns how many."""
        settings = self.c.settings
        index = self.c.index
        if not index.intact():  # Redis lost the index (FLUSHALL, a new server): rebuild now
            self._next_reconcile = 0.0
        now = self.c.clock.now()
        until = self.until(now)
        due, reclaimed = index.claim(
            now,
            settings.scheduler_dispatch_lease_s,
            settings.scheduler_batch,
            until=until,
            room=settings.scheduler_max_inflight,
        )
        claimed = due + reclaimed
        try:
            size = settings.scheduler_fire_batch
            for start in range(0, len(claimed), size):
                self.c.tasks.fire(claimed[start : start + size])
        except Exception:
            index.release(claimed, now)  # due again at once, rather than after the lease
            raise
        if reclaimed:
            log.warning("deadline.reclaimed", count=len(reclaimed), ids=reclaimed[:20])
        self.dispatched += len(claimed)
        record.claimed(due, reclaimed)
        return len(claimed)

    def until(self, now: datetime) -> datetime:
        """Claim what is due before the oldest event ingest has not applied yet (history is
        time-ordered), but never hold a deadline longer than `scheduler_max_hold_s`."""
        oldest = applied_until(self.c.redis)
        if oldest is None or oldest >= now:
            return now
        hold = timedelta(seconds=self.c.settings.scheduler_max_hold_s)
        if now - oldest > hold:
            log.warning("scheduler.ingest_behind", behind_s=round((now - oldest).total_seconds()))
        return max(oldest, now - hold)

    def housekeeping(self) -> None:
        """Reconcile the index, sweep the outbox and prune event contents when their time
        comes."""
        self.reconcile_when_due()
        self.sweep_when_due()
        self.prune_when_due()

    def prune_when_due(self) -> None:
        """Drop the contents of events older than `event_retention_days`, every
        `event_prune_every_s` (any scheduler may: the statement is idempotent)."""
        now = time.monotonic()
        if now >= self._next_prune:
            settings = self.c.settings
            self._next_prune = now + settings.event_prune_every_s
            before = self.c.clock.now() - timedelta(days=settings.event_retention_days)
            with self.c.sessions.begin() as session:
                pruned = prune_bodies(session, before)
            if pruned:
                log.info("events.pruned", bodies=pruned, before=before.isoformat())

    def reconcile_when_due(self) -> None:
        """Reconcile at start, every `reconcile_every_s`, and at once when the index was lost
        (`tick` asks for it); a failed reconcile is tried again within seconds."""
        now = time.monotonic()
        settings = self.c.settings
        if now >= self._next_reconcile:
            self._next_reconcile = now + settings.reconcile_retry_s
            reconcile(self.c.index, self.c.readers, self.c.clock)
            self._next_reconcile = time.monotonic() + settings.reconcile_every_s

    def sweep_when_due(self) -> None:
        now = time.monotonic()
        if now >= self._next_sweep:
            self._next_sweep = now + self.c.settings.outbox_sweep_every_s
            sweep_outbox(self.c)

    def _sweep_and_prune(self) -> None:
        self.sweep_when_due()
        self.prune_when_due()

    def _loop(self, step: Callable[[], None]) -> None:
        while not self.stop.is_set():
            try:
                step()
            except Exception as exc:
                log.error("scheduler.housekeeping_failed", error=f"{type(exc).__name__}: {exc}")
            self.stop.wait(0.25)

    def _threads(self) -> list[threading.Thread]:
        # Each beside the claim loop, which starts at once: claims of what the index holds
        # never wait for a reconcile (one from empty arms the earliest deadlines first), and
        # the outbox sweep never waits behind one.
        return [
            threading.Thread(target=self._loop, args=(step,), name=name, daemon=True)
            for name, step in (
                ("reconcile", self.reconcile_when_due),
                ("housekeeping", self._sweep_and_prune),
                ("canary", self.deadman.step),
            )
        ]

    def run(self) -> None:
        log.info("scheduler.started")
        pulse = Pulse(self.c.redis, "scheduler", self.c.settings.heartbeat_every_s).start()
        threads = self._threads()
        for thread in threads:
            thread.start()
        failures = 0
        while not self.stop.is_set():
            try:
                if self.tick() >= self.c.settings.scheduler_batch:
                    continue  # more are due right now
                self.stop.wait(self._sleep())
                failures = 0
            except Exception as exc:  # Redis or the database away: keep trying, loudly
                failures += 1
                delay = backoff(failures)
                log.error(
                    "scheduler.failed", error=f"{type(exc).__name__}: {exc}", retry_in_s=delay
                )
                self.stop.wait(delay)
        for thread in threads:
            thread.join(timeout=10)
        pulse.stop()
        log.info("scheduler.stopped", dispatched=self.dispatched)

    def _sleep(self) -> float:
        poll = self.c.settings.scheduler_poll_s
        next_due = self.c.index.next_due()
        if next_due is None:
            return poll
        wait = next_due - self.c.clock.now().timestamp()
        if wait <= 0:  # due but not claimed: the window is full, or ingest is behind
            return min(poll, BUSY_POLL_S)
        return min(poll, wait)


def sweep_outbox(c: Container) -> None:
    """Send again the pending, due messages whose delivery task is gone: those without a live
    in-flight mark, marked in the same atomic step, so several schedulers never both send one,
    and a message waiting in a backlog is never sent twice."""
    settings = c.settings
    with c.readers() as session:
        due = SqlOutbox(session).due(c.clock.now(), settings.outbox_sweep_every_s, SWEEP_SCAN)
    if not due:
        return
    now = c.clock.now().timestamp()
    lost = c.marks.take(due, now, now + settings.delivery_queued_lease_s)
    if not lost:
        return
    log.warning("outbox.swept", count=len(lost), due=len(due))
    for start in range(0, len(lost), SWEEP_TASK):
        chunk = lost[start : start + SWEEP_TASK]
        try:
            c.tasks.deliver(chunk)
        except INFRASTRUCTURE:
            c.marks.unmark(lost[start:])  # not sent: the next sweep tries again
            raise
        c.marks.counted(len(chunk))
