"""Which outbox messages have a delivery task queued or running: a Redis sorted set of leases.

`OUTBOX_INFLIGHT` holds a message id scored by the time (epoch seconds) until which its
delivery task is presumed alive. Whoever sends a delivery task marks its ids first with the
queued lease (long: a task may wait behind a backlog); the worker shortens it to the running
lease when it starts and renews it while it runs; when it is done the mark is removed, or, for
a retry sent with a countdown, pushed to the countdown plus the queued lease. The outbox sweep
sends only pending, due messages without a live mark, and marks them in the same Lua script
(`take`), so two schedulers never both send one id.

The marks live in the Redis that holds Celery's queues: losing it loses both, and the sweep
then sends again from the database, the source of truth. The database's own lease
(`outbox.lease_until`) still fences each attempt, so a stale or missing mark costs at most a
duplicate task, never a duplicate send.
"""

from __future__ import annotations

from collections.abc import Sequence

import structlog
from redis import Redis

from worker.broker.keys import DELIVERIES_SENT, OUTBOX_INFLIGHT

log = structlog.get_logger("escalator.inflight")

# KEYS[1] the marks; ARGV[1] now, ARGV[2] the new lease, ARGV[3..] message ids.
# Drops expired marks, then marks and returns the ids that had no live mark.
_TAKE = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
local taken = {}
for i = 3, #ARGV do
  if not redis.call('ZSCORE', KEYS[1], ARGV[i]) then
    redis.call('ZADD', KEYS[1], ARGV[2], ARGV[i])
    taken[#taken + 1] = ARGV[i]
  end
end
return taken
"""

CHUNK = 2000  # ids per script call or ZADD


class InFlight:
    """Marks of delivery tasks queued or running, one per message id."""

    def __init__(self, redis: Redis) -> None:
        self.redis = redis
        self._take = redis.register_script(_TAKE)

    def mark(self, message_ids: Sequence[str], until: float) -> None:
        """A task for these ids is queued (or running) until `until`, whatever was there."""
        for start in range(0, len(message_ids), CHUNK):
            chunk = message_ids[start : start + CHUNK]
            self.redis.zadd(OUTBOX_INFLIGHT, dict.fromkeys(chunk, until))

    def renew(self, message_ids: Sequence[str], until: float) -> None:
        """Extend the marks of ids still held (never re-adds one a finished task removed)."""
        for start in range(0, len(message_ids), CHUNK):
            chunk = message_ids[start : start + CHUNK]
            self.redis.zadd(OUTBOX_INFLIGHT, dict.fromkeys(chunk, until), xx=True)

    def take(self, message_ids: Sequence[str], now: float, until: float) -> list[str]:
        """Atomically mark, and return, those of the ids that no live task holds."""
        taken: list[str] = []
        for start in range(0, len(message_ids), CHUNK):
            chunk = list(message_ids[start : start + CHUNK])
            taken += [str(m) for m in self._take(keys=[OUTBOX_INFLIGHT], args=[now, until, *chunk])]
        return taken

    def unmark(self, message_ids: Sequence[str]) -> None:
        """No task holds these ids any more."""
        for start in range(0, len(message_ids), CHUNK):
            self.redis.zrem(OUTBOX_INFLIGHT, *message_ids[start : start + CHUNK])

    def counted(self, sent: int) -> None:
        """Count message ids handed to delivery tasks (`DELIVERIES_SENT`, for benchmarks)."""
        if sent:
            self.redis.incrby(DELIVERIES_SENT, sent)

    def live(self, message_id: str, now: float) -> bool:
        """Whether a task holds the id now."""
        until = self.redis.zscore(OUTBOX_INFLIGHT, message_id)
        return until is not None and float(until) > now
