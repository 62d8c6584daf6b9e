"""The deadline index: a Redis sorted set of armed deadlines, claimed atomically by schedulers.

`due` holds every armed deadline scored by its due time. A scheduler's claim moves due entries,
and entries whose lease ran out, into `inflight` with a new lease, in one Lua script
(`deadline_claim.lua`), so any number of schedulers can run without two of them claiming the
same entry at once. The claim keeps at most a window of firings in flight: under an overload the
rest waits in `due`, in order of due time, instead of piling up in Celery's queue.

A lease runs out only when its task is really lost. The scheduler's lease covers the wait in the
queue (short, since the window is bounded); the worker renews it when the firing starts and
every third of its length while it runs (`worker/broker/leases.py`), so a killed worker's firing is
claimed again within seconds. The task acks by removing the entry from `inflight` (the firing is
fenced in the database, so a second run changes nothing). `EPOCH` is set when a reconcile starts:
its absence tells the schedulers that Redis lost the index, and they rebuild it at once."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from redis import Redis

from worker.broker.keys import DUE, EPOCH, INFLIGHT, LEGACY_INDEX

_LUA = Path(__file__).parent
ARM_CHUNK = 2000
UNBOUNDED = 1 << 30


def score(when: datetime) -> float:
    """A due time as a sorted-set score."""
    return when.timestamp()


class DeadlineIndex:
    """Arm, disarm, claim and ack deadlines in Redis. Deadline ids are the members."""

    def __init__(self, redis: Redis) -> None:
        self.redis = redis
        self._claim = redis.register_script((_LUA / "deadline_claim.lua").read_text())
        self._arm = redis.register_script((_LUA / "deadline_arm.lua").read_text())

    def arm(self, deadlines: Iterable[tuple[int, datetime]]) -> int:
        """Index deadlines by due time, skipping any a scheduler holds in flight."""
        items = list(deadlines)
        added = 0
        for start in range(0, len(items), ARM_CHUNK):
            args: list[Any] = []
            for deadline_id, due_at in items[start : start + ARM_CHUNK]:
                args += [score(due_at), str(deadline_id)]
            added += int(self._arm(keys=[DUE, INFLIGHT], args=args))
        return added

    def disarm(self, deadline_ids: Sequence[int]) -> None:
        """Drop deadlines that no longer apply (the database already says so)."""
        if deadline_ids:
            members = [str(i) for i in deadline_ids]
            pipe = self.redis.pipeline(transaction=False)
            pipe.zrem(DUE, *members)
            pipe.zrem(INFLIGHT, *members)
            pipe.execute()

    def claim(
        self,
        now: datetime,
        lease_s: float,
        limit: int,
        until: datetime | None = None,
        room: int = UNBOUNDED,
    ) -> tuple[list[int], list[int]]:
        """Atomically take deadlines due by `until` (default `now`) in flight, and those whose
        lease ran out by `now`, keeping at most `room` in flight: (due, reclaimed)."""
        due, expired = self._claim(
            keys=[DUE, INFLIGHT],
            args=[score(until or now), score(now), score(now) + lease_s, limit, room],
        )
        return [int(m) for m in due], [int(m) for m in expired]

    def renew(self, deadline_ids: Sequence[int], until: datetime) -> None:
        """Extend the leases of firings still in flight (never re-adds an acked one)."""
        if deadline_ids:
            self.redis.zadd(INFLIGHT, {str(i): score(until) for i in deadline_ids}, xx=True)

    def release(self, deadline_ids: Sequence[int], now: datetime) -> None:
        """Hand claimed deadlines back as due now (their task could not be sent)."""
        if deadline_ids:
            pipe = self.redis.pipeline(transaction=True)
            pipe.zrem(INFLIGHT, *[str(i) for i in deadline_ids])
            pipe.zadd(DUE, {str(i): score(now) for i in deadline_ids})
            pipe.execute()

    def mark_intact(self, now: datetime) -> bool:
        """Say that the index is being rebuilt from the database (a reconcile starts); False if
        it had been lost since the last reconcile (then the abandoned keys of before the hash
        tag, `LEGACY_INDEX`, are deleted too: nothing reads them)."""
        if self.redis.set(EPOCH, now.isoformat(), get=True) is not None:
            return True
        self.redis.unlink(*LEGACY_INDEX)
        return False

    def intact(self) -> bool:
        """False once the index was lost (FLUSHALL, a new Redis) since the last reconcile."""
        return bool(self.redis.exists(EPOCH))

    def due_between(
        self, low: float | None, high: float | None, offset: int = 0, count: int = -1
    ) -> list[tuple[int, float]]:
        """(id, score) of due entries scored from `low` to `high`, both included (None: no
        bound), in score order; `offset` and `count` take a slice of them."""
        # WITHSCORES as a plain argument: the reply as parsed, without redis-py's callback per
        # score (most of the cost of reading a million of them)
        flat: list[Any] = self.redis.execute_command(  # type: ignore[no-untyped-call]
            "ZRANGEBYSCORE",
            DUE,
            "-inf" if low is None else repr(low),
            "+inf" if high is None else repr(high),
            "WITHSCORES",
            "LIMIT",
            offset,
            count,
        )
        if flat and isinstance(flat[0], list):  # RESP3: [member, score] pairs
            return [(int(member), float(value)) for member, value in flat]
        pairs = iter(flat)  # RESP2: member, score, member, score, ...
        return [(int(member), float(value)) for member, value in zip(pairs, pairs, strict=True)]

    def in_flight(self) -> list[int]:
        """Every deadline id in flight (a bounded window)."""
        return [int(str(member)) for member in self.redis.zrange(INFLIGHT, 0, -1)]

    def ack(self, *deadline_ids: int) -> None:
        """The firings are committed: forget their in-flight entries."""
        if deadline_ids:
            self.redis.zrem(INFLIGHT, *(str(i) for i in deadline_ids))

    def next_due(self) -> float | None:
        """Score of the earliest armed deadline, if any."""
        first = self.redis.zrange(DUE, 0, 0, withscores=True)
        return float(first[0][1]) if first else None

    def members(self, batch: int = 5000) -> Iterable[list[int]]:
        """Every indexed deadline id (due and in flight), in batches."""
        for key in (DUE, INFLIGHT):
            chunk: list[int] = []
            for member, _ in self.redis.zscan_iter(key, count=batch):
                chunk.append(int(member))
                if len(chunk) >= batch:
                    yield chunk
                    chunk = []
            if chunk:
                yield chunk

    def sizes(self) -> tuple[int, int]:
        """(due, in flight) counts."""
        pipe = self.redis.pipeline(transaction=False)
        pipe.zcard(DUE)
        pipe.zcard(INFLIGHT)
        due, inflight = pipe.execute()
        return int(due), int(inflight)
