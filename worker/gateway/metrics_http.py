"""The api's metrics: `GET /metrics` (the whole stack's, under `escalator run`) and a pure ASGI
middleware that counts and times every request by its route template, never its raw path.

The middleware is the outermost layer, so the intake fast path (`worker.gateway.fastpath`),
which answers before FastAPI routes anything, is measured too: its endpoints are literal paths
registered as routes, so their path is their template. A path no route matches is `unmatched`.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Sequence
from typing import Any

import structlog
from fastapi import FastAPI
from fastapi.concurrency import run_in_threadpool
from sqlalchemy import Engine
from starlette.responses import Response
from starlette.routing import BaseRoute
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from config.settings import Settings
from worker.domain.clock import Clock
from worker.gateway.metrics import CONTENT_TYPE, metrics, process_dead, render, scrape_registry
from worker.gateway.metrics_state import StateCollector, scrape_client
from worker.services.policy_loader import PolicySource
from worker.store.db import reader_factory

log = structlog.get_logger("escalator.metrics")
UNMATCHED = "unmatched"
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
_CONVERTER = re.compile(r"\{(\w+):[^}]*\}")  # `{key:path}` is labelled `{key}`


def template(path: str) -> str:
    """A route's path as a label: its parameters without their converters."""
    return _CONVERTER.sub(r"{\1}", path)


class HttpMetrics:
    """Pure ASGI: times the request, takes the status from the response's start, and labels
    both with the route template the router matched (`scope["route"]`)."""

    def __init__(self, app: ASGIApp, routes: Sequence[BaseRoute]) -> None:
        self.app = app
        self.routes = routes  # the app's own list: routes added later are seen too
        self._literal: dict[str, str] = {}
        self._known = -1
        # the labelled series of each (route, method, status) seen: looked up once each
        self._series: dict[tuple[str, str, int], tuple[Any, Any]] = {}
        self._failed = False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # if the app raises before it answers, the server answers 500

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            self.record(scope, status, time.perf_counter() - started)

    def record(self, scope: Scope, status: int, seconds: float) -> None:
        """Count and time one request; a failure to record never fails the request."""
        try:
            key = (self.route_of(scope), scope["method"], status)
            series = self._series.get(key) or self._labelled(key)
            series[0].inc()
            series[1].observe(seconds)
        except Exception as exc:
            if not self._failed:
                self._failed = True
                log.error(
                    "metrics.record_failed", helper="http", error=f"{type(exc).__name__}: {exc}"
                )

    def _labelled(self, key: tuple[str, str, int]) -> tuple[Any, Any]:
        route, method, status = key
        m = metrics()
        method = method if method in METHODS else "other"
        series = (m.http_requests.labels(route, method, str(status)), m.http_duration.labels(route))
        self._series[key] = series
        return series

    def route_of(self, scope: Scope) -> str:
        route: Any = scope.get("route")
        path = getattr(route, "path", None)
        if isinstance(path, str):
            return template(path)
        if len(self.routes) != self._known:  # the literal paths, looked up once per change
            self._known = len(self.routes)
            self._literal = {p: p for r in self.routes if "{" not in (p := getattr(r, "path", "{"))}
        return self._literal.get(scope["path"], UNMATCHED)


def mount(app: FastAPI, settings: Settings, engine: Engine | None, clock: Clock) -> None:
    """Serve `GET /metrics` (the counters of every process of the directory, then the state
    gauges, read now) and measure every request; call it after the other middleware, so this
    one is outermost. The process marks itself dead in the directory when the app stops."""
    collector = StateCollector(
        scrape_client(settings.resolved_redis_url()),
        reader_factory(engine) if engine is not None else None,
        settings,
        clock,
        PolicySource(settings.policy_file),
    )
    registry = scrape_registry(collector)

    @app.get("/metrics", include_in_schema=False)
    async def scrape() -> Response:
        """The Prometheus text format (never OpenMetrics); Redis and the database are read
        off the event loop."""
        return Response(await run_in_threadpool(render, registry), media_type=CONTENT_TYPE)

    app.add_middleware(HttpMetrics, routes=app.router.routes)
    app.router.add_event_handler("shutdown", lambda: process_dead(os.getpid()))
