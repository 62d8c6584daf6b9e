"""The dead-letter stream: entries that could not be applied, listed and replayed on request."""

from __future__ import annotations

from dataclasses import dataclass
from typing import cast

from redis import Redis

from worker.broker.keys import DEAD_STREAM, STREAM, STREAM_FIELD


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
        for entry_id, f in _entries(redis.xrange(DEAD_STREAM, count=count))
    ]


def _entries(answer: object) -> list[tuple[str, dict[str, str]]]:
    """XRANGE's answer on a client that decodes responses."""
    return cast(list[tuple[str, dict[str, str]]], answer)


def replay(redis: Redis, ids: list[str] | None = None) -> int:
    """Put dead entries back on the events stream (all when `ids` is None); returns how many."""
    if ids is None:
        entries = _entries(redis.xrange(DEAD_STREAM))
    else:
        entries = [e for i in ids for e in _entries(redis.xrange(DEAD_STREAM, min=i, max=i))]
    pipe = redis.pipeline(transaction=True)
    for entry_id, fields in entries:
        pipe.xadd(STREAM, {STREAM_FIELD: fields.get("event", "")})
        pipe.xdel(DEAD_STREAM, entry_id)
    pipe.execute()
    return len(entries)


def count(redis: Redis) -> int:
    """How many entries the dead-letter stream holds."""
    return int(redis.xlen(DEAD_STREAM))
