"""The issue page's note form: a post-resolution note (root cause, what was learnt) written on
a resolved issue's timeline through `worker.services.notes`, by the signed-in person.

Like every console action it needs full access and the session's CSRF token. Unlike the
others it does not go through the event stream (docs/reports.md says why): the note is on the
timeline when the page comes back.
"""

from __future__ import annotations

import structlog
from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import RedirectResponse, Response

from worker.gateway.console.app import Console, Refused, Who, form_of, may_act
from worker.gateway.console.render import issue_path
from worker.services.notes import Noted, NoteRefused, add_note
from worker.services.uow import Units

log = structlog.get_logger("escalator.console")
TITLES = {404: "No such issue", 409: "Not resolved", 422: "Bad note"}


def router(console: Console) -> APIRouter:
    """`POST /issues/{key}/notes` (the form on the issue page)."""
    api = APIRouter(include_in_schema=False)

    def write(key: str, text: str, author: str) -> Noted:
        if console.writers is None:
            raise Refused(503, "No database", "this api process was started without a database")
        try:
            return add_note(Units(console.writers), key, text, author, console.now())
        except NoteRefused as exc:
            raise Refused(exc.status, TITLES.get(exc.status, "Refused"), str(exc)) from None

    @api.post("/issues/{key:path}/notes")
    async def note(request: Request, key: str, visitor: Who) -> Response:
        fields = await form_of(request)
        may_act(visitor, fields, request)
        noted = await run_in_threadpool(write, key, fields.get("text", ""), visitor.actor)
        log.info("console.noted", issue=noted.issue, actor=visitor.actor)
        return RedirectResponse(f"{issue_path(key)}?done=note#timeline-card", status_code=303)

    return api
