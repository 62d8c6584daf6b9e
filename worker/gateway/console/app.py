"""The console's shared state and the checks every route makes: who is looking, may they act.

`Console` holds what the routes need (settings, the sign-in keys, templates, sessions on the
store, the management API's actions, the live changes, the policy file); `mount` in the
package's `__init__` builds it once per app.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Any
from urllib.parse import parse_qs

import structlog
from fastapi import Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from redis import Redis
from sqlalchemy.orm import Session

from config.settings import Settings
from worker.domain.clock import Clock
from worker.errors import EscalatorError
from worker.gateway.console.auth import ANONYMOUS, COOKIE, Keys, Visitor, csrf_ok, login_url
from worker.gateway.console.live import Changes
from worker.gateway.console.render import Pages
from worker.gateway.management import Management
from worker.services.policy_loader import PolicySource
from worker.store.db import SessionFactory

log = structlog.get_logger("escalator.console")
FORM_MAX = 64 * 1024
GAP_DAYS = 14  # how far ahead On call and the board look for tiers that reach nobody


class SignInRequired(EscalatorError):
    """No valid session, and anonymous viewing is off."""


class Refused(EscalatorError):
    """A console request refused with an HTML page (403 CSRF, 403 viewer, 404 issue, ...)."""

    def __init__(self, status: int, title: str, detail: str = "") -> None:
        super().__init__(title)
        self.status, self.title, self.detail = status, title, detail


class Console:
    """Everything the console's routes share, built once per app."""

    def __init__(
        self,
        settings: Settings,
        clock: Clock,
        manager: Management,
        readers: SessionFactory | None,
        writers: SessionFactory | None,
        sync_redis: Callable[[], Redis],
    ) -> None:
        self.settings = settings
        self.clock = clock
        self.manager = manager
        self.readers = readers
        self.writers = writers
        self.sync_redis = sync_redis
        self.keys = Keys(settings)
        self.pages = Pages()
        self.policies = PolicySource(settings.policy_file)
        self.changes = Changes(readers)

    def now(self) -> datetime:
        return self.clock.now()

    def session(self) -> Session:
        if self.readers is None:
            raise Refused(503, "No database", "this api process was started without a database")
        return self.readers()

    def visitor(self, request: Request) -> Visitor:
        """The signed-in visitor, or anyone when anonymous viewing is on; else sign in."""
        found = self.keys.read(request.cookies.get(COOKIE), self.now())
        if found is not None:
            return found
        if self.settings.console_anonymous:
            return ANONYMOUS
        raise SignInRequired("sign in")

    def html(self, request: Request, name: str, visitor: Visitor, **context: Any) -> HTMLResponse:
        """A page with what every page shows: who is signed in, the menu, the CSRF token."""
        return self.pages.html(
            name, visitor=visitor, path=request.url.path, now=self.now(), **context
        )

    def refused(self, request: Request, exc: Refused) -> HTMLResponse:
        visitor = self.keys.read(request.cookies.get(COOKIE), self.now()) or ANONYMOUS
        return self.pages.html(
            "error.html",
            status=exc.status,
            visitor=visitor,
            path=request.url.path,
            now=self.now(),
            title=exc.title,
            detail=exc.detail,
        )


async def form_of(request: Request) -> dict[str, str]:
    """An urlencoded form's fields (the first value of each); an oversized body is refused."""
    body = await request.body()
    if len(body) > FORM_MAX:
        raise Refused(413, "Form too large")
    try:
        fields = parse_qs(body.decode(), keep_blank_values=True, max_num_fields=50)
    except (UnicodeDecodeError, ValueError):
        raise Refused(400, "Unreadable form") from None
    return {name: values[0] for name, values in fields.items()}


def may_act(visitor: Visitor, fields: dict[str, str], request: Request) -> None:
    """An action needs full access and the session's CSRF token (form field or header)."""
    given = fields.get("csrf_token") or request.headers.get("x-csrf-token")
    if not csrf_ok(visitor, given):
        log.info("console.csrf_refused", path=request.url.path)
        raise Refused(403, "Refused: missing or wrong CSRF token", "reload the page and retry")
    if not visitor.can_act:
        raise Refused(403, "Read-only", "the viewer token can look, not act")


def to_sign_in(request: Request) -> Response:
    """Where a visitor without a session goes: the sign-in page, coming back here after."""
    target = login_url(request.url.path, request.url.query)
    if request.headers.get("hx-request") or request.url.path == "/console/stream":
        return Response(status_code=401, headers={"HX-Redirect": target})
    return RedirectResponse(target, status_code=303)


def current_visitor(request: Request) -> Visitor:
    """The route dependency: who is looking (see `Console.visitor`)."""
    console: Console = request.app.state.console
    return console.visitor(request)


Who = Annotated[Visitor, Depends(current_visitor)]
