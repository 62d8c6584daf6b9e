"""Keeping the leases of running firings alive, so only a lost task's lease runs out.

One daemon thread per process renews, every third of the lease, the in-flight entries of every
firing the process is running (one ZADD XX for all of them). It starts on first use, in the
process that uses it: a prefork child has its own.
"""

from __future__ import annotations

import os
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

import structlog

from worker.clock import Clock
from worker.deadline_index import DeadlineIndex

log = structlog.get_logger("escalator.leases")


class LeaseKeeper:
    """Renews the leases of the deadlines this process is firing."""

    def __init__(self, index: DeadlineIndex, clock: Clock, lease_s: float) -> None:
        self.index = index
        self.clock = clock
        self.lease = timedelta(seconds=lease_s)
        self._held: Counter[int] = Counter()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._pid = 0

    @contextmanager
    def holding(self, deadline_id: int) -> Iterator[None]:
        """Keep `deadline_id`'s lease alive while the block runs."""
        self.index.renew([deadline_id], self.clock.now() + self.lease)
        with self._lock:
            self._held[deadline_id] += 1
            self._start()
        try:
            yield
        finally:
            with self._lock:
                self._held[deadline_id] -= 1
                if self._held[deadline_id] <= 0:
                    del self._held[deadline_id]

    def _start(self) -> None:
        if self._thread is not None and self._pid == os.getpid() and self._thread.is_alive():
            return
        self._pid = os.getpid()
        self._thread = threading.Thread(target=self._run, name="lease-keeper", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        pause = self.lease.total_seconds() / 3
        while True:
            time.sleep(pause)
            with self._lock:
                held = list(self._held)
            if not held:
                continue
            try:
                self.index.renew(held, self.clock.now() + self.lease)
            except Exception as exc:  # Redis away: the lease may run out; the fence holds
                log.warning("lease.renew_failed", error=f"{type(exc).__name__}: {exc}")
