"""The chaos load: a seeded plan of issues and their events, and the thread that sends it.

Times in a plan are seconds after the load's start `t0` (epoch seconds). Every acknowledgement
and resolution falls at least `MARGIN` from every ladder due time of its issue, and a late send
still arrives `MARGIN` before the next one, so what must happen is unambiguous.
"""

from __future__ import annotations

import random
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime

from redis import Redis
from redis.exceptions import RedisError

from tests.support.stack import event
from worker.broker.producer import Producer

TIER_S = 4.0  # each of L1, L2, L3, manager holds the issue this long
TIERS = ("L1", "L2", "L3", "manager")
STEPS = len(TIERS) - 1  # escalations: to L2, to L3, to manager
REMIND_AT = len(TIERS) * TIER_S  # the last tier's first reminder
MARGIN = 1.0  # acks and resolves keep this far from every due time
SOURCE = "chaos"
POISON = ('{"event_id": "chaos-poison-1", "type": "issue.opened"}', "chaos poison: not JSON {")


@dataclass(frozen=True)
class Send:
    """One stream entry to XADD at `at`: an event (occurred at `occurred`) or raw poison."""

    at: float
    kind: str
    issue: str
    occurred: float
    event_id: str
    raw: str | None = None


@dataclass
class IssuePlan:
    key: str
    category: str
    opened: float
    acked: float | None = None
    resolved: float | None = None

    def due(self, step: int) -> float:
        """When escalation `step` (1: to L2 ... 3: to manager) falls due."""
        return self.opened + step * TIER_S

    def stops(self) -> list[tuple[str, float]]:
        """The events that stop the ladder: (kind, occurred)."""
        found = [("issue.acknowledged", self.acked), ("issue.resolved", self.resolved)]
        return [(kind, at) for kind, at in found if at is not None]


def _window(rng: random.Random, opened: float, k: int) -> float:
    """A time in the k-th gap between due times (k=0: before the first escalation)."""
    low = opened + k * TIER_S + (MARGIN if k else 0.5)
    return rng.uniform(low, opened + (k + 1) * TIER_S - MARGIN)


def build_plan(seed: int, issues: int, span: float) -> tuple[list[IssuePlan], list[Send]]:
    """The issues and every send, in order of sending; the same seed gives the same plan."""
    rng = random.Random(seed)
    plans: list[IssuePlan] = []
    sends: list[Send] = []

    def send(at: float, kind: str, key: str, occurred: float, eid: str) -> None:
        sends.append(Send(at, kind, key, occurred, eid))

    for n in range(issues):
        key = f"CH-{n}"
        opened = 1.0 + span * n / issues + rng.uniform(0, 0.2)
        plan = IssuePlan(key, "", opened)
        roll = rng.random()
        open_at = opened
        if roll < 0.20:  # acknowledged before its first escalation
            plan.category, plan.acked = "ack-early", _window(rng, opened, 0)
        elif roll < 0.45:  # acknowledged between ladder steps
            plan.category, plan.acked = "ack-between", _window(rng, opened, rng.randint(1, 3))
        elif roll < 0.55:  # acknowledged in time, delivered late (older occurred_at)
            k = rng.randint(0, 2)
            plan.category = "ack-sent-late"
            plan.acked = opened + k * TIER_S + (MARGIN if k else 0.5) + rng.uniform(0, 0.5)
        elif roll < 0.65:  # the ack arrives first; its open comes late
            plan.category, plan.acked = "ack-before-open", opened + rng.uniform(0.5, 2.0)
            open_at = plan.acked + rng.uniform(0.2, 0.8)
        elif roll < 0.75:  # resolved, never acknowledged
            plan.category, plan.resolved = "resolved", _window(rng, opened, rng.randint(0, 4))
        else:
            plan.category = "never-acked"
        if plan.acked is not None and rng.random() < 0.3:  # resolved after its acknowledgement
            acked = plan.acked
            k = next(k for k in range(1, 6) if opened + k * TIER_S + MARGIN >= acked + 1.0)
            plan.resolved = _window(rng, opened, min(k, 4))
        send(open_at, "issue.opened", key, opened, f"{key}-open")
        if rng.random() < 0.15:  # a duplicate at once, the same event id
            send(open_at + 0.01, "issue.opened", key, opened, f"{key}-open")
        if rng.random() < 0.05:  # a duplicate much later
            send(open_at + rng.uniform(5, 10), "issue.opened", key, opened, f"{key}-open")
        if plan.acked is not None:
            ack_at = plan.acked
            if plan.category == "ack-sent-late":
                ack_at += rng.uniform(0.5, 1.0)
            send(ack_at, "issue.acknowledged", key, plan.acked, f"{key}-ack")
            if rng.random() < 0.2:
                send(
                    ack_at + rng.uniform(1, 5), "issue.acknowledged", key, plan.acked, f"{key}-ack"
                )
        if plan.resolved is not None:
            send(plan.resolved, "issue.resolved", key, plan.resolved, f"{key}-resolve")
        plans.append(plan)
    end = max(s.at for s in sends)
    sends += [Send(end + 0.5 + n, "poison", "", 0.0, "", raw) for n, raw in enumerate(POISON)]
    sends.sort(key=lambda s: s.at)
    return plans, sends


@dataclass
class Load:
    """Sends a plan's entries on time from a thread, retrying through Redis outages.

    `deliveries[event_id]` holds the epoch time of every XADD that succeeded. `gate` is held
    around each send, so a fault (FLUSHALL and re-sending) can run between two sends.
    """

    redis_url: str
    sends: list[Send]
    t0: float = 0.0
    gate: threading.Lock = field(default_factory=threading.Lock)
    deliveries: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    events: dict[str, Send] = field(default_factory=dict)
    failures: int = 0
    stop: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        self.redis = Redis.from_url(self.redis_url, decode_responses=True, socket_timeout=5)
        self.producer = Producer(self.redis)
        self.thread = threading.Thread(target=self._run, name="chaos-load", daemon=True)

    def start(self, t0: float) -> None:
        self.t0 = t0
        self.thread.start()

    def at(self, rel: float) -> datetime:
        return datetime.fromtimestamp(self.t0 + rel, UTC)

    def _xadd(self, entry: Send) -> None:
        while not self.stop.is_set():
            try:
                if entry.raw is not None:
                    self.producer.send_raw(entry.raw)
                else:
                    self.producer.send(
                        event(entry.kind, entry.issue, at=self.at(entry.occurred),
                              event_id=entry.event_id, source=SOURCE)
                    )  # fmt: skip
                    self.deliveries[entry.event_id].append(time.time())
                    self.events[entry.event_id] = entry
                return
            except (RedisError, OSError):
                self.failures += 1  # Redis is away: send again until it is back
                time.sleep(0.1)

    def _run(self) -> None:
        for entry in self.sends:
            if self.stop.wait(max(0.0, self.t0 + entry.at - time.time())):
                return
            with self.gate:
                self._xadd(entry)

    def resend(self, event_ids: list[str]) -> None:
        """XADD these events again (the caller holds `gate`)."""
        for event_id in event_ids:
            self._xadd(self.events[event_id])

    def join(self, timeout: float) -> None:
        self.thread.join(timeout)

    def close(self) -> None:
        self.stop.set()
        if self.thread.is_alive():
            self.thread.join(10)
        self.redis.close()
