"""On call, Operations (with replay of dead letters and retry of dead notifications), and the
API's documentation served from packaged assets (`/docs`, `/redoc`), so it works offline."""

from __future__ import annotations

from datetime import datetime

import structlog
from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from redis.exceptions import RedisError
from sqlalchemy.exc import SQLAlchemyError

from schemas.policy import PolicyFile
from worker.broker.dead_letters import DeadEntry, list_dead, replay
from worker.domain.oncall import Shift, coverage_gaps, next_shift, on_call, people
from worker.domain.wording.oncall import gap_text
from worker.gateway.console.app import GAP_DAYS, Console, Refused, Who, form_of, may_act
from worker.gateway.console.render import STATIC_URL
from worker.services.operations import Operations, snapshot
from worker.store import views
from worker.store.models import Issue, OutboxMessage
from worker.store.outbox import SqlOutbox

log = structlog.get_logger("escalator.console")
LIST_MAX = 100
# The docs pages load nothing from elsewhere, even what the vendored bundles would fetch on
# their own (ReDoc's footer logo from cdn.redoc.ly): the browser refuses any other origin.
DOCS_CSP = (
    "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
    "script-src 'self' 'unsafe-inline'; worker-src 'self' blob:; connect-src 'self'; "
    "font-src 'self' data:; frame-ancestors 'none'"
)


def tiers(policies: PolicyFile, now: datetime) -> list[dict[str, object]]:
    """Each tier: who is on call now, who is next and from when, its roster, its gaps."""
    gaps = coverage_gaps(policies, now, GAP_DAYS)
    found: list[dict[str, object]] = []
    for tier in policies.tiers:
        upcoming: Shift | None = next_shift(policies, tier.name, now)
        found.append(
            {
                "name": tier.name,
                "now": on_call(policies, tier.name, now),
                "next": upcoming,
                "people": people(policies, tier.name),
                "roster": tier.roster,
                "gaps": [gap_text(g) for g in gaps if g.tier == tier.name],
            }
        )
    return found


def router(console: Console) -> APIRouter:
    """On call, Operations and the API docs."""
    api = APIRouter(include_in_schema=False)

    @api.get("/oncall")
    async def oncall(request: Request, visitor: Who) -> HTMLResponse:
        policies = console.policies.current()
        now = console.now()
        found = tiers(policies, now) if policies is not None else []
        return console.html(
            request, "oncall.html", visitor, tiers=found, policy_error=console.policies.error
        )

    def read() -> tuple[Operations | None, str, list[DeadEntry], list[tuple[OutboxMessage, Issue]]]:
        problems: list[str] = []
        ops: Operations | None = None
        dead: list[DeadEntry] = []
        messages: list[tuple[OutboxMessage, Issue]] = []
        redis = console.sync_redis()  # the app's client, shared: not closed here
        try:
            if console.readers is not None:
                ops = snapshot(redis, console.readers, console.settings, console.now())
            dead = list_dead(redis, LIST_MAX)
        except (RedisError, OSError, SQLAlchemyError) as exc:
            problems.append(f"could not read Redis or the database: {type(exc).__name__}")
        try:
            with console.session() as session:
                messages = views.outbox(session, True, LIST_MAX)
        except SQLAlchemyError as exc:
            problems.append(f"could not read the outbox: {type(exc).__name__}")
        return ops, "; ".join(problems), dead, messages

    @api.get("/operations")
    async def operations(request: Request, visitor: Who, done: str = "") -> HTMLResponse:
        ops, problem, dead, messages = await run_in_threadpool(read)
        return console.html(
            request, "operations.html", visitor, ops=ops, problem=problem, dead=dead,
            messages=messages, done=done[:200],
        )  # fmt: skip

    def replay_now(ids: list[str] | None) -> int:
        return replay(console.sync_redis(), ids)  # the app's client, shared: not closed

    @api.post("/operations/dead-letters/replay")
    async def replay_dead(request: Request, visitor: Who) -> Response:
        fields = await form_of(request)
        may_act(visitor, fields, request)
        ids = None if fields.get("all") == "1" else [fields.get("id", "")]
        try:
            count = await run_in_threadpool(replay_now, ids)
        except RedisError as exc:
            raise Refused(503, "Redis unavailable", type(exc).__name__) from None
        log.info("console.replayed", count=count, actor=visitor.actor)
        return RedirectResponse(f"/operations?done=replayed+{count}", status_code=303)

    def retry_now(ids: list[str] | None) -> int:
        if console.writers is None:
            raise Refused(503, "No database", "this api process was started without a database")
        with console.writers() as session, session.begin():
            return len(SqlOutbox(session).retry_dead(ids, console.now()))

    @api.post("/operations/notifications/retry")
    async def retry_dead(request: Request, visitor: Who) -> Response:
        fields = await form_of(request)
        may_act(visitor, fields, request)
        ids = None if fields.get("all") == "1" else [fields.get("id", "")]
        count = await run_in_threadpool(retry_now, ids)
        log.info("console.retried", count=count, actor=visitor.actor)
        return RedirectResponse(f"/operations?done=queued+{count}+again", status_code=303)

    @api.get("/docs")
    def swagger() -> HTMLResponse:
        page = get_swagger_ui_html(
            openapi_url="/openapi.json",
            title="Escalator API",
            swagger_js_url=f"{STATIC_URL}/vendor/swagger-ui-bundle.js",
            swagger_css_url=f"{STATIC_URL}/vendor/swagger-ui.css",
            swagger_favicon_url=f"{STATIC_URL}/favicon.svg",
            swagger_ui_parameters={"validatorUrl": None},  # no badge from validator.swagger.io
        )
        page.headers["Content-Security-Policy"] = DOCS_CSP
        return page

    @api.get("/redoc")
    def redoc() -> HTMLResponse:
        page = get_redoc_html(
            openapi_url="/openapi.json",
            title="Escalator API",
            redoc_js_url=f"{STATIC_URL}/vendor/redoc.standalone.js",
            redoc_favicon_url=f"{STATIC_URL}/favicon.svg",
            with_google_fonts=False,
        )
        page.headers["Content-Security-Policy"] = DOCS_CSP
        return page

    return api
