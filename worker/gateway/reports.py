"""`GET /v1/reports/sla` (JSON, or CSV) and `POST /v1/issues/{key}/notes`, behind the
management API's tokens. The figures are explained in docs/reports.md."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response
from pydantic import Field, SecretStr

from schemas.base import StrictModel
from worker.domain.clock import Clock
from worker.domain.reports import SECTIONS
from worker.errors import Rejected
from worker.gateway.management import bearer_guard
from worker.gateway.problems import responses
from worker.services.notes import NOTE_MAX, NoteRefused, add_note
from worker.services.reports import (
    ReportError,
    as_csv,
    as_json,
    ask,
    sla_report,
    sla_reports_and_notes,
)
from worker.services.uow import Units
from worker.store.db import SessionFactory

CSV = "text/csv"


class NoteIn(StrictModel):
    """A post-resolution note: root cause, what was learnt."""

    text: str = Field(min_length=1, max_length=NOTE_MAX)


class NoteOut(StrictModel):
    issue: str
    at: str
    author: str
    text: str


def router(
    readers: SessionFactory | None,
    units: Units | None,
    clock: Clock,
    tokens: tuple[SecretStr, ...],
) -> APIRouter:
    """The report and notes routes, each requiring one of `tokens` as a bearer."""

    authorize = bearer_guard(tokens)

    api = APIRouter(tags=["reports"], dependencies=[Depends(authorize)])

    def report(
        since: str | None, until: str | None, by: list[str], tz: str, fmt: str, section: str
    ) -> Response:
        if readers is None:
            raise Rejected(503, "No database", "this gateway was started without a database")
        try:
            asked = ask(since, until, by, tz, clock.now())
            if fmt == "csv":
                return Response(as_csv(sla_report(readers, asked), section), media_type=CSV)
            [found], notes = sla_reports_and_notes(readers, asked, [asked.by])
        except ReportError as exc:
            raise Rejected(422, "Bad report request", str(exc)) from None
        return JSONResponse(as_json(found, notes))

    @api.get(
        "/v1/reports/sla",
        responses={
            200: {
                "description": "The report: JSON (every table and the notes of breached "
                "issues) or, with `Accept: text/csv` or `format=csv`, one table as CSV.",
                "content": {"application/json": {}, CSV: {}},
            },
            **responses(401, 422, 503),
        },
        summary="SLA report over a period",
    )
    async def sla(
        request: Request,
        since: Annotated[
            str | None, Query(max_length=40, description="30d, or an ISO date")
        ] = None,
        until: Annotated[str | None, Query(max_length=40, description="Default: now")] = None,
        by: Annotated[list[str] | None, Query(description="severity, tier, week, ...")] = None,
        tz: Annotated[str, Query(max_length=60, description="IANA zone of periods")] = "UTC",
        format: Annotated[str | None, Query(pattern="^(json|csv)$")] = None,
        section: Annotated[
            str, Query(description=f"CSV: one of {', '.join(SECTIONS)}")
        ] = "targets",
    ) -> Response:
        """Per target, per issue cycle, per tier, notifications and escalation lateness."""
        wants_csv = format == "csv" or (format is None and CSV in request.headers.get("accept", ""))
        fmt = "csv" if wants_csv else "json"
        return await run_in_threadpool(report, since, until, by or [], tz, fmt, section)

    def write(key: str, text: str, author: str) -> dict[str, Any]:
        if units is None:
            raise Rejected(503, "No database", "this gateway was started without a database")
        try:
            noted = add_note(units, key, text, author, clock.now())
        except NoteRefused as exc:
            titles = {404: "Not found", 409: "Not resolved", 422: "Bad note"}
            raise Rejected(exc.status, titles.get(exc.status, "Refused"), str(exc)) from None
        return {"issue": noted.issue, "at": noted.at.isoformat(), "author": noted.author,
                "text": noted.text}  # fmt: skip

    @api.post(
        "/v1/issues/{key:path}/notes",
        status_code=201,
        response_model=NoteOut,
        responses={
            409: {"description": "The issue is not resolved."},
            **responses(401, 404, 422, 503),
        },
        summary="Add a post-resolution note to a resolved issue",
    )
    async def add(
        key: str,
        body: NoteIn,
        actor: Annotated[str | None, Header(alias="X-Escalator-Actor", max_length=200)] = None,
    ) -> dict[str, Any]:
        """Written straight to the issue's timeline (kind `note`), by `X-Escalator-Actor`."""
        return await run_in_threadpool(write, key, body.text, actor or "api")

    return api
