"""The operations snapshot, the engine's health decision, the dead-man's switch and
`escalator status` (its tables, JSON and exit codes)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import fakeredis
import httpx
import pytest
from redis.exceptions import ConnectionError as RedisConnectionError
from sqlalchemy.orm import Session, sessionmaker
from typer.testing import CliRunner

from config.settings import Settings
from worker.bootstrap import Container
from worker.broker import canary
from worker.broker.deadline_index import DeadlineIndex
from worker.broker.heartbeats import ROLES, beat
from worker.broker.keys import DEAD_STREAM, GROUP, STREAM
from worker.cli import main as cli
from worker.cli import status as status_cli
from worker.domain.clock import ManualClock
from worker.roles.deadman import Deadman
from worker.services.operations import judge, snapshot
from worker.store.models import OutboxMessage, PolicyVersion

from .factories import T0, issue_row

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
SETTINGS = Settings(_env_file=None, canary_every_s=5, canary_max_lateness_s=2)


def fired(ago_s: float, lateness_s: float) -> canary.Canary:
    at = NOW.timestamp() - ago_s
    return canary.Canary(due_at=at - lateness_s, fired_at=at, lateness_s=lateness_s)


def test_the_engine_is_healthy_only_with_a_recent_canary_on_time() -> None:
    """No canary, one too old (window 3 x 5 s + 2 s) or one too late: unhealthy, saying why."""
    assert judge(None, SETTINGS, NOW).reason == "no canary fired yet"
    ok = judge(fired(3, 0.2), SETTINGS, NOW)
    assert ok.healthy and ok.reason == "ok" and ok.lateness_s == 0.2
    assert ok.last_fired_at == NOW - timedelta(seconds=3)
    old = judge(fired(18, 0.2), SETTINGS, NOW)
    assert not old.healthy and "18 s ago" in old.reason
    late = judge(fired(1, 2.5), SETTINGS, NOW)
    assert not late.healthy and "2.5 s late" in late.reason


def _seed(redis: fakeredis.FakeRedis, sessions: sessionmaker[Session]) -> None:
    """Two events read, one still pending, one unread; a dead letter; two armed deadlines and a
    canary; outbox rows pending, dead and sent; two policy versions."""
    for n in range(3):
        redis.xadd(STREAM, {"event": f"e{n}"})
    redis.xgroup_create(STREAM, GROUP, id="0")
    read: Any = redis.xreadgroup(GROUP, "c1", {STREAM: ">"}, count=2)
    first: str = read[0][1][0][0]
    redis.xack(STREAM, GROUP, first)
    redis.xadd(DEAD_STREAM, {"error": "bad", "event": "{}"})
    index = DeadlineIndex(redis)
    index.arm([(1, NOW), (2, NOW + timedelta(minutes=5))])
    canary.arm(index, NOW.timestamp(), 5)
    with sessions() as s, s.begin():
        issue = issue_row()
        s.add(issue)
        s.flush()
        for n, state in enumerate(("pending", "pending", "dead", "sent")):
            s.add(
                OutboxMessage(id=f"msg_{n}", issue_id=issue.id, channel="log", kind="escalated",
                              payload={}, state=state, next_attempt_at=T0, created_at=T0)
            )  # fmt: skip
        s.add(PolicyVersion(version="aaa", body={}, created_at=T0))
        s.add(PolicyVersion(version="bbb", body={}, created_at=T0 + timedelta(hours=1)))


def test_the_snapshot_reads_every_figure(
    redis: fakeredis.FakeRedis, sessions: sessionmaker[Session]
) -> None:
    """Beats, stream length/pending/lag, dead letters, armed (canaries not counted), outbox
    counts, the engine and the latest policy version, in one read."""
    _seed(redis, sessions)
    later = datetime.now(UTC) + timedelta(seconds=60)  # stream ids carry the real time
    beat(redis, "api", "h:1", started=0.0, now=later.timestamp())
    ops = snapshot(redis, sessions, SETTINGS, later)
    assert [b.role for b in ops.beats] == ["api"]
    assert (ops.stream.length, ops.stream.pending) == (3, 1)
    assert ops.stream.lag in (None, 1)  # Redis 7 says 1; older servers cannot tell
    assert ops.stream.lag_s >= 59  # the oldest entry not applied came a minute before
    assert ops.dead_letters == 1
    assert (ops.armed, ops.inflight) == (2, 0)
    assert (ops.notifications_pending, ops.notifications_dead) == (2, 1)
    assert (ops.policy_digest, ops.policy_version) == ("bbb", 2)
    assert not ops.engine.healthy


def test_an_empty_deployment_has_a_snapshot_too(
    redis: fakeredis.FakeRedis, sessions: sessionmaker[Session]
) -> None:
    """No stream, no group, nothing stored: zeros and Nones, not errors."""
    ops = snapshot(redis, sessions, SETTINGS, NOW)
    assert (ops.stream.length, ops.stream.pending, ops.stream.lag_s) == (0, 0, 0.0)
    assert (ops.armed, ops.dead_letters, ops.policy_version) == (0, 0, None)


# --- the dead-man's switch ---------------------------------------------------------------


def _deadman(container: Container, answers: list[int | Exception]) -> tuple[Deadman, list[str]]:
    hits: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        hits.append(str(request.url))
        answer = answers.pop(0) if answers else 200
        if isinstance(answer, Exception):
            raise answer
        return httpx.Response(answer)

    return Deadman(container, httpx.Client(transport=httpx.MockTransport(handler))), hits


def test_the_switch_is_pinged_once_per_period_only_while_healthy(
    container: Container, clock: ManualClock
) -> None:
    """No canary: no ping. A canary on time: one ping per period, whatever the calls. Canaries
    stop: pings stop."""
    deadman, hits = _deadman(container, [])
    url = "https://hc.example/ping/abc"
    assert not deadman.ping_when_healthy(url) and hits == []
    canary.record(
        container.redis, [canary.canary_id(clock.now().timestamp())], clock.now().timestamp()
    )
    assert deadman.ping_when_healthy(url)
    assert not deadman.ping_when_healthy(url)  # same period
    clock.advance(timedelta(seconds=container.settings.canary_every_s))
    assert deadman.ping_when_healthy(url)
    assert hits == [url, url]
    clock.advance(timedelta(minutes=5))  # no canary fired since
    assert not deadman.ping_when_healthy(url) and len(hits) == 2


def test_a_failed_ping_is_logged_not_fatal(container: Container, clock: ManualClock) -> None:
    """A 500, or no answer at all, returns False; the next period pings again."""
    deadman, hits = _deadman(container, [500, httpx.ConnectError("refused")])
    url = "https://hc.example/ping/abc"
    for _ in range(3):
        now = clock.now().timestamp()
        canary.record(container.redis, [canary.canary_id(now)], now)
        deadman.ping_when_healthy(url)
        clock.advance(timedelta(seconds=container.settings.canary_every_s))
    assert len(hits) == 3 and deadman.pings == 1


def test_step_arms_the_canary_and_pings_when_configured(
    container: Container, clock: ManualClock
) -> None:
    """The scheduler's step arms this period's canary; with no heartbeat_url it pings nothing."""
    deadman, hits = _deadman(container, [])
    deadman.step()
    deadman.step()
    assert deadman.armed == 1 and hits == []


# --- escalator status ----------------------------------------------------------------------


@pytest.fixture
def status_env(
    cli_tasks: list[Any],
    monkeypatch: pytest.MonkeyPatch,
    redis: fakeredis.FakeRedis,
    sessions: sessionmaker[Session],
) -> fakeredis.FakeRedis:
    """`escalator status` on the fake Redis and the unit test's SQLite file."""

    @contextmanager
    def _redis(_settings: Settings) -> Iterator[fakeredis.FakeRedis]:
        yield redis

    @contextmanager
    def _readers(_settings: Settings) -> Iterator[sessionmaker[Session]]:
        yield sessions

    monkeypatch.setattr(status_cli, "redis_client", _redis)
    monkeypatch.setattr(status_cli, "readers", _readers)
    return redis


