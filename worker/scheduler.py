"""The scheduler role: claims due deadlines from the index and hands them to Celery.

Any number may run: claims are atomic (see `deadline_index`). Each also reconciles the index
with the database at start-up and every `reconcile_every_s`, and sweeps the outbox for messages
whose delivery task was lost.
"""

from __future__ import annotations

import threading
import time

import structlog

from worker.bootstrap import Container
from worker.celery_app import app
from worker.notify.dispatcher import sweep_outbox
from worker.post_commit import FIRE
from worker.reconciler import reconcile

log = structlog.get_logger("escalator.scheduler")


class Scheduler:
    """`tick()` claims and dispatches once; `run()` loops until `stop` is set."""

    def __init__(self, c: Container, stop: threading.Event | None = None) -> None:
        self.c = c
        self.stop = stop or threading.Event()
        self.dispatched = 0
        self._next_reconcile = 0.0
        self._next_sweep = 0.0

    def tick(self) -> int:
        """Claim what is due now and send it to the workers; returns how many."""
        settings = self.c.settings
        now = self.c.clock.now()
        due, reclaimed = self.c.index.claim(
            now, settings.scheduler_lease_s, settings.scheduler_batch
        )
        for deadline_id in due + reclaimed:
            app.send_task(FIRE, args=[deadline_id])
        if reclaimed:
            log.warning("deadline.reclaimed", count=len(reclaimed), ids=reclaimed[:20])
        self.dispatched += len(due) + len(reclaimed)
        return len(due) + len(reclaimed)

    def housekeeping(self) -> None:
        """Reconcile the index and sweep the outbox when their time comes."""
        now = time.monotonic()
        settings = self.c.settings
        if now >= self._next_reconcile:
            self._next_reconcile = now + settings.reconcile_every_s
            reconcile(self.c)
        if now >= self._next_sweep:
            self._next_sweep = now + settings.outbox_sweep_every_s
            sweep_outbox(self.c)

    def _housekeeping_loop(self) -> None:
        # Apart from the claim loop, so a long reconcile (about 1.6 s per 100,000 armed
        # deadlines) never delays a claim.
        while not self.stop.is_set():
            try:
                self.housekeeping()
            except Exception as exc:
                log.error("scheduler.housekeeping_failed", error=f"{type(exc).__name__}: {exc}")
            self.stop.wait(0.5)

    def run(self) -> None:
        log.info("scheduler.started")
        keeper = threading.Thread(target=self._housekeeping_loop, name="housekeeping", daemon=True)
        keeper.start()
        failures = 0
        while not self.stop.is_set():
            try:
                if self.tick() >= self.c.settings.scheduler_batch:
                    continue  # more are due right now
                self.stop.wait(self._sleep())
                failures = 0
            except Exception as exc:  # Redis or the database away: keep trying, loudly
                failures += 1
                delay = min(30.0, 0.5 * 2 ** min(failures, 6))
                log.error(
                    "scheduler.failed", error=f"{type(exc).__name__}: {exc}", retry_in_s=delay
                )
                self.stop.wait(delay)
        keeper.join(timeout=10)
        log.info("scheduler.stopped", dispatched=self.dispatched)

    def _sleep(self) -> float:
        poll = self.c.settings.scheduler_poll_s
        next_due = self.c.index.next_due()
        if next_due is None:
            return poll
        return max(0.0, min(poll, next_due - self.c.clock.now().timestamp()))
