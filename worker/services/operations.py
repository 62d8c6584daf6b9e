"""The operations snapshot: is Escalator running, and is anything piling up?

One read of Redis and the database for `escalator status`, the console's Operations page and the
metrics collector: every role instance's heartbeat, the event stream (length, pending, lag), the
dead letters, the deadline index (armed, in flight), the outbox (pending, dead), the engine's
health as the canary proves it, and the policy version in force.

This module reads Redis through the broker's own queries (heartbeats, dead letters, the deadline
index, the watermark, the canary), which the services layer otherwise never touches: it is the
one read model that spans both stores, listed as such in `tests/unit/test_layers.py: EXCEPTIONS`.
It writes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from redis import Redis
from redis.exceptions import ResponseError

from config.settings import Settings
from worker.broker import canary, dead_letters
from worker.broker.deadline_index import DeadlineIndex
from worker.broker.heartbeats import Beat, read_all
from worker.broker.keys import GROUP, STREAM
from worker.broker.watermark import applied_until
from worker.domain.states import OutboxState
from worker.store import policy_versions
from worker.store.db import SessionFactory
from worker.store.views import outbox_counts

__all__ = [
    "Beat",
    "EngineHealth",
    "Operations",
    "StreamState",
    "engine_health",
    "judge",
    "snapshot",
    "window_s",
]


@dataclass(frozen=True, slots=True)
class EngineHealth:
    """Whether escalations run: the last canary fired recently, and on time."""

    healthy: bool
    reason: str  # "ok", "no canary fired yet", "last canary 42 s ago", ...
    lateness_s: float | None  # the last canary's lateness
    last_fired_at: datetime | None


@dataclass(frozen=True, slots=True)
class StreamState:
    """The event stream as ingest sees it."""

    length: int
    pending: int  # delivered to ingest, not acked
    lag: int | None  # entries not yet delivered to the group (None: unknown)
    lag_s: float  # age of the oldest entry not applied; 0 when caught up


@dataclass(frozen=True, slots=True)
class Operations:
    """Everything `escalator status` shows, read at `at`."""

    at: datetime
    beats: list[Beat]
    stream: StreamState
    dead_letters: int
    armed: int
    inflight: int
    notifications_pending: int
    notifications_dead: int
    engine: EngineHealth
    policy_digest: str | None
    policy_version: int | None


def window_s(settings: Settings) -> float:
    """How recently a canary must have fired for the engine to be healthy: three periods (a
    missed claim or two is not an outage) and the lateness allowed."""
    return 3 * settings.canary_every_s + settings.canary_max_lateness_s


def judge(last: canary.Canary | None, settings: Settings, now: datetime) -> EngineHealth:
    """The engine's health from the last canary fired (pure: what `/health/engine`, the
    dead-man's switch and `escalator status` decide alike)."""
    if last is None:
        return EngineHealth(False, "no canary fired yet", None, None)
    ago = now.timestamp() - last.fired_at
    allowed = settings.canary_max_lateness_s
    if ago > window_s(settings):
        reason = f"last canary fired {ago:.0f} s ago (window {window_s(settings):.0f} s)"
        return EngineHealth(False, reason, last.lateness_s, last.fired)
    if last.lateness_s > allowed:
        reason = f"last canary fired {last.lateness_s:.1f} s late (allowed {allowed:g} s)"
        return EngineHealth(False, reason, last.lateness_s, last.fired)
    return EngineHealth(True, "ok", last.lateness_s, last.fired)


def engine_health(redis: Redis, settings: Settings, now: datetime) -> EngineHealth:
    """The engine's health as the last canary recorded in Redis proves it."""
    return judge(canary.last(redis), settings, now)


def stream_state(redis: Redis, now: datetime) -> StreamState:
    """Length, pending, lag and lag in seconds of the event stream (zeros: no stream yet)."""
    length = int(redis.xlen(STREAM))
    group: dict[str, Any] | None = None
    try:
        group = next((g for g in redis.xinfo_groups(STREAM) if g["name"] == GROUP), None)
    except ResponseError:  # no stream yet
        group = None
    pending = int(group["pending"]) if group else 0
    lag: int | None = length if group is None else _lag(group)
    oldest = applied_until(redis)
    lag_s = max(0.0, (now - oldest).total_seconds()) if oldest is not None else 0.0
    return StreamState(length=length, pending=pending, lag=lag, lag_s=lag_s)


def _lag(group: dict[str, Any]) -> int | None:
    """XINFO GROUPS' `lag` (Redis 7; None on Redis 6.2, or when Redis cannot tell)."""
    value = group.get("lag")
    return None if value is None else int(value)


def snapshot(
    redis: Redis, readers: SessionFactory, settings: Settings, now: datetime
) -> Operations:
    """One read of everything; raises what Redis or the database raise when they are away."""
    due, inflight = DeadlineIndex(redis).sizes()
    canaries_due, canaries_inflight = canary.in_index(redis)
    with readers() as session:
        counts = outbox_counts(session)
        policy = policy_versions.current(session)
    return Operations(
        at=now,
        beats=read_all(redis),
        stream=stream_state(redis, now),
        dead_letters=dead_letters.count(redis),
        armed=max(0, due - canaries_due),
        inflight=max(0, inflight - canaries_inflight),
        notifications_pending=counts[OutboxState.PENDING],
        notifications_dead=counts[OutboxState.DEAD],
        engine=engine_health(redis, settings, now),
        policy_digest=policy[0] if policy else None,
        policy_version=policy[1] if policy else None,
    )
