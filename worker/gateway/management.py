"""The management API: read issues from the store; act on them through the event stream.

Reads use read-only sessions. Every action (acknowledge, resolve, escalate, snooze) becomes an
IssueEvent XADDed to the same stream as any webhook's, so it is ordered and audited like them.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Header, Query
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from pydantic import SecretStr, ValidationError
from sqlalchemy.orm import Session

from schemas.api import (
    DeadlineOut,
    IssueDetail,
    IssuePage,
    IssueSummary,
    NextDeadline,
    SnoozeRequest,
    TargetOut,
    TimelineOut,
)
from schemas.events import EventType, IssueEvent
from worker.domain.clock import Clock
from worker.errors import Rejected
from worker.gateway.intake import PerLoop, delivery_key
from worker.gateway.problems import Receipt, invalid, pydantic_errors, responses
from worker.gateway.signatures import bearer_matches, unauthorized
from worker.store import views
from worker.store.db import SessionFactory
from worker.store.models import Deadline, Issue
from worker.store.repository import clock_of

TIMELINE_MAX = 1000
Idem = Annotated[str | None, Header(alias="Idempotency-Key", max_length=200)]
Actor = Annotated[
    str | None,
    Header(
        alias="X-Escalator-Actor",
        min_length=1,
        max_length=200,
        description="Who acts (a person's name): recorded on the issue's timeline.",
    ),
]


def _summary(issue: Issue, nxt: Deadline | None) -> dict[str, object]:
    return {
        "key": issue.key,
        "source": issue.source,
        "id": issue.external_id,
        "title": issue.title,
        "severity": issue.severity,
        "status": issue.status,
        "assignee": issue.assignee,
        "lifecycle": issue.lifecycle,
        "tier": issue.tier,
        "policy": issue.policy_name,
        "cycle_started_at": issue.cycle_started_at,
        "updated_at": issue.updated_at,
        "next_deadline": (
            NextDeadline(target=nxt.target, kind=nxt.kind, due_at=nxt.due_at) if nxt else None
        ),
    }


def _split(key: str) -> tuple[str, str]:
    if "\x00" in key:  # PostgreSQL cannot even compare it: refuse it before any query
        raise invalid([{"field": "path: key", "message": "contains a NUL byte (\\x00)"}])
    source, sep, external_id = key.partition(":")
    if not sep or not source or not external_id:
        raise Rejected(404, "Not found", "an issue key is source:id, e.g. github:acme/app#42")
    return source, external_id


class Management:
    """Queries and actions, bound to the store, the stream and a clock."""

    def __init__(
        self, readers: SessionFactory | None, per_loop: PerLoop, clock: Clock, ttl_s: int
    ) -> None:
        self.readers = readers
        self.per_loop = per_loop
        self.clock = clock
        self.ttl_s = ttl_s

    def _session(self) -> Session:
        if self.readers is None:
            raise Rejected(503, "No database", "this gateway was started without a database")
        return self.readers()

    def page(self, state: str, offset: int, limit: int) -> IssuePage:
        with self._session() as s:
            rows = views.issue_page(s, state == "open", offset, limit + 1)
            items = [IssueSummary(**_summary(r.issue, r.next_deadline)) for r in rows[:limit]]
        return IssuePage(items=items, next_offset=offset + limit if len(rows) > limit else None)

    def detail(self, key: str) -> IssueDetail:
        source, external_id = _split(key)
        with self._session() as s:
            found = views.issue_by_key(s, source, external_id)
            if found is None:
                raise Rejected(404, "Not found", f"no issue {key}")
            issue = found.issue
            deadlines = views.deadlines(s, issue.id)
            timeline = views.recent_timeline(s, issue.id, TIMELINE_MAX)
            return IssueDetail(
                **_summary(issue, found.next_deadline),
                labels=list(issue.labels or []),
                url=issue.url,
                clock_version=issue.clock_version,
                snoozed_until=issue.snoozed_until,
                targets=[
                    TargetOut(
                        target=c.target,
                        state=c.state.value,
                        started_at=c.started_at,
                        running_since=c.running_since,
                        counted_s=c.spent.total_seconds(),
                        step=c.step,
                        warned=list(c.warned),
                        breached=c.breached,
                    )
                    for c in clock_of(issue).targets
                ],
                deadlines=[DeadlineOut.model_validate(d, from_attributes=True) for d in deadlines],
                timeline=[TimelineOut.model_validate(t, from_attributes=True) for t in timeline],
            )

    async def act(
        self,
        key: str,
        kind: EventType,
        idempotency_key: str | None,
        snooze: SnoozeRequest | None = None,
        actor: str | None = None,
    ) -> JSONResponse:
        new, receipt = await self.submit(key, kind, idempotency_key, snooze, actor)
        return JSONResponse(receipt.model_dump(), status_code=202 if new else 200)

    async def submit(
        self,
        key: str,
        kind: EventType,
        idempotency_key: str | None,
        snooze: SnoozeRequest | None = None,
        actor: str | None = None,
    ) -> tuple[bool, Receipt]:
        """Put the action's event on the stream (once per idempotency key): (new, receipt)."""
        issue = await run_in_threadpool(self.detail, key)
        try:
            event = _action_event(issue, kind, self.clock.now(), snooze, actor)
        except ValidationError as exc:  # e.g. an `until` whose UTC form leaves year 1-9999
            errors = pydantic_errors(exc.errors())
            for e in errors:  # the caller sent `until`; the event calls it `snooze_until`
                e["field"] = e["field"].replace("snooze_until", "until", 1)
            raise invalid(errors) from None
        delivery = f"{key}:{idempotency_key}" if idempotency_key else event.event_id
        new, event_ids, stream_ids = await self.per_loop.producer().send_once(
            delivery_key("api", delivery), self.ttl_s, [event]
        )
        receipt = Receipt(
            status="accepted" if new else "duplicate", event_ids=event_ids, stream_ids=stream_ids
        )
        return new, receipt


