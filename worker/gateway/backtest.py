"""`POST /v1/policies/backtest`: a policy file (YAML, the request body) replayed over the events
recorded in a period, side by side with what happened (docs/reports.md, Backtest). Behind the
management API's tokens; reads only, writes nothing."""

from __future__ import annotations

from typing import Annotated, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from fastapi import APIRouter, Depends, Query, Request
from fastapi.concurrency import run_in_threadpool
from pydantic import SecretStr

from worker.domain.backtest_compare import as_dict
from worker.domain.clock import Clock
from worker.errors import Rejected
from worker.gateway.management import bearer_guard
from worker.gateway.problems import Problem, invalid, responses
from worker.services.backtest import (
    BadPeriod,
    BadPolicy,
    Busy,
    backtest_alone,
    period,
    policy_from_text,
)
from worker.store.db import SessionFactory

YAML_TYPES = ("application/yaml", "application/x-yaml", "text/yaml", "text/plain")
EXAMPLE = "default: standard\npolicies:\n  - name: standard\n    acknowledge: {within: 15m}\n"


def check_zone(zone: str) -> str:
    """The zone's name, if it is one."""
    try:
        ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError):
        raise BadPeriod(f"tz: unknown time zone {zone!r}") from None
    return zone


def router(
    readers: SessionFactory | None, clock: Clock, tokens: tuple[SecretStr, ...]
) -> APIRouter:
    """The backtest route, requiring one of `tokens` as a bearer."""

    authorize = bearer_guard(tokens)

    api = APIRouter(tags=["policies"], dependencies=[Depends(authorize)])

    @api.post(
        "/v1/policies/backtest",
        responses={
            200: {"description": "What happened and what the policy would have done."},
            **responses(401, 422, 503),
            429: {"model": Problem, "description": "A backtest is already running; retry."},
        },
        openapi_extra={
            "requestBody": {
                "required": True,
                "description": "A policy file, as `escalator policy check` reads it.",
                "content": {
                    t: {"schema": {"type": "string"}, "example": EXAMPLE} for t in YAML_TYPES[:1]
                },
            }
        },
    )
    async def backtest_policy(
        request: Request,
        since: Annotated[
            str, Query(max_length=40, description="30d, 12h, 2w back from now, or ISO 8601.")
        ] = "30d",
        until: Annotated[str | None, Query(max_length=40, description="Default: now.")] = None,
        top: Annotated[int, Query(ge=0, le=100, description="Most-changed issues listed.")] = 10,
        tz: Annotated[
            str, Query(max_length=64, description="Night and weekend pages of rosterless tiers.")
        ] = "UTC",
    ) -> dict[str, Any]:
        """Replay the events recorded in [since, until) under the policy in the body (no
        Redis, nothing written) and compare: escalations per tier and target, breaches per
        target, notifications per channel, kind and tier, pages per person (per ISO week,
        night and weekend apart), and the issues whose course changes most, with both
        timelines."""
        if readers is None:
            raise Rejected(503, "No database", "this gateway was started without a database")
        body = await request.body()
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            raise invalid([{"field": "body", "message": "not UTF-8 text"}]) from None
        try:
            policies = policy_from_text(text)
            start, end = period(since, until, clock.now())
            zone = check_zone(tz)
        except BadPolicy as exc:
            raise invalid([{"field": "body", "message": p} for p in exc.problems]) from None
        except BadPeriod as exc:
            raise invalid([{"field": "query", "message": str(exc)}]) from None
        try:  # one at a time per process: the slot is taken in the thread that runs it
            report = await run_in_threadpool(
                backtest_alone, readers, policies, start, end, zone, top
            )
        except Busy as exc:
            raise Rejected(429, "Too many requests", str(exc)) from None
        return as_dict(report)

    return api
