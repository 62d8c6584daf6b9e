"""Health: alive (`/healthz`), ready (`/readyz`), and escalations running (`/health/engine`).

- `/healthz`: 200 while the process serves requests (a liveness probe: restart it otherwise).
- `/readyz`: Redis answers, the database answers, and its schema is at the migrations' head;
  503 naming the check that failed (a readiness probe: send it no traffic otherwise).
- `/health/engine`: 200 only when the last canary deadline fired recently and on time
  (`worker/services/operations.py: judge`), so the whole path, scheduler claim, Celery task,
  worker, was seen to work; 503 with the reason otherwise. Any api instance answers it for the
  whole deployment, as it reads what the workers recorded in Redis.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from redis.exceptions import RedisError
from sqlalchemy import Engine, text

from config.settings import Settings
from worker.broker import canary
from worker.broker.keys import CANARY
from worker.domain.clock import Clock
from worker.gateway.intake import PerLoop
from worker.services.operations import EngineHealth, judge, window_s
from worker.store.db import READONLY
from worker.store.migrate import behind

OK = "ok"


def _error(exc: BaseException) -> str:
    return f"error: {type(exc).__name__}"


def database_checks(engine: Engine) -> dict[str, str]:
    """The database answers a query, and its schema is at the migrations' head."""
    reader = engine.execution_options(**{READONLY: True})
    try:
        with reader.connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception as exc:
        return {"database": _error(exc), "migrations": "unknown: no database"}
    try:
        lag = behind(reader)
    except Exception as exc:
        return {"database": OK, "migrations": _error(exc)}
    return {"database": OK, "migrations": OK if lag is None else f"behind: {lag}"}


def engine_body(health: EngineHealth, settings: Settings) -> dict[str, Any]:
    """What `/health/engine` answers: the verdict, its reason and the last canary."""
    return {
        "status": "healthy" if health.healthy else "unhealthy",
        "reason": health.reason,
        "lateness_s": None if health.lateness_s is None else round(health.lateness_s, 3),
        "last_fired_at": None if health.last_fired_at is None else health.last_fired_at.isoformat(),
        "window_s": window_s(settings),
        "max_lateness_s": settings.canary_max_lateness_s,
        "canary_every_s": settings.canary_every_s,
    }


def router(settings: Settings, per_loop: PerLoop, engine: Engine | None, clock: Clock) -> APIRouter:
    """The three health endpoints; none needs a token (probes and watchdogs call them)."""
    health = APIRouter(tags=["health"])

    @health.get("/healthz", summary="Alive: the process serves requests")
    async def healthz() -> dict[str, str]:
        """200 while the process serves requests (a liveness probe)."""
        return {"status": "alive"}

    @health.get(
        "/readyz",
        summary="Ready: Redis, the database and its migrations",
        responses={503: {"description": "Redis or the database is down, or not migrated."}},
    )
    async def readyz() -> JSONResponse:
        """Redis and the database answer, and the schema is at the migrations' head."""
        checks: dict[str, str] = {}
        try:
            await per_loop.redis().ping()
            checks["redis"] = OK
        except (RedisError, OSError) as exc:
            checks["redis"] = _error(exc)
        if engine is not None:
            checks.update(await run_in_threadpool(database_checks, engine))
        ready = all(v == OK for v in checks.values())
        failed = sorted(k for k, v in checks.items() if v != OK)
        body = {"status": "ready" if ready else "not ready", "failed": failed, **checks}
        return JSONResponse(body, status_code=200 if ready else 503)

    @health.get(
        "/health/engine",
        summary="Escalations run: a canary deadline fired recently, on time",
        responses={503: {"description": "No canary fired recently or on time, or no Redis."}},
    )
    async def engine_health() -> JSONResponse:
        """200 when the last canary fired within the window and on time; 503 says why not."""
        now = clock.now()
        try:
            fields = await per_loop.redis().hgetall(CANARY)
        except (RedisError, OSError) as exc:
            verdict = EngineHealth(False, f"redis unreachable ({type(exc).__name__})", None, None)
        else:
            verdict = judge(canary.parse(fields), settings, now)
        return JSONResponse(
            engine_body(verdict, settings), status_code=200 if verdict.healthy else 503
        )

    return health
