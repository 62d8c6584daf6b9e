"""The HTTP gateway: `POST /v1/events` puts a validated event on the stream; `GET /healthz`."""

from __future__ import annotations

import secrets
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Header, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from redis import Redis
from redis.exceptions import RedisError
from sqlalchemy import Engine, text
from starlette.exceptions import HTTPException

from config.settings import Settings
from schemas.events import IssueEvent
from worker.producer import Producer
from worker.store.db import READONLY

PROBLEM = "application/problem+json"


class Accepted(BaseModel):
    """The event is on the stream: it will be applied, exactly once."""

    event_id: str
    stream_id: str


class Problem(BaseModel):
    """RFC 9457 problem details."""

    type: str = "about:blank"
    title: str
    status: int
    detail: str | None = None
    errors: list[dict[str, Any]] | None = None


def problem(status: int, title: str, detail: str | None = None, **extra: Any) -> JSONResponse:
    body = Problem(title=title, status=status, detail=detail, **extra)
    return JSONResponse(body.model_dump(exclude_none=True), status_code=status, media_type=PROBLEM)


def create_app(settings: Settings, redis: Redis, engine: Engine | None = None) -> FastAPI:
    """The gateway app, bound to one Redis (and a database for health checks)."""
    app = FastAPI(title="Escalator", version="0.1.0")
    producer = Producer(redis)
    token = settings.api_token.get_secret_value() if settings.api_token else None

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [
            {"field": ".".join(str(p) for p in err["loc"][1:]) or "body", "message": err["msg"]}
            for err in exc.errors()
        ]
        detail = "; ".join(f"{e['field']}: {e['message']}" for e in errors)
        return problem(422, "Invalid event", detail, errors=errors)

    @app.exception_handler(HTTPException)
    async def _http(_: Request, exc: HTTPException) -> JSONResponse:
        return problem(exc.status_code, str(exc.detail))

    def authorize(authorization: Annotated[str | None, Header()] = None) -> None:
        if token is None:
            return
        scheme, _, given = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not secrets.compare_digest(given.encode(), token.encode()):
            raise HTTPException(401, "Missing or wrong bearer token")

    responses: dict[int | str, dict[str, Any]] = {
        code: {"model": Problem, "content": {PROBLEM: {}}} for code in (401, 422, 503)
    }

    @app.post(
        "/v1/events",
        status_code=202,
        response_model=Accepted,
        responses=responses,
        dependencies=[Depends(authorize)],
    )
    def post_event(event: IssueEvent) -> Accepted | JSONResponse:
        """Accept one event: it is on the Redis stream before this answers."""
        try:
            stream_id = producer.send(event)
        except RedisError:
            return problem(503, "Event store unavailable", "Redis did not take the event; retry")
        return Accepted(event_id=event.event_id, stream_id=stream_id)

    @app.get("/healthz")
    def healthz() -> JSONResponse:
        """Redis and the database answer."""
        checks: dict[str, str] = {}
        try:
            redis.ping()
            checks["redis"] = "ok"
        except RedisError as exc:
            checks["redis"] = f"error: {exc}"
        if engine is not None:
            try:
                with engine.execution_options(**{READONLY: True}).connect() as conn:
                    conn.execute(text("SELECT 1"))
                checks["database"] = "ok"
            except Exception as exc:
                checks["database"] = f"error: {type(exc).__name__}"
        healthy = all(v == "ok" for v in checks.values())
        return JSONResponse(
            {"status": "ok" if healthy else "unhealthy", **checks},
            status_code=200 if healthy else 503,
        )

    return app
