"""The Backtest page: paste or upload a policy file, pick a period, and see what it would have
done over the events recorded then, beside what really happened (docs/reports.md, Backtest).

The figures are `worker.services.backtest`'s, as `escalator policy backtest` and
`POST /v1/policies/backtest` give them. Its form is POSTed with the session's CSRF token; a
viewer may run it too: it reads, and writes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse

from worker.domain.backtest_compare import Comparison, both_timelines, sections
from worker.gateway.backtest import check_zone
from worker.gateway.console.app import Console, Refused, Who, form_of, log
from worker.gateway.console.auth import csrf_ok
from worker.services.backtest import (
    BadPeriod,
    BadPolicy,
    Busy,
    backtest_alone,
    period,
    policy_from_text,
)

TOP_MAX = 50


@dataclass(frozen=True, slots=True)
class Form:
    """What the page's form asks for, as typed."""

    policy: str = ""
    since: str = "30d"
    until: str = ""
    tz: str = "UTC"
    top: str = "10"


def router(console: Console) -> APIRouter:
    """`GET /backtest` (the form) and `POST /backtest` (the form and the comparison)."""
    api = APIRouter(include_in_schema=False)

    def page(
        request: Request, visitor: Who, form: Form, status: int = 0, **context: object
    ) -> HTMLResponse:
        status = status or (422 if context.get("error") else 200)
        response = console.html(request, "backtest.html", visitor, form=form, **context)
        response.status_code = status
        return response

    def run(form: Form) -> Comparison:
        if console.readers is None:
            raise Refused(503, "No database", "this api process was started without a database")
        policies = policy_from_text(form.policy, "(the pasted policy)")
        start, end = period(form.since, form.until or None, console.now())
        top = int(form.top) if form.top.isdigit() else 10
        return backtest_alone(  # one at a time per process, else Busy
            console.readers, policies, start, end, check_zone(form.tz), min(top, TOP_MAX)
        )

    @api.get("/backtest")
    async def form_page(request: Request, visitor: Who) -> HTMLResponse:
        return page(request, visitor, Form(), error="", report=None)

    @api.post("/backtest")
    async def run_page(request: Request, visitor: Who) -> HTMLResponse:
        fields = await form_of(request)
        given = fields.get("csrf_token") or request.headers.get("x-csrf-token")
        if not csrf_ok(visitor, given):  # no may_act: a viewer may run it, it writes nothing
            raise Refused(403, "Refused: missing or wrong CSRF token", "reload the page and retry")
        form = _form(fields)
        if not form.policy.strip():
            return page(request, visitor, form, error="paste or upload a policy file", report=None)
        try:
            report = await run_in_threadpool(run, form)
        except (BadPolicy, BadPeriod) as exc:
            return page(request, visitor, form, error=str(exc), report=None)
        except Busy as exc:
            return page(request, visitor, form, status=429, error=str(exc), report=None)
        log.info("console.backtest", actor=visitor.actor, differences=report.differences)
        timelines = {c.key: both_timelines(c) for c in report.top}
        return page(
            request,
            visitor,
            form,
            error="",
            report=report,
            tables=sections(report),
            timelines=timelines,
        )

    return api


def _form(fields: dict[str, str]) -> Form:
    return Form(
        policy=fields.get("policy", ""),
        since=fields.get("since", "30d").strip() or "30d",
        until=fields.get("until", "").strip(),
        tz=fields.get("tz", "UTC").strip() or "UTC",
        top=fields.get("top", "10").strip(),
    )
