"""The canary: a deadline that proves end to end that escalations run.

Every `canary_every_s` one scheduler arms a canary in the real deadline index (the first to take
the period's slot key with SET NX: several schedulers arm one canary per period). It is claimed
like any deadline (the claim's Lua script, the in-flight window, the ingest watermark), sent in an
`escalation.fire_batch` task, and the worker records when it fired (`fire`), so the time from
its due time to its firing, its lateness, is what an escalation due then would have waited.

A canary's id is a negative integer that encodes its due time in milliseconds: no deadline of the
database has one, the reconcile leaves them alone (`is_canary`), and the firing task takes them
out before `fire_many` sees the lot. Canaries armed but never fired (no worker ran) are dropped
from the index after `STALE_PERIODS` periods, so a long outage does not pile them up.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

import structlog
from redis import Redis

from worker.broker.deadline_index import DeadlineIndex
from worker.broker.keys import CANARY, CANARY_ARMED, CANARY_PINGED, CANARY_SLOT, DUE, INFLIGHT

log = structlog.get_logger("escalator.canary")
STALE_PERIODS = 12  # a canary not fired after this many periods leaves the index
_RECORD = (Path(__file__).parent / "canary_record.lua").read_text()


@dataclass(frozen=True, slots=True)
class Canary:
    """The last canary fired: when it was due, when a worker fired it, how late."""

    due_at: float  # epoch seconds
    fired_at: float  # epoch seconds
    lateness_s: float

    @property
    def fired(self) -> datetime:
        return datetime.fromtimestamp(self.fired_at, UTC)


def is_canary(deadline_id: int) -> bool:
    """Canaries have negative ids; the database's deadlines never do."""
    return deadline_id < 0


def canary_id(due_at: float) -> int:
    """The id of the canary due at `due_at` (epoch seconds): minus its due time in ms."""
    return -max(1, round(due_at * 1000))


def due_of(deadline_id: int) -> float:
    """The due time (epoch seconds) a canary's id encodes."""
    return -deadline_id / 1000


def split(deadline_ids: Iterable[int]) -> tuple[list[int], list[int]]:
    """(deadlines of the database, canaries) of a claimed lot."""
    ids = list(deadline_ids)
    return [i for i in ids if not is_canary(i)], [i for i in ids if is_canary(i)]


def arm(index: DeadlineIndex, now: float, every_s: float) -> int | None:
    """Arm this period's canary, due now, unless another scheduler did; its id, or None.
    Canaries left unfired for `STALE_PERIODS` periods are dropped at the same time."""
    redis = index.redis
    period = math.floor(now / every_s)
    ttl = max(1, math.ceil(every_s * 3))
    if not redis.set(f"{CANARY_SLOT}{period}", "1", nx=True, ex=ttl):
        return None
    armed = canary_id(now)
    index.arm([(armed, datetime.fromtimestamp(now, UTC))])
    redis.zadd(CANARY_ARMED, {str(armed): now})
    old = cast(list[str], redis.zrangebyscore(CANARY_ARMED, "-inf", now - STALE_PERIODS * every_s))
    stale = [int(m) for m in old]
    if stale:
        index.disarm(stale)
        redis.zrem(CANARY_ARMED, *[str(i) for i in stale])
        log.warning("canary.dropped_unfired", count=len(stale), oldest_due=due_of(max(stale)))
    return armed


def fire(index: DeadlineIndex, deadline_ids: Sequence[int], now: float) -> list[int]:
    """The firing task's part: record the lot's canaries as fired now and ack their claims;
    returns the other ids, the deadlines the task fires."""
    real, canaries = split(deadline_ids)
    if canaries:
        record(index.redis, canaries, now)
        index.ack(*canaries)
    return real


def record(redis: Redis, canaries: Sequence[int], fired_at: float) -> None:
    """Remember the latest of these canaries as fired at `fired_at` (an older one fired late,
    say a reclaim after a worker died, never hides a newer one)."""
    latest = min(canaries)  # the most negative id: the latest due time
    due_at = due_of(latest)
    lateness = max(0.0, fired_at - due_at)
    script = redis.register_script(_RECORD)
    script(keys=[CANARY], args=[repr(due_at), repr(fired_at), repr(lateness)])
    redis.zrem(CANARY_ARMED, *[str(i) for i in canaries])
    log.debug("canary.fired", due_at=due_at, lateness_s=round(lateness, 3))


def parse(fields: Mapping[Any, Any]) -> Canary | None:
    """The canary HASH as read (HGETALL); None when no canary fired yet or it is unreadable."""
    values = {
        (k.decode() if isinstance(k, bytes) else k): (v.decode() if isinstance(v, bytes) else v)
        for k, v in fields.items()
    }
    try:
        return Canary(
            float(values["due_at"]), float(values["fired_at"]), float(values["lateness_s"])
        )
    except (KeyError, ValueError):
        return None


def last(redis: Redis) -> Canary | None:
    """The last canary fired, if any."""
    return parse(cast(Mapping[str, str], redis.hgetall(CANARY)))


def may_ping(redis: Redis, now: float, every_s: float) -> bool:
    """True for one scheduler per period: the one that pings the dead-man's switch."""
    period = math.floor(now / every_s)
    ttl = max(1, math.ceil(every_s * 3))
    return bool(redis.set(f"{CANARY_PINGED}{period}", "1", nx=True, ex=ttl))


def in_index(redis: Redis) -> tuple[int, int]:
    """(due, in flight): how many canaries the index holds, to tell them from deadlines."""
    armed = [str(m) for m in redis.zrange(CANARY_ARMED, 0, -1)]
    if not armed:
        return 0, 0
    pipe = redis.pipeline(transaction=False)
    pipe.zmscore(DUE, armed)
    pipe.zmscore(INFLIGHT, armed)
    due, inflight = pipe.execute()
    return sum(s is not None for s in due), sum(s is not None for s in inflight)
