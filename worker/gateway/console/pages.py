"""Sign-in, the board, the issue page and its actions, and the live stream."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated

import structlog
from fastapi import APIRouter, Depends, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, RedirectResponse, Response, StreamingResponse
from pydantic import ValidationError

from schemas.api import SnoozeRequest
from schemas.durations import parse_duration
from schemas.events import EventType
from worker.domain.oncall import coverage_gaps
from worker.errors import Rejected
from worker.gateway.console.app import GAP_DAYS, Console, Refused, Who, form_of, may_act
from worker.gateway.console.auth import (
    ANONYMOUS,
    COOKIE,
    Visitor,
    clean_name,
    csrf_ok,
    safe_next,
)
from worker.gateway.console.board import Filters, board
from worker.gateway.console.detail import detail
from worker.gateway.console.live import events, token_of
from worker.gateway.console.render import issue_path
from worker.store import views

log = structlog.get_logger("escalator.console")
ACTIONS = {
    "acknowledge": EventType.ACKNOWLEDGED,
    "resolve": EventType.RESOLVED,
    "escalate": EventType.ESCALATION_REQUESTED,
    "snooze": EventType.SNOOZED,
}
DONE = {"acknowledge": "Acknowledged", "resolve": "Resolved", "escalate": "Escalated",
        "snooze": "Snoozed", "note": "Note"}  # fmt: skip


def _filters(
    source: str = "", severity: str = "", tier: str = "", policy: str = "", breached: str = ""
) -> Filters:
    return Filters(source, severity, tier, policy, breached in ("1", "on", "true"))


def _split(key: str) -> tuple[str, str]:
    source, sep, external_id = key.partition(":")
    if not sep or not source or not external_id or "\x00" in key:
        raise Refused(404, "No such issue", "an issue key is source:id, e.g. github:acme/app#42")
    return source, external_id


def until_of(text: str, offset_min: str, now: datetime) -> datetime:
    """A snooze's end as typed: a duration (`30m`, `2h`) from now, or a date and time (with an
    offset; without one, in the browser's zone, whose offset the page's script sends)."""
    text = text.strip()
    try:
        return now + parse_duration(text)
    except (ValueError, TypeError):
        pass
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise Refused(422, "Snooze until what?", "give e.g. 30m, 2h or 2026-12-01T15:00") from None
    if when.tzinfo is None:
        try:
            minutes = int(offset_min or 0)  # JavaScript's getTimezoneOffset(): UTC - local
        except ValueError:
            minutes = 0
        when = (when + timedelta(minutes=minutes)).replace(tzinfo=now.tzinfo)
    return when


def unreachable(console: Console) -> list[str]:
    """The tiers that reach nobody at some moment of the next 14 days (the board's warning)."""
    policies = console.policies.current()
    if policies is None:
        return []
    gaps = coverage_gaps(policies, console.now(), GAP_DAYS)
    return list(dict.fromkeys(g.tier for g in gaps))


def router(console: Console) -> APIRouter:
    """The console's pages (no OpenAPI: they are for people)."""
    api = APIRouter(include_in_schema=False)

    @api.get("/login")
    def login_page(request: Request, next: str = "/") -> HTMLResponse:
        return console.html(
            request, "login.html", _anyone(console, request), next=safe_next(next), error=None,
            configured=console.keys.any_token,
        )  # fmt: skip

    @api.post("/login")
    async def login(request: Request) -> Response:
        fields = await form_of(request)
        target = safe_next(fields.get("next"))
        found = console.keys.role_of(fields.get("token", ""))
        if found is None:
            log.info("console.signin_refused", client=request.client.host if request.client else "")
            return console.pages.html(
                "login.html", status=401, visitor=_anyone(console, request), path="/login",
                now=console.now(), next=target, error="That token is not right.",
                configured=console.keys.any_token,
            )  # fmt: skip
        role, fingerprint = found
        name = clean_name(fields.get("name"))
        value = console.keys.issue(role, fingerprint, name, console.now())
        log.info("console.signed_in", role=role, name=name or None)
        response = RedirectResponse(target, status_code=303)
        response.set_cookie(
            COOKIE, value, max_age=int(console.keys.max_age.total_seconds()), path="/",
            httponly=True, samesite="lax", secure=request.url.scheme == "https",
        )  # fmt: skip
        return response

    @api.post("/logout")
    async def logout(request: Request, visitor: Who) -> Response:
        fields = await form_of(request)
        if not visitor.signed_in or not _csrf(visitor, fields, request):
            raise Refused(403, "Refused: missing or wrong CSRF token", "reload the page and retry")
        response = RedirectResponse("/login", status_code=303)
        response.delete_cookie(COOKIE, path="/", httponly=True, samesite="lax")
        return response

    def rows(filters: Filters) -> tuple[list[object], dict[str, list[str]], str]:
        with console.session() as session:
            since = token_of(views.change_marker(session))
            found = board(session, console.policies.current(), filters, console.now())
            return list(found), views.open_choices(session), since

    @api.get("/")
    async def board_page(
        request: Request, visitor: Who, filters: Annotated[Filters, Depends(_filters)]
    ) -> HTMLResponse:
        found, choices, since = await run_in_threadpool(rows, filters)
        return console.html(
            request, "board.html", visitor, rows=found, filters=filters, choices=choices,
            unreachable=unreachable(console), since=since,
        )  # fmt: skip

    @api.get("/console/board")
    async def board_rows(
        request: Request, visitor: Who, filters: Annotated[Filters, Depends(_filters)]
    ) -> HTMLResponse:
        found, _, _ = await run_in_threadpool(rows, filters)
        return console.html(request, "board_rows.html", visitor, rows=found)

    def issue_context(key: str) -> dict[str, object]:
        source, external_id = _split(key)
        with console.session() as session:
            since = token_of(views.change_marker(session))
            found = detail(session, source, external_id, console.policies.current(), console.now())
        if found is None:
            raise Refused(404, "No such issue", f"no issue {key} is known here")
        return {"d": found, "key": key, "since": since}

    @api.get("/issues/{key:path}")
    async def issue_page(request: Request, key: str, visitor: Who, done: str = "") -> HTMLResponse:
        context = await run_in_threadpool(issue_context, key)
        return console.html(request, "issue.html", visitor, done=DONE.get(done, ""), **context)

    @api.get("/console/issue")
    async def issue_live(
        request: Request, visitor: Who, key: Annotated[str, Query(max_length=300)]
    ) -> HTMLResponse:
        context = await run_in_threadpool(issue_context, key)
        return console.html(request, "issue_live.html", visitor, **context)

    @api.post("/issues/{key:path}/actions/{action}")
    async def act(request: Request, key: str, action: str, visitor: Who) -> Response:
        fields = await form_of(request)
        may_act(visitor, fields, request)
        kind = ACTIONS.get(action)
        if kind is None:
            raise Refused(404, "No such action", f"actions: {', '.join(ACTIONS)}")
        _split(key)
        snooze = None
        if kind is EventType.SNOOZED:
            until = until_of(fields.get("until", ""), fields.get("tz_offset", ""), console.now())
            try:
                snooze = SnoozeRequest(until=until)
            except ValidationError:
                raise Refused(422, "Snooze until what?", "a time with its zone") from None
        try:
            await console.manager.submit(key, kind, None, snooze, visitor.actor)
        except Rejected as exc:
            raise Refused(exc.status, exc.title, exc.detail or "") from None
        log.info("console.action", issue=key, action=action, actor=visitor.actor)
        return RedirectResponse(f"{issue_path(key)}?done={action}", status_code=303)

    @api.get("/console/stream")
    async def stream(
        request: Request, visitor: Who, since: Annotated[str | None, Query(max_length=200)] = None
    ) -> StreamingResponse:
        return StreamingResponse(
            events(request, console.changes, since),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
        )

    return api


def _csrf(visitor: Visitor, fields: dict[str, str], request: Request) -> bool:
    return csrf_ok(visitor, fields.get("csrf_token") or request.headers.get("x-csrf-token"))


def _anyone(console: Console, request: Request) -> Visitor:
    return console.keys.read(request.cookies.get(COOKIE), console.now()) or ANONYMOUS
