"""The Python producer helper: put `IssueEvent`s on the stream.

from redis import Redis
from worker.broker.producer import Producer
Producer(Redis.from_url("redis://localhost:6379")).send(event)
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Iterable, Sequence
from typing import Any

from redis import Redis
from redis.asyncio import Redis as AsyncRedis
from redis.exceptions import NoScriptError

from schemas.events import IssueEvent
from worker.broker.keys import STREAM, STREAM_FIELD


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
    """The gateway's producer (redis.asyncio): XADDs a delivery's events at most once.

    Concurrent requests share round trips: while one pipeline is in flight, the next requests
    queue, and go together in the next one (each still awaits its own result before answering).
    """

    def __init__(self, redis: AsyncRedis) -> None:
        self.redis = redis
        self._sha = hashlib.sha1(_SEND_ONCE.encode()).hexdigest()
        self._pending: list[tuple[list[Any], asyncio.Future[Any]]] = []
        self._draining = False
        self._drainer: asyncio.Task[None] | None = None  # a reference keeps it from the GC

    async def send_once(
        self, delivery_key: str, ttl_s: int, events: Sequence[IssueEvent]
    ) -> tuple[bool, list[str], list[str]]:
        """(new?, event ids, stream ids); a repeat returns the first ids and adds nothing."""
        event_ids = json.dumps([e.event_id for e in events])
        payloads = [e.model_dump_json() for e in events]
        args = [delivery_key, STREAM, ttl_s, STREAM_FIELD, event_ids, *payloads]
        new, record = await self._call(args)
        head, _, tail = str(record).partition("\n")
        return bool(int(new)), list(json.loads(head)), tail.split() if tail else []

    async def _call(self, args: list[Any]) -> Any:
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending.append((args, future))
        if not self._draining:
            self._draining = True
            self._drainer = asyncio.get_running_loop().create_task(self._drain())
        return await future

    async def _drain(self) -> None:
        try:
            while self._pending:
                batch, self._pending = self._pending, []
                try:
                    results = await self._execute([args for args, _ in batch])
                except Exception as exc:  # Redis away: every waiter gets the error (503)
                    results = [exc] * len(batch)
                for (_, future), result in zip(batch, results, strict=True):
                    if future.done():
                        continue
                    if isinstance(result, Exception):
                        future.set_exception(result)
                    else:
                        future.set_result(result)
        finally:
            self._draining = False

    async def _execute(self, batch: list[list[Any]]) -> list[Any]:
        results = await self._pipeline(batch)
        missing = [n for n, r in enumerate(results) if isinstance(r, NoScriptError)]
        if missing:  # a new or restarted Redis: load the script, then run those again
            await self.redis.script_load(_SEND_ONCE)
            again = await self._pipeline([batch[n] for n in missing])
            for n, result in zip(missing, again, strict=True):
                results[n] = result
        return results

    async def _pipeline(self, batch: list[list[Any]]) -> list[Any]:
        pipe = self.redis.pipeline(transaction=False)
        for args in batch:
            pipe.evalsha(self._sha, 2, *args)
        return list(await pipe.execute(raise_on_error=False))
