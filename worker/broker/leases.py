"""Keeping the leases of running tasks alive, so that only a lost task's lease runs out.

A firing holds its deadline's entry in the index's in-flight set; a delivery task holds its
messages' marks in the outbox's in-flight set. Each is claimed with a lease: a scheduler, or
the sweep, hands the work out again only once that lease has run out. While a task runs, one
daemon thread per process renews the leases of everything the process is running, every third
of the lease, in one write per kind; so a task slowed by a busy database keeps its claim, and
the claims of a worker killed with `kill -9` run out within one lease. The thread starts on
first use in the process that uses it: a prefork child has its own.

A renewal that fails (Redis away) is logged and never fails the task: the database fences every
effect, so a lease that lapses costs at most a repeated task, never a repeated effect.
"""

from __future__ import annotations

import os
import threading
import time
from collections import Counter
from collections.abc import Callable, Hashable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Generic, TypeVar

import structlog

from worker.broker.deadline_index import DeadlineIndex
from worker.broker.inflight import InFlight
from worker.domain.clock import Clock

log = structlog.get_logger("escalator.leases")

K = TypeVar("K", bound=Hashable)


class LeaseKeeper(Generic[K]):
    """Renews, with `renew(keys, until)`, the leases of the keys this process holds."""

    def __init__(
        self,
        name: str,
        renew: Callable[[Sequence[K], datetime], None],
        clock: Clock,
        lease_s: float,
    ) -> None:
        self.name = name
        self.renew = renew
        self.clock = clock
        self.lease = timedelta(seconds=lease_s)
        self._held: Counter[K] = Counter()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._pid = 0

    @contextmanager
    def holding(self, keys: Sequence[K]) -> Iterator[None]:
        """Keep the keys' leases alive while the block runs (the first renewal at once)."""
        self._renew(list(keys))
        with self._lock:
            self._held.update(keys)
            self._start()
        try:
            yield
        finally:
            with self._lock:
                self._held.subtract(keys)
                for key in keys:
                    if self._held[key] <= 0:
                        del self._held[key]

    def _renew(self, keys: list[K]) -> None:
        if not keys:
            return
        try:
            self.renew(keys, self.clock.now() + self.lease)
        except Exception as exc:
            log.warning(
                "lease.renew_failed", leases=self.name, error=f"{type(exc).__name__}: {exc}"
            )

    def _start(self) -> None:
        if self._thread is not None and self._pid == os.getpid() and self._thread.is_alive():
            return
        self._pid = os.getpid()
        self._thread = threading.Thread(target=self._run, name=f"{self.name}-leases", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        pause = self.lease.total_seconds() / 3
        while True:
            time.sleep(pause)
            with self._lock:
                held = list(self._held)
            self._renew(held)


@dataclass(frozen=True, slots=True)
class Keepers:
    """The leases a worker process renews while its tasks run: the deadlines it fires (in the
    index) and the outbox messages it delivers (their in-flight marks)."""

    fires: LeaseKeeper[int]
    deliveries: LeaseKeeper[str]

    @classmethod
    def of(
        cls, index: DeadlineIndex, marks: InFlight, clock: Clock, fire_s: float, deliver_s: float
    ) -> Keepers:
        deliveries: LeaseKeeper[str] = LeaseKeeper(
            "deliveries", lambda ids, until: marks.renew(ids, until.timestamp()), clock, deliver_s
        )
        return cls(LeaseKeeper("firings", index.renew, clock, fire_s), deliveries)
