"""The dead-letter stream: entries that could not be applied, listed and replayed on request."""

from __future__ import annotations

from dataclasses import dataclass

from redis import Redis

from worker.constants import DEAD_STREAM, STREAM, STREAM_FIELD


@dataclass(frozen=True, slots=True)
class DeadEntry:
    id: str
    error: str
    event: str
    failed_at: str


def list_dead(redis: Redis, count: int = 100) -> list[DeadEntry]:
    """The oldest `count` dead entries."""
    return [
        DeadEntry(entry_id, f.get("error", ""), f.get("event", ""), f.get("failed_at", ""))
        for entry_id, f in redis.xrange(DEAD_STREAM, count=count)
    ]


def replay(redis: Redis, ids: list[str] | None = None) -> int:
    """Put dead entries back on the events stream (all when `ids` is None); returns how many."""
    entries = redis.xrange(DEAD_STREAM) if ids is None else [
        e for i in ids for e in redis.xrange(DEAD_STREAM, min=i, max=i)
    ]
    pipe = redis.pipeline(transaction=True)
    for entry_id, fields in entries:
        pipe.xadd(STREAM, {STREAM_FIELD: fields.get("event", "")})
        pipe.xdel(DEAD_STREAM, entry_id)
    pipe.execute()
    return len(entries)
