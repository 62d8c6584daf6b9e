"""The state gauges, computed when Prometheus scrapes: read from Redis and the database then.

Nothing here is recorded between scrapes (no multiprocess gauge bookkeeping): every scrape of
every role reads the same state and shows the same values. A scrape never fails for want of
Redis or the database: the gauges that need what is away are left out of that scrape, and the
first failure of each source is logged at warning (once, until it answers again).
"""

from __future__ import annotations

from collections import Counter as Tally
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TypeVar

import structlog
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from redis import Redis
from redis.exceptions import RedisError
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from config.settings import Settings
from schemas.policy import PolicyFile
from worker.broker.heartbeats import ROLES, SILENT_S
from worker.domain.clock import Clock
from worker.domain.oncall import coverage_gaps
from worker.services.operations import Operations, snapshot
from worker.services.policy_loader import PolicyFileError, PolicySource
from worker.store.db import SessionFactory, make_engine, reader_factory
from worker.store.views import open_issue_counts

log = structlog.get_logger("escalator.metrics")
T = TypeVar("T")

GAP_DAYS = 14
GAP_REASONS = ("nobody_on_call", "no_channel")
SCRAPE_TIMEOUT_S = 3.0  # a Redis that does not answer costs a scrape this long at most


def scrape_client(url: str) -> Redis:
    """A Redis client of the collector's own, with short timeouts: a scrape is not a loop
    that may wait (Prometheus gives up after its scrape timeout, 10 s by default)."""
    return Redis.from_url(
        url,
        decode_responses=True,
        socket_timeout=SCRAPE_TIMEOUT_S,
        socket_connect_timeout=SCRAPE_TIMEOUT_S,
    )


def state_collector(
    settings: Settings, clock: Clock, engine: Engine | None = None
) -> StateCollector:
    """The collector of a role's scrapes, with connections of its own (opened at the first
    scrape): its own Redis client with short timeouts, and read-only sessions."""
    engine = engine if engine is not None else make_engine(settings.resolved_database_url())
    return StateCollector(
        scrape_client(settings.resolved_redis_url()),
        reader_factory(engine),
        settings,
        clock,
        PolicySource(settings.policy_file),
    )


@dataclass(eq=False)  # registered in a registry: hashed by identity
class StateCollector:
    """A prometheus_client collector of the state gauges; `collect` runs at each scrape."""

    redis: Redis
    readers: SessionFactory | None  # None: no database (the gauges that need one are left out)
    settings: Settings
    clock: Clock
    policies: Callable[[], PolicyFile | None]
    _away: set[str] = field(default_factory=set)  # sources whose failure was logged

    def collect(self) -> Iterator[Metric]:
        now = self.clock.now()
        readers = self.readers
        if readers is not None:
            ops = self._read(
                "operations", lambda: snapshot(self.redis, readers, self.settings, now)
            )
            if ops is not None:
                yield from operations_gauges(ops)
            counts = self._read("open_issues", lambda: _open_issues(readers))
            if counts is not None:
                yield open_issues_gauge(counts)
        policies = self._read("policy", self.policies)
        if policies is not None:
            yield from tier_gauges(policies, now)

    def _read(self, source: str, read: Callable[[], T]) -> T | None:
        """What `read` gives, or None (logged once) when Redis, the database or the file is
        away; the next success says it is back."""
        try:
            value = read()
        except (RedisError, SQLAlchemyError, OSError, PolicyFileError) as exc:
            if source not in self._away:
                self._away.add(source)
                log.warning(
                    "metrics.state_unavailable",
                    source=source,
                    error=f"{type(exc).__name__}: {exc}",
                    skipped="its gauges, until it answers again",
                )
            return None
        if source in self._away:
            self._away.discard(source)
            log.info("metrics.state_available", source=source)
        return value


def _open_issues(readers: SessionFactory) -> list[tuple[str, str, int]]:
    with readers() as session:
        return open_issue_counts(session)


def _gauge(name: str, doc: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, doc, value=value)


