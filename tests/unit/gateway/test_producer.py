"""The gateway's producer: concurrent deliveries share pipelines, each XADDed at most once."""

from __future__ import annotations

import asyncio

import fakeredis
from redis.asyncio import Redis
from redis.exceptions import RedisError

from schemas.events import IssueEvent
from tests.support.stack import event
from worker.broker.producer import AsyncProducer


def test_concurrent_deliveries_each_get_their_own_entries_and_repeats_get_the_first(
    server: fakeredis.FakeServer, redis: fakeredis.FakeRedis
) -> None:
    """50 deliveries at once plus a repeat of each, in shared pipelines: 50 entries, 50 repeats."""
    events: list[IssueEvent] = [event("issue.opened", f"B-{n}") for n in range(50)]

    async def main() -> list[tuple[bool, list[str], list[str]]]:
        producer = AsyncProducer(fakeredis.FakeAsyncRedis(server=server, decode_responses=True))
        calls = [producer.send_once(f"k:{n}", 60, [e]) for n, e in enumerate(events)]
        calls += [producer.send_once(f"k:{n}", 60, [e]) for n, e in enumerate(events)]
        return await asyncio.gather(*calls)

    results = asyncio.run(main())
    first, repeats = results[:50], results[50:]
    assert all(new for new, _, _ in first) and not any(new for new, _, _ in repeats)
    assert [ids for _, ids, _ in first] == [[e.event_id] for e in events]
    assert [r[2] for r in repeats] == [r[2] for r in first]
    assert redis.xlen("escalator:events") == 50


def test_redis_away_fails_every_waiter_with_a_redis_error() -> None:
    """No Redis: each concurrent send raises RedisError (the gateway answers 503); none hangs."""

    async def main() -> list[BaseException | tuple[bool, list[str], list[str]]]:
        producer = AsyncProducer(Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.5))
        one = [event("issue.opened", "X-1")]
        return await asyncio.gather(
            *(producer.send_once(f"k:{n}", 60, one) for n in range(5)), return_exceptions=True
        )

    results = asyncio.run(asyncio.wait_for(main(), 10))
    assert len(results) == 5 and all(isinstance(r, RedisError) for r in results)
