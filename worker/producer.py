"""The Python producer helper: put `IssueEvent`s on the stream.

from redis import Redis
from worker.producer import Producer
Producer(Redis.from_url("redis://localhost:6379")).send(event)
"""

from __future__ import annotations

from collections.abc import Iterable

from redis import Redis

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
