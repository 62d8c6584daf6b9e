"""Wiring: builds each process's dependencies once, from Settings, in one place."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

import httpx
import structlog
from redis import Redis
from redis.asyncio import Redis as AsyncRedis
from sqlalchemy import Engine

from config.settings import Settings
from schemas.policy import PolicyFile
from worker.broker.celery_app import app, configure
from worker.broker.connection import connect
from worker.broker.deadline_index import DeadlineIndex
from worker.broker.effects import BrokerEffects, Tasks
from worker.broker.inflight import InFlight
from worker.broker.leases import Keepers
from worker.domain.clock import Clock, SystemClock
from worker.domain.ports import Channel
from worker.notify.channels import build_channels
from worker.notify.http import PooledPoster, Poster, tls_context
from worker.services.policy_loader import PolicyFileError, load_policy, warn_gaps
from worker.services.uow import Units
from worker.store.db import (
    SessionFactory,
    make_engine,
    make_reader_engine,
    reader_factory,
    session_factory,
)
from worker.writeback import build_writebacks

if TYPE_CHECKING:
    from fastapi import FastAPI

log = structlog.get_logger("escalator.bootstrap")


@dataclass
class Container:
    """Everything a role needs, built for this process."""

    settings: Settings
    clock: Clock
    engine: Engine
    sessions: SessionFactory
    readers: SessionFactory  # read-only queries: never hold SQLite's write lock
    redis: Redis
    index: DeadlineIndex
    policies: PolicyFile
    channels: dict[str, Channel]
    http: httpx.Client
    poster: Poster
    tasks: Tasks  # sends Celery tasks by name
    marks: InFlight  # which outbox messages a delivery task holds
    units: Units  # units of work whose effects run on Redis and Celery after their commit
    keepers: Keepers  # the leases this process's tasks hold, renewed while they run

    def close(self) -> None:
        self.http.close()
        self.poster.close()
        self.redis.close()
        self.engine.dispose()


def _policies(settings: Settings, fallback: PolicyFile | None) -> PolicyFile:
    """The policy file as it is now; if it has become invalid, the last good copy we have."""
    try:
        return load_policy(settings.policy_file)
    except PolicyFileError as exc:
        if fallback is None:
            raise
        log.error(
            "policy.load_refused",
            file=str(settings.policy_file),
            errors=[str(p) for p in exc.problems],
            using="the policy loaded at start-up",
        )
        return fallback


def every_channel(
    policies: PolicyFile, settings: Settings, clock: Clock, http: httpx.Client, poster: Poster
) -> dict[str, Channel]:
    """Every channel the policy file names, and a write-back channel per ticket system."""
    channels: dict[str, Channel] = {}
    channels.update(build_channels(policies, settings, clock, poster))
    channels.update(build_writebacks(policies, settings, clock, http))
    return channels


def build(
    settings: Settings, clock: Clock | None = None, fallback: PolicyFile | None = None
) -> Container:
    """Build a container; connections open lazily on first use.

    `fallback` is the policy to run with if the file no longer validates (a pool process
    forked after someone broke the file keeps the last good policy, as running roles do).
    """
    clock = clock or SystemClock()
    configure(settings)  # every role that sends tasks sends them to this Redis
    engine = make_engine(settings.resolved_database_url())
    redis = connect(settings.resolved_redis_url())
    policies = _policies(settings, fallback)
    tls = tls_context()  # webhooks and write-backs verify certificates alike
    http = httpx.Client(follow_redirects=False, verify=tls)
    poster = PooledPoster(settings.delivery_concurrency, tls)
    sessions, readers = session_factory(engine), reader_factory(engine)
    index, marks, tasks = DeadlineIndex(redis), InFlight(redis), Tasks(app)
    after_commit = BrokerEffects(index, marks, tasks, clock, settings)
    return Container(
        settings=settings,
        clock=clock,
        engine=engine,
        sessions=sessions,
        readers=readers,
        redis=redis,
        index=index,
        policies=policies,
        channels=every_channel(policies, settings, clock, http, poster),
        http=http,
        poster=poster,
        tasks=tasks,
        marks=marks,
        units=Units(sessions, after_commit, readers),
        keepers=Keepers.of(
            index,
            marks,
            clock,
            settings.scheduler_lease_s,
            settings.delivery_running_lease_s,
        ),
    )


_settings: Settings | None = None
_container: tuple[int, Container] | None = None
_loaded: PolicyFile | None = None


def install(settings: Settings) -> None:
    """Set the settings this process's container is built from (before forking workers), and
    load the policy once here, so that forked processes have a good copy to fall back on."""
    global _settings, _container, _loaded
    _settings, _container = settings, None
    _loaded = load_policy(settings.policy_file)
    warn_gaps(_loaded, settings.policy_file, SystemClock().now())  # a tier reaching nobody


def container() -> Container:
    """This process's container, built on first use (after fork, so connections are not shared)."""
    global _container, _settings
    if _container is None or _container[0] != os.getpid():
        if _settings is None:
            _settings = Settings()
        _container = (os.getpid(), build(_settings, fallback=_loaded))
    return _container[1]


# One command's or one api process's dependencies: each builder closes what it opened.


@dataclass(frozen=True)
class Store:
    """Session factories over one engine: `sessions` write, `readers` only query."""

    sessions: SessionFactory
    readers: SessionFactory


@contextmanager
def _engine(settings: Settings) -> Iterator[Engine]:
    engine = make_engine(settings.resolved_database_url())
    try:
        yield engine
    finally:
        engine.dispose()


@contextmanager
def store(settings: Settings) -> Iterator[Store]:
    """Writer and reader sessions on the configured database; the engine is disposed on exit."""
    with _engine(settings) as engine:
        yield Store(sessions=session_factory(engine), readers=reader_factory(engine))


@contextmanager
def readers(settings: Settings) -> Iterator[SessionFactory]:
    """Read-only sessions on the configured database; the engine is disposed on exit. On
    SQLite the file is opened read-only: looking never creates a database."""
    engine = make_reader_engine(settings.resolved_database_url())
    try:
        yield reader_factory(engine)
    finally:
        engine.dispose()


@contextmanager
def redis_client(settings: Settings) -> Iterator[Redis]:
    """A client of the configured Redis, closed on exit."""
    client = connect(settings.resolved_redis_url())
    try:
        yield client
    finally:
        client.close()


@contextmanager
def scoped(settings: Settings) -> Iterator[Container]:
    """A whole container for one command, closed when the command ends."""
    c = build(settings)
    try:
        yield c
    finally:
        c.close()


def api_app(settings: Settings) -> FastAPI:
    """The gateway app for one api process: an async Redis client per event loop, and an
    engine disposed when the app shuts down. Connections open lazily."""
    from worker.gateway.app import create_app  # FastAPI loads in the api role only

    url = settings.resolved_redis_url()
    engine = make_engine(settings.resolved_database_url())
    app = create_app(settings, lambda: AsyncRedis.from_url(url, decode_responses=True), engine)
    app.router.add_event_handler("shutdown", engine.dispose)
    return app
