"""How far ingest has applied the event stream: the time before which a deadline may fire.

A deadline due at T must not fire while an event that happened before T still waits in the
stream (unread, or read by a consumer that has not committed it, or that died holding it):
history is time-ordered. Stream ids carry the time Redis received each entry, so the oldest
entry not yet acknowledged bounds what the schedulers may claim. An event that reaches Redis
after a deadline it preceded has fired (a slow producer) meets the escalation instead
(docs/ARCHITECTURE.md says what is sent then).
"""

from __future__ import annotations

from datetime import UTC, datetime

from redis import Redis
from redis.exceptions import ResponseError

from worker.broker.keys import GROUP, STREAM


def _time(stream_id: str | bytes | None) -> datetime:
    text = stream_id.decode() if isinstance(stream_id, bytes) else str(stream_id)
    return datetime.fromtimestamp(int(text.split("-", 1)[0]) / 1000, UTC)


def applied_until(redis: Redis) -> datetime | None:
    """The arrival time of the oldest stream entry not yet applied and acked; None when every
    entry is (or there is no stream or group: nothing to wait for)."""
    try:
        groups = redis.xinfo_groups(STREAM)
    except ResponseError:  # no stream (yet, or lost with Redis): nothing to wait for
        return None
    group = next((g for g in groups if g["name"] == GROUP), None)
    if group is None:
        return None
    oldest: list[datetime] = []
    if int(group["pending"]):
        summary = redis.xpending(STREAM, GROUP)
        if summary and summary.get("min"):
            oldest.append(_time(summary["min"]))
    unread = redis.xrange(STREAM, f"({group['last-delivered-id']}", "+", count=1)
    if unread:
        oldest.append(_time(unread[0][0]))
    return min(oldest, default=None)
