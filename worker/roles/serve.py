"""The `api` role's app factory: each uvicorn worker process builds its own from the environment."""

from __future__ import annotations

from fastapi import FastAPI

from config.logging import configure_logging
from config.settings import Settings
from worker.bootstrap import api_app
from worker.broker.connection import connect
from worker.roles.pulse import Pulse


def app_from_environment() -> FastAPI:
    """Settings from ESCALATOR_* and .env, as every role reads them; connections open lazily.
    Each api process beats (`worker/roles/pulse.py`) while it serves."""
    settings = Settings()
    configure_logging(settings)
    app = api_app(settings)
    redis = connect(settings.resolved_redis_url())
    pulse = Pulse(redis, "api", settings.heartbeat_every_s)

    def _stop() -> None:
        pulse.stop()
        redis.close()

    app.router.add_event_handler("startup", pulse.start)
    app.router.add_event_handler("shutdown", _stop)
    return app
