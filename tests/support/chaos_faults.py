"""The faults of a chaos run, one after another, each recorded with its time.

After a fault that stalls ingest (a killed consumer's unacked batch, Redis away, FLUSHALL) the
record says how many events were not applied yet when it began, and when ingest had caught up
again: every event delivered before the fault ended has its ProcessedEvent row (or a dead
letter); measured by polling for at most `GRACE_S`. That is evidence for a diagnosis; the
oracle itself needs no fault times (tests/support/chaos_oracle.py).

FLUSHALL loses the stream entries not yet applied, by definition. This run re-sends them: at the
moment of the flush (no send in between, `Load.gate`), every event delivered so far that has no
ProcessedEvent row is XADDed again with its own event id, so a copy that was in fact being
applied is a counted duplicate. The oracle then requires every event to have its row.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from redis import Redis

from tests.support.chaos import Roles
from tests.support.chaos_load import Load
from tests.support.chaos_observe import dead_event_id, dead_letters, processed_ids
from tests.support.stack import Stack
from worker.broker.embedded import EmbeddedRedis

GRACE_S = 20.0  # how long to watch ingest catch up after a fault
OUTAGE_S = 15.0  # both schedulers stopped this long


@dataclass
class Faults:
    roles: Roles
    redis: EmbeddedRedis
    load: Load
    stack: Stack
    t0: float
    record: list[str] = field(default_factory=list)
    dead_before_flush: list[dict[str, Any]] = field(default_factory=list)
    resent: int = 0

    def schedule(self) -> list[tuple[float, str, bool, Callable[[], None]]]:
        """(seconds after t0, name, whether it stalls ingest, action)."""
        return [
            (6.0, "kill -9 ingest-0", True, lambda: self.kill_restart("ingest")),
            (12.0, "kill -9 scheduler-0", False, lambda: self.kill_restart("scheduler")),
            (18.0, "kill -9 worker-0", False, lambda: self.kill_restart("worker")),
            (25.0, "redis restart", True, self.restart_redis),
            (32.0, f"scheduler outage {OUTAGE_S:.0f}s", False, self.scheduler_outage),
            (55.0, "FLUSHALL", True, self.flushall),
        ]

    def run(self) -> None:
        for at, name, stalls, action in self.schedule():
            pause = self.t0 + at - time.time()
            if pause > 0:
                time.sleep(pause)
            start = time.time()
            held = self.unapplied() if stalls else set()
            action()
            end = time.time()
            line = f"{name}: +{start - self.t0:.1f}s..+{end - self.t0:.1f}s"
            if stalls:
                caught = self.catch_up(end)
                late = "" if caught < end + GRACE_S else " (not caught up: gave up waiting)"
                line += f"; {len(held)} unapplied, caught up at +{caught - self.t0:.1f}s{late}"
            self.record.append(line)

    def unapplied(self) -> set[str]:
        """Events delivered so far with no ProcessedEvent row and no dead letter."""
        dead = {dead_event_id(e) for e in dead_letters(self.stack.redis)}
        return set(self.load.deliveries) - processed_ids(self.stack) - dead

    def catch_up(self, end: float) -> float:
        """When every event delivered before `end` was applied (at most `end + GRACE_S`)."""
        while time.time() < end + GRACE_S:
            before = {e for e, times in self.load.deliveries.items() if times[0] <= end}
            if not before & self.unapplied():
                return time.time()
            time.sleep(0.2)
        return end + GRACE_S

    def kill_restart(self, role: str) -> None:
        """SIGKILL copy 0 of the role (every process of it), then start it again."""
        names = [n for n in self.roles.of(role) if n.startswith(f"{role}-0")]
        self.roles.kill(*names)
        self.roles.start(*names)

    def restart_redis(self) -> None:
        """Stop Redis cleanly (its AOF written), leave it down a second, start it again."""
        self.redis.stop()
        time.sleep(1.0)
        self.redis.start()

    def scheduler_outage(self) -> None:
        names = self.roles.of("scheduler")
        self.roles.stop(*names)
        time.sleep(OUTAGE_S)
        self.roles.start(*names)

    def flushall(self) -> None:
        with self.load.gate:
            self.dead_before_flush = dead_letters(self.stack.redis)
            with Redis.from_url(self.redis.url) as client:
                client.flushall()
            done = processed_ids(self.stack)
            missing = [eid for eid in self.load.deliveries if eid not in done]
            self.load.resend(missing)
            self.resent = len(missing)
        self.record.append(f"FLUSHALL: re-sent {self.resent} events not applied at the flush")
