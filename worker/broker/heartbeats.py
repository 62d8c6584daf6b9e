"""Heartbeats: every role instance says every few seconds that it is alive.

One Redis hash holds the last beat of each instance (field `role|instance`, value JSON), so one
HGETALL reads them all for `escalator status`, the console and the metrics. An instance that
stops cleanly takes its beat away (`forget`); one that was killed stays, silent, until it is
`FORGET_S` old, when the next beat of any instance removes it.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import cast

import structlog
from redis import Redis

from worker.broker.keys import HEARTBEATS

log = structlog.get_logger("escalator.heartbeats")
ROLES = ("api", "ingest", "scheduler", "worker-escalations", "worker-outbox")
SILENT_S = 30.0  # an instance whose last beat is older is silent (`escalator_role_up` too)
FORGET_S = 600.0  # a silent instance is forgotten after this long


@dataclass(frozen=True, slots=True)
class Beat:
    """The last beat of one role instance."""

    role: str  # api | ingest | scheduler | worker-escalations | worker-outbox
    instance: str  # "<hostname>:<pid>"
    at: float  # epoch seconds of its last beat
    started: float  # epoch seconds the process started
    info: dict[str, str] = field(default_factory=dict)  # e.g. {"metrics_port": "9101"}

    def age(self, now: float) -> float:
        """Seconds since the last beat (never negative: clocks of two machines differ)."""
        return max(0.0, now - self.at)

    def silent(self, now: float) -> bool:
        return self.age(now) > SILENT_S


def _field(role: str, instance: str) -> str:
    return f"{role}|{instance}"


def beat(
    redis: Redis,
    role: str,
    instance: str,
    started: float,
    info: Mapping[str, str] | None = None,
    now: float | None = None,
) -> None:
    """Record one beat of `role`'s `instance` (and forget instances silent for `FORGET_S`)."""
    at = time.time() if now is None else now
    body = {"role": role, "instance": instance, "at": at, "started": started}
    body["info"] = dict(info or {})
    redis.hset(HEARTBEATS, _field(role, instance), json.dumps(body))
    stale = [_field(b.role, b.instance) for b in read_all(redis) if at - b.at > FORGET_S]
    if stale:
        redis.hdel(HEARTBEATS, *stale)
        log.info("heartbeat.forgotten", instances=stale)


def forget(redis: Redis, role: str, instance: str) -> None:
    """Take an instance's beat away: it stopped cleanly, it is not silent."""
    redis.hdel(HEARTBEATS, _field(role, instance))


def parse(raw: str | bytes) -> Beat | None:
    """One hash value as a Beat; None if it is not one (never raises)."""
    try:
        body = json.loads(raw)
        info = body.get("info") or {}
        return Beat(
            role=str(body["role"]),
            instance=str(body["instance"]),
            at=float(body["at"]),
            started=float(body["started"]),
            info={str(k): str(v) for k, v in dict(info).items()},
        )
    except (ValueError, KeyError, TypeError, AttributeError):
        return None


def beats_of(values: Mapping[str, str] | Mapping[bytes, bytes]) -> list[Beat]:
    """The beats of an HGETALL answer, sorted by (role, instance)."""
    found = [b for b in (parse(v) for v in values.values()) if b is not None]
    return sorted(found, key=lambda b: (b.role, b.instance))


def read_all(redis: Redis) -> list[Beat]:
    """Every instance's last beat, sorted by (role, instance)."""
    return beats_of(cast(Mapping[str, str], redis.hgetall(HEARTBEATS)))
