"""The `api` role's app factory: each uvicorn worker process builds its own from the environment."""

from __future__ import annotations

from fastapi import FastAPI

from config.logging import configure_logging
from config.settings import Settings
from worker.bootstrap import api_app


def app_from_environment() -> FastAPI:
    """Settings from ESCALATOR_* and .env, as every role reads them; connections open lazily."""
    settings = Settings()
    configure_logging(settings)
    return api_app(settings)