def _action_event(
    issue: IssueDetail,
    kind: EventType,
    now: datetime,
    snooze: SnoozeRequest | None,
    actor: str | None = None,
) -> IssueEvent:
    """The event an action puts on the stream: happening now, to the issue as it is stored."""
    return IssueEvent.model_validate(
        {
            "event_id": f"api:{uuid.uuid4().hex}",
            "type": kind,
            "occurred_at": now,
            "source": issue.source,
            "issue": {
                "id": issue.id,
                "title": issue.title[:1000],
                "severity": issue.severity,
                "status": issue.status[:100],
                "assignee": issue.assignee,
                "labels": issue.labels[:100],
                "url": issue.url,
            },
            "snooze_until": snooze.until if snooze else None,
            "actor": actor,
        }
    )


def bearer_guard(tokens: tuple[SecretStr, ...]) -> Callable[..., None]:
    """The dependency of every management route (issues, reports, backtest): one of `tokens`
    as a bearer, and a refusal naming every variable that turns the API on."""

    def authorize(authorization: Annotated[str | None, Header()] = None) -> None:
        if not tokens:
            raise unauthorized(
                "the management API is off: set ESCALATOR_MANAGEMENT_TOKEN or ESCALATOR_API_TOKEN"
                " (either is accepted as a bearer token), then restart"
            )
        if not bearer_matches(tokens, authorization):
            raise unauthorized("send Authorization: Bearer <management or API token>")

    return authorize


def router(manager: Management, tokens: tuple[SecretStr, ...]) -> APIRouter:
    """The `/v1/issues` routes, each requiring one of `tokens` as a bearer."""
    authorize = bearer_guard(tokens)

    api = APIRouter(prefix="/v1/issues", tags=["management"], dependencies=[Depends(authorize)])
    read = responses(401, 404, 422, 503)
    act: dict[int | str, dict[str, Any]] = {
        200: {"model": Receipt, "description": "Same Idempotency-Key: nothing added."},
        **responses(401, 404, 422, 503),
    }

    @api.get("", response_model=IssuePage, responses=read)
    def list_issues(
        state: Literal["open", "all"] = "open",
        offset: Annotated[int, Query(ge=0, le=10**9)] = 0,
        limit: Annotated[int, Query(ge=1, le=200)] = 50,
    ) -> IssuePage:
        """Issues by id, open ones (not resolved) or all, a page at a time."""
        return manager.page(state, offset, limit)

    @api.get("/{key:path}", response_model=IssueDetail, responses=read)
    def get_issue(key: str) -> IssueDetail:
        """One issue (`source:id`) with its deadlines and timeline."""
        return manager.detail(key)

    def action(kind: EventType, what: str) -> None:
        @api.post(
            "/{key:path}/" + what,
            status_code=202,
            response_model=Receipt,
            responses=act,
            name=f"{what}_issue",
            summary=f"{what.capitalize()} an issue (through the event stream)",
        )
        async def _act(key: str, idempotency_key: Idem = None, actor: Actor = None) -> JSONResponse:
            return await manager.act(key, kind, idempotency_key, actor=actor)

    action(EventType.ACKNOWLEDGED, "acknowledge")
    action(EventType.RESOLVED, "resolve")
    action(EventType.ESCALATION_REQUESTED, "escalate")

    @api.post(
        "/{key:path}/snooze",
        status_code=202,
        response_model=Receipt,
        responses=act,
        summary="Snooze an issue's acknowledge ladder until a time",
    )
    async def snooze_issue(
        key: str, body: SnoozeRequest, idempotency_key: Idem = None, actor: Actor = None
    ) -> JSONResponse:
        return await manager.act(key, EventType.SNOOZED, idempotency_key, body, actor)

    return api
