"""The Python producer helper: put `IssueEvent`s on the stream.

from redis import Redis
from worker.producer import Producer
Producer(Redis.from_url("redis://localhost:6379")).send(event)
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence

from redis import Redis
from redis.asyncio import Redis as AsyncRedis

from schemas.events import IssueEvent
from worker.constants import STREAM, STREAM_FIELD


class Producer:
    """XADDs events to `escalator:events`; returns stream entry ids."""

    def __init__(self, redis: Redis) -> None:
        self.redis = redis

    def send(self, event: IssueEvent) -> str:
        return str(self.redis.xadd(STREAM, {STREAM_FIELD: event.model_dump_json()}))

    def send_many(self, events: Iterable[IssueEvent]) -> list[str]:
        pipe = self.redis.pipeline(transaction=False)
        for event in events:
            pipe.xadd(STREAM, {STREAM_FIELD: event.model_dump_json()})
        return [str(i) for i in pipe.execute()]

    def send_raw(self, payload: str) -> str:
        """Send JSON as is (the consumer validates it)."""
        return str(self.redis.xadd(STREAM, {STREAM_FIELD: payload}))


# One round trip, atomic: if the delivery was seen, return what it produced; otherwise XADD every
# event and remember the delivery for ARGV[1] seconds. KEYS: delivery record, stream.
# ARGV: ttl, stream field, event ids as JSON, then one payload per event.
_SEND_ONCE = """
local prev = redis.call('GET', KEYS[1])
if prev then return {0, prev} end
local ids = {}
for i = 4, #ARGV do
  ids[#ids + 1] = redis.call('XADD', KEYS[2], '*', ARGV[2], ARGV[i])
end
local record = ARGV[3] .. '\\n' .. table.concat(ids, ' ')
redis.call('SET', KEYS[1], record, 'EX', ARGV[1])
return {1, record}
"""


class AsyncProducer:
    """The gateway's producer (redis.asyncio): XADDs a delivery's events at most once."""

    def __init__(self, redis: AsyncRedis) -> None:
        self.redis = redis
        self._script = redis.register_script(_SEND_ONCE)

    async def send_once(
        self, delivery_key: str, ttl_s: int, events: Sequence[IssueEvent]
    ) -> tuple[bool, list[str], list[str]]:
        """(new?, event ids, stream ids); a repeat returns the first ids and adds nothing."""
        event_ids = json.dumps([e.event_id for e in events])
        payloads = [e.model_dump_json() for e in events]
        new, record = await self._script(
            keys=[delivery_key, STREAM], args=[ttl_s, STREAM_FIELD, event_ids, *payloads]
        )
        head, _, tail = str(record).partition("\n")
        return bool(int(new)), list(json.loads(head)), tail.split() if tail else []