def _all_roles_beat(redis: fakeredis.FakeRedis, now: float) -> None:
    for role in ROLES:
        beat(redis, role, "host:1", started=now - 60, now=now)


def test_status_is_healthy_with_every_role_and_a_canary(status_env: fakeredis.FakeRedis) -> None:
    """Every role beating and a canary on time: the tables, `healthy`, exit code 0."""
    now = datetime.now(UTC).timestamp()
    _all_roles_beat(status_env, now)
    canary.record(status_env, [canary.canary_id(now - 0.1)], now)
    result = CliRunner().invoke(cli.app, ["status"])
    assert result.exit_code == 0, result.output
    for words in ("Roles", "worker-escalations", "Canary lateness", "healthy"):
        assert words in result.output


def test_status_exits_1_when_a_role_is_silent_or_the_engine_stopped(
    status_env: fakeredis.FakeRedis,
) -> None:
    """A role with no live instance, or no recent canary, exits 1 and names the problem."""
    now = datetime.now(UTC).timestamp()
    _all_roles_beat(status_env, now)
    beat(status_env, "ingest", "host:1", started=now - 600, now=now - 45)  # silent
    canary.record(status_env, [canary.canary_id(now - 0.1)], now)
    result = CliRunner().invoke(cli.app, ["status"])
    assert result.exit_code == 1 and "ingest: silent" in result.output
    status_env.delete("escalator:canary")
    _all_roles_beat(status_env, now)
    result = CliRunner().invoke(cli.app, ["status"])
    assert result.exit_code == 1 and "no canary fired yet" in result.output


def test_status_json_carries_the_snapshot_and_the_verdict(status_env: fakeredis.FakeRedis) -> None:
    """--json prints one object: beats with ages, stream, engine, problems; same exit code."""
    now = datetime.now(UTC).timestamp()
    beat(status_env, "api", "host:1", started=now - 60, now=now)
    result = CliRunner().invoke(cli.app, ["status", "--json"])
    assert result.exit_code == 1
    body = json.loads(result.output)
    assert body["beats"][0]["role"] == "api" and body["beats"][0]["silent"] is False
    assert body["engine"]["healthy"] is False and body["healthy"] is False
    assert "scheduler: no heartbeat" in body["problems"]
    assert set(body["stream"]) == {"length", "pending", "lag", "lag_s"}


def test_status_without_redis_says_so_in_one_line(
    status_env: fakeredis.FakeRedis, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Redis away: one line naming it and how to start it, exit 2, no traceback."""

    def _refuse() -> bool:
        raise RedisConnectionError("Error 111 connecting to 127.0.0.1:1. Connection refused.")

    monkeypatch.setattr(status_env, "ping", _refuse)
    result = CliRunner().invoke(cli.app, ["status"])
    assert result.exit_code == 2
    assert "Redis is not reachable" in result.output and "escalator run" in result.output
    assert "Traceback" not in result.output and len(result.output.strip().splitlines()) == 1