def operations_gauges(ops: Operations) -> Iterator[Metric]:
    """The gauges of one operations snapshot."""
    stream = ops.stream
    yield _gauge(
        "escalator_stream_pending", "Entries delivered to ingest, not yet acked.", stream.pending
    )
    if stream.lag is not None:
        yield _gauge(
            "escalator_stream_lag", "Entries not yet delivered to the consumer group.", stream.lag
        )
    yield _gauge(
        "escalator_stream_lag_seconds",
        "Age of the oldest entry ingest has not applied; 0 when caught up.",
        stream.lag_s,
    )
    yield _gauge("escalator_dead_letters", "Length of the dead-letter stream.", ops.dead_letters)
    yield _gauge("escalator_deadlines_armed", "Deadlines due in the index.", ops.armed)
    yield _gauge(
        "escalator_deadlines_inflight", "Deadlines claimed, their firing not done.", ops.inflight
    )
    yield _gauge(
        "escalator_notifications_pending",
        "Outbox messages not sent yet.",
        ops.notifications_pending,
    )
    yield _gauge(
        "escalator_notifications_dead",
        "Outbox messages given up on.",
        ops.notifications_dead,
    )
    now = ops.at.timestamp()
    ages = GaugeMetricFamily(
        "escalator_role_heartbeat_age_seconds",
        "Seconds since each role instance's last heartbeat.",
        labels=["role", "instance"],
    )
    up: Tally[str] = Tally({role: 0 for role in ROLES})  # a role never seen is 0, not absent
    for beat in ops.beats:
        ages.add_metric([beat.role, beat.instance], beat.age(now))
        up[beat.role] += 0 if beat.silent(now) else 1
    yield ages
    roles = GaugeMetricFamily(
        "escalator_role_up",
        f"Instances of each role with a heartbeat younger than {SILENT_S:g} s.",
        labels=["role"],
    )
    for role, count in sorted(up.items()):
        roles.add_metric([role], count)
    yield roles
    engine = ops.engine
    yield _gauge(
        "escalator_engine_healthy",
        "1 when the last canary went through claim and fire recently and on time.",
        1 if engine.healthy else 0,
    )
    if engine.lateness_s is not None:
        yield _gauge(
            "escalator_canary_lateness_seconds",
            "The last canary's lateness.",
            engine.lateness_s,
        )
    if engine.last_fired_at is not None:
        yield _gauge(
            "escalator_canary_last_fired_timestamp_seconds",
            "When the last canary fired (epoch seconds).",
            engine.last_fired_at.timestamp(),
        )
    if ops.policy_digest is not None:
        info = GaugeMetricFamily(
            "escalator_policy_info",
            "The policy file in force: its digest and stored version.",
            labels=["digest", "version"],
        )
        version = "" if ops.policy_version is None else str(ops.policy_version)
        info.add_metric([ops.policy_digest, version], 1)
        yield info


def open_issues_gauge(counts: list[tuple[str, str, int]]) -> Metric:
    family = GaugeMetricFamily(
        "escalator_open_issues",
        "Issues not resolved, by severity and tier.",
        labels=["severity", "tier"],
    )
    for severity, tier, count in sorted(counts):
        family.add_metric([severity, tier], count)
    return family


def tier_gauges(policies: PolicyFile, now: datetime) -> Iterator[Metric]:
    """Whether each tier reaches somebody now, and its roster gaps in the next 14 days."""
    start = now.astimezone(UTC)
    gaps = coverage_gaps(policies, start, GAP_DAYS)
    unreachable = GaugeMetricFamily(
        "escalator_tier_unreachable",
        "1 when the tier has nobody on call now, or routes escalations to no channel.",
        labels=["tier", "reason"],
    )
    ahead = GaugeMetricFamily(
        "escalator_tier_gaps_next_14d",
        "Roster gaps (nobody on call) of the tier in the next 14 days.",
        labels=["tier"],
    )
    for tier in policies.tiers:
        mine = [g for g in gaps if g.tier == tier.name]
        nobody = [g for g in mine if g.reason == "nobody_on_call"]
        now_gap = any(g.start is not None and g.start <= start for g in nobody)
        flags = {
            "nobody_on_call": now_gap,
            "no_channel": any(g.reason == "no_channel" for g in mine),
        }
        for reason in GAP_REASONS:
            unreachable.add_metric([tier.name, reason], 1 if flags[reason] else 0)
        ahead.add_metric([tier.name], len(nobody))
    yield unreachable
    yield ahead


STATE_GAUGES = (
    "escalator_stream_pending",
    "escalator_stream_lag",
    "escalator_stream_lag_seconds",
    "escalator_dead_letters",
    "escalator_deadlines_armed",
    "escalator_deadlines_inflight",
    "escalator_open_issues",
    "escalator_notifications_dead",
    "escalator_notifications_pending",
    "escalator_role_heartbeat_age_seconds",
    "escalator_role_up",
    "escalator_canary_lateness_seconds",
    "escalator_canary_last_fired_timestamp_seconds",
    "escalator_engine_healthy",
    "escalator_tier_unreachable",
    "escalator_tier_gaps_next_14d",
    "escalator_policy_info",
)
