"""The gateway app: webhook sources, our own events, the management API, health and OpenAPI."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse
from redis.exceptions import RedisError
from sqlalchemy import Engine
from starlette.exceptions import HTTPException

from config.settings import Settings
from schemas.events import EventWindow, IssueEvent
from worker.domain.clock import Clock, SystemClock
from worker.errors import Rejected
from worker.gateway import console
from worker.gateway.backtest import router as backtest_router
from worker.gateway.fastpath import FastPath
from worker.gateway.health import router as health_router
from worker.gateway.intake import BodyLimit, PerLoop, RedisFactory, accept
from worker.gateway.management import Management, router
from worker.gateway.metrics_http import mount as mount_metrics
from worker.gateway.problems import (
    Receipt,
    fix_openapi,
    invalid,
    problem_response,
    pydantic_errors,
    responses,
)
from worker.gateway.reports import router as reports_router
from worker.gateway.sources.alertmanager import AlertmanagerAdapter
from worker.gateway.sources.common import Adapter, Incoming
from worker.gateway.sources.events import EventsAdapter
from worker.gateway.sources.github import GithubAdapter
from worker.gateway.sources.jira import JiraAdapter
from worker.gateway.sources.pagerduty import PagerDutyAdapter
from worker.gateway.sources.zendesk import ZendeskAdapter
from worker.services.uow import Units
from worker.store.db import reader_factory, session_factory

log = structlog.get_logger("escalator.gateway")
WEBHOOKS = ("github", "jira", "zendesk", "pagerduty", "alertmanager")
UNAVAILABLE = Rejected(503, "Event store unavailable", "Redis did not take the request; retry")


def adapters(settings: Settings) -> dict[str, Adapter]:
    """The configured sources; the others answer 404."""
    s = settings.sources
    found: dict[str, Adapter] = {}
    events = EventsAdapter(s.events, settings.api_token)
    if events.enabled:
        found["events"] = events
    if s.github:
        found["github"] = GithubAdapter(s.github)
    if s.jira:
        found["jira"] = JiraAdapter(s.jira)
    if s.zendesk:
        found["zendesk"] = ZendeskAdapter(s.zendesk)
    if s.pagerduty:
        found["pagerduty"] = PagerDutyAdapter(s.pagerduty)
    if s.alertmanager:
        found["alertmanager"] = AlertmanagerAdapter(s.alertmanager)
    return found


def how_to_enable(source: str) -> str:
    """What a refusal of an unconfigured intake route says: every variable that turns it on."""
    if source == "events":
        return (
            "POST /v1/events is off: set ESCALATOR_API_TOKEN (then send it as a bearer token) "
            'or add an "events" source to ESCALATOR_SOURCES (Standard Webhooks secrets), '
            "then restart"
        )
    return (
        f'the {source} source is not set up: add "{source}" to ESCALATOR_SOURCES, e.g. '
        f'{{"{source}": {{"secrets": ["..."]}}}}, then restart'
    )


def announce(settings: Settings, sources: dict[str, Adapter]) -> None:
    """Say at start-up which sources are served, and shout about insecure ones."""
    for name in ("events", *WEBHOOKS):
        config = getattr(settings.sources, name)
        if config is not None and config.insecure:
            log.warning(
                "gateway.source_insecure",
                source=name,
                message=f"INSECURE: /{name} accepts requests that nobody authenticated",
            )
    log.info(
        "gateway.sources",
        served=sorted(sources),
        not_configured=sorted(set(("events", *WEBHOOKS)) - set(sources)),
    )


def create_app(
    settings: Settings,
    connect: RedisFactory,
    engine: Engine | None = None,
    clock: Clock | None = None,
) -> FastAPI:
    """The gateway, reading Redis through `connect` (called once per event loop)."""
    clock = clock or SystemClock()
    app = FastAPI(
        title="Escalator", version="0.1.0", description=__doc__, docs_url=None, redoc_url=None
    )  # /docs and /redoc: the console serves them from packaged assets
    per_loop = PerLoop(connect)
    sources = adapters(settings)
    announce(settings, sources)
    insecure = {
        n
        for n in WEBHOOKS
        if getattr(settings.sources, n) and getattr(settings.sources, n).insecure
    }
    window = settings.gateway_replay_window_s
    ttl = settings.gateway_dedup_ttl_s
    times = EventWindow.of_seconds(settings.event_max_skew_s, settings.event_max_age_s)

    @app.exception_handler(Rejected)
    async def _rejected(request: Request, exc: Rejected) -> JSONResponse:
        event = "gateway.unauthorized" if exc.status == 401 else "gateway.rejected"
        log.info(event, path=request.url.path, status=exc.status, reason=exc.detail or exc.title)
        return problem_response(exc)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        return problem_response(invalid(pydantic_errors(list(exc.errors()))))

    @app.exception_handler(HTTPException)
    async def _http(_: Request, exc: HTTPException) -> JSONResponse:
        return problem_response(Rejected(exc.status_code, str(exc.detail)))

    @app.exception_handler(RedisError)
    async def _redis(_: Request, exc: RedisError) -> JSONResponse:
        log.warning("gateway.redis_unavailable", error=type(exc).__name__)
        return problem_response(UNAVAILABLE)

    @app.exception_handler(Exception)
    async def _bug(request: Request, exc: Exception) -> JSONResponse:
        log.error("gateway.internal_error", path=request.url.path, error=type(exc).__name__)
        return problem_response(Rejected(500, "Internal error", "logged; not your fault"))

    codes = responses(400, 401, 404, 413, 422, 503)
    answers: dict[int | str, dict[str, Any]] = {
        200: {"model": Receipt, "description": "Duplicate or ignored; nothing was added."},
        **codes,
    }

    def endpoint(name: str) -> Callable[[Request], Awaitable[JSONResponse]]:
        async def receive(request: Request) -> JSONResponse:
            adapter = sources.get(name)
            if adapter is None:
                raise Rejected(404, "Source not configured", how_to_enable(name))
            incoming = Incoming(request.headers, await request.body(), clock.now(), window)
            status, receipt = await accept(
                adapter, incoming, per_loop, ttl, name in insecure, times
            )
            return JSONResponse(receipt.model_dump(), status_code=status)

        return receive

    body = {
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/IssueEvent"}}}
    }
    intake = {"/v1/events": endpoint("events")}
    intake.update({f"/v1/webhooks/{name}": endpoint(name) for name in WEBHOOKS})
    app.add_api_route(
        "/v1/events",
        intake["/v1/events"],
        methods=["POST"],
        status_code=202,
        response_model=Receipt,
        responses=answers,
        summary="Put one IssueEvent on the stream (bearer token or Standard Webhooks signature)",
        openapi_extra={"requestBody": {**body, "required": True}},
    )
    for name in WEBHOOKS:
        app.add_api_route(
            f"/v1/webhooks/{name}",
            intake[f"/v1/webhooks/{name}"],
            methods=["POST"],
            status_code=202,
            response_model=Receipt,
            responses=answers,
            summary=f"Receive a {name} webhook",
            tags=["webhooks"],
            openapi_extra={
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": {"type": "object"}}},
                }
            },
        )

    tokens = tuple(t for t in (settings.api_token, settings.management_token) if t)
    readers = reader_factory(engine) if engine is not None else None
    manager = Management(readers, per_loop, clock, ttl)
    app.include_router(router(manager, tokens))
    writers = Units(session_factory(engine)) if engine is not None else None
    app.include_router(reports_router(readers, writers, clock, tokens))  # docs/reports.md
    app.include_router(backtest_router(readers, clock, tokens))  # docs/reports.md: Backtest
    console.mount(app, settings, manager, engine, clock)

    app.include_router(health_router(settings, per_loop, engine, clock))

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title, version=app.version, description=app.description,
                routes=app.routes,
            )  # fmt: skip
            event = IssueEvent.model_json_schema(ref_template="#/components/schemas/{model}")
            components = schema.setdefault("components", {}).setdefault("schemas", {})
            components.update(event.pop("$defs", {}))
            components["IssueEvent"] = event
            app.openapi_schema = fix_openapi(schema)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]

    async def on_error(request: Request, exc: Exception) -> JSONResponse:
        if isinstance(exc, Rejected):
            return await _rejected(request, exc)
        if isinstance(exc, RedisError):
            return await _redis(request, exc)
        return await _bug(request, exc)

    app.add_middleware(FastPath, endpoints=intake, on_error=on_error)
    app.add_middleware(BodyLimit, limit=settings.gateway_max_body_bytes)
    mount_metrics(app, settings, engine, clock)  # GET /metrics; its middleware is outermost
    return app
