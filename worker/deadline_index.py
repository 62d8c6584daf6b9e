"""The deadline index: a Redis sorted set of armed deadlines, claimed atomically by schedulers.

`due` holds every armed deadline scored by its due time. A scheduler's claim moves due entries,
and entries whose lease ran out, into `inflight` with a new lease, in one Lua script, so any
number of schedulers can run without two of them claiming the same entry at once. The firing
task acks by removing the entry from `inflight`; if it never does, the lease runs out and the
entry is claimed again (the firing is fenced in the database, so a second run changes nothing).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from redis import Redis

from worker.constants import DUE, INFLIGHT

_CLAIM = """
local now, lease, limit = ARGV[1], ARGV[2], tonumber(ARGV[3])
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, limit)
local expired = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now, 'LIMIT', 0, limit)
for _, member in ipairs(due) do
  redis.call('ZREM', KEYS[1], member)
  redis.call('ZADD', KEYS[2], lease, member)
end
for _, member in ipairs(expired) do
  redis.call('ZADD', KEYS[2], lease, member)
end
return {due, expired}
"""

_ARM = """
local armed = 0
for i = 1, #ARGV, 2 do
  if not redis.call('ZSCORE', KEYS[2], ARGV[i + 1]) then
    armed = armed + redis.call('ZADD', KEYS[1], ARGV[i], ARGV[i + 1])
  end
end
return armed
"""

ARM_CHUNK = 2000


def score(when: datetime) -> float:
    """A due time as a sorted-set score."""
    return when.timestamp()


class DeadlineIndex:
    """Arm, disarm, claim and ack deadlines in Redis. Deadline ids are the members."""

    def __init__(self, redis: Redis) -> None:
        self.redis = redis
        self._claim = redis.register_script(_CLAIM)
        self._arm = redis.register_script(_ARM)

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

    def claim(self, now: datetime, lease_s: float, limit: int) -> tuple[list[int], list[int]]:
        """Atomically take due deadlines (and expired leases) in flight: (due, reclaimed)."""
        due, expired = self._claim(
            keys=[DUE, INFLIGHT], args=[score(now), score(now) + lease_s, limit]
        )
        return [int(m) for m in due], [int(m) for m in expired]

    def ack(self, deadline_id: int) -> None:
        """The firing is committed: forget the in-flight entry."""
        self.redis.zrem(INFLIGHT, str(deadline_id))

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
