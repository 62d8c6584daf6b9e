"""The `api` role's app factory: each uvicorn worker process builds its own from the environment."""

from __future__ import annotations

from fastapi import FastAPI
from redis.asyncio import Redis as AsyncRedis

from config.logging import configure_logging
from config.settings import Settings
from worker.gateway.app import create_app
from worker.store.db import make_engine


def app_from_environment() -> FastAPI:
    """Settings from ESCALATOR_* and .env, as every role reads them; connections open lazily."""
    settings = Settings()
    configure_logging(settings)
    url = settings.resolved_redis_url()
    engine = make_engine(settings.resolved_database_url())
    return create_app(settings, lambda: AsyncRedis.from_url(url, decode_responses=True), engine)
