"""The web console: server-rendered pages (Jinja2, htmx from the package), live over SSE.

`mount` adds it to the gateway app: sign-in (`auth`), the board and the issue page (`pages`),
On call and Operations and the offline API docs (`ops`), Reports (`reports`, charts drawn by
`charts`), the note form (`notes`), Backtest (`backtest`), live updates (`live`), the static
files (`static/`, vendored htmx, Swagger UI and ReDoc with their licences). See
docs/console.md.
"""

from __future__ import annotations

from collections.abc import Callable

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, Response
from redis import Redis
from sqlalchemy import Engine
from starlette.staticfiles import StaticFiles

from config.settings import Settings
from worker.broker.connection import connect
from worker.domain.clock import Clock
from worker.gateway.console import backtest, notes, ops, pages, reports
from worker.gateway.console.app import Console, Refused, SignInRequired, to_sign_in
from worker.gateway.console.render import STATIC, STATIC_URL, issue_path
from worker.gateway.management import Management
from worker.store.db import reader_factory, session_factory

__all__ = ["Console", "issue_path", "mount"]


def shared_redis(url: str) -> Callable[[], Redis]:
    """The console's Redis client, made once per app and shared by its requests (one
    connection pool), with `connect`'s socket timeouts and keepalive: a Redis that vanished
    without closing its connections fails a page's read instead of holding a threadpool thread
    forever. Nothing connects until the first use."""
    client = connect(url)
    return lambda: client


def mount(
    app: FastAPI,
    settings: Settings,
    manager: Management,
    engine: Engine | None,
    clock: Clock,
    sync_redis: Callable[[], Redis] | None = None,
) -> Console:
    """Serve the console on `app` (its pages, stream, static files, `/docs`, `/redoc`)."""
    console = Console(
        settings,
        clock,
        manager,
        reader_factory(engine) if engine is not None else None,
        session_factory(engine) if engine is not None else None,
        sync_redis or shared_redis(settings.resolved_redis_url()),
    )
    app.state.console = console

    @app.exception_handler(SignInRequired)
    async def _sign_in(request: Request, _: SignInRequired) -> Response:
        return to_sign_in(request)

    @app.exception_handler(Refused)
    async def _refused(request: Request, exc: Refused) -> HTMLResponse:
        return console.refused(request, exc)

    app.include_router(pages.router(console))
    app.include_router(ops.router(console))
    app.include_router(reports.router(console))  # Reports page, CSV (docs/reports.md)
    app.include_router(notes.router(console))  # the issue page's note form
    app.include_router(backtest.router(console))  # Backtest page (docs/reports.md)
    app.mount(STATIC_URL, StaticFiles(directory=STATIC), name="console-static")
    return console
