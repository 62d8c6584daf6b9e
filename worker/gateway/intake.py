"""From bytes to stream: size limit, JSON, the adapter, then one atomic XADD-once per delivery."""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Callable
from typing import Any

import structlog
from pydantic import ValidationError
from redis.asyncio import Redis as AsyncRedis
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from schemas.events import EventWindow
from worker.broker.keys import DELIVERY_PREFIX
from worker.broker.producer import AsyncProducer
from worker.errors import Rejected
from worker.gateway.problems import Receipt, invalid, problem_response, pydantic_errors
from worker.gateway.sources.common import Adapter, Incoming, Mapped

log = structlog.get_logger("escalator.gateway")
RedisFactory = Callable[[], AsyncRedis]


def delivery_key(source: str, delivery_id: str) -> str:
    """The Redis key remembering one delivery (hashed: callers choose the id)."""
    digest = hashlib.sha256(delivery_id.encode()).hexdigest()[:40]
    return f"{DELIVERY_PREFIX}{source}:{digest}"


def parse_json(body: bytes) -> Any:
    """The body as JSON, or a 400."""
    try:
        return json.loads(body)
    except (ValueError, RecursionError) as exc:
        reason = "not UTF-8" if isinstance(exc, UnicodeDecodeError) else "not valid JSON"
        raise Rejected(400, "Malformed body", f"the body is {reason}") from None


class PerLoop:
    """An async Redis client and producer per event loop (test clients run loops of their own)."""

    def __init__(self, factory: RedisFactory) -> None:
        self.factory = factory
        self._loop: asyncio.AbstractEventLoop | None = None
        self._redis: AsyncRedis | None = None
        self._producer: AsyncProducer | None = None

    def redis(self) -> AsyncRedis:
        loop = asyncio.get_running_loop()
        if self._redis is None or self._loop is not loop:
            self._redis = self.factory()
            self._producer = AsyncProducer(self._redis)
            self._loop = loop
        return self._redis

    def producer(self) -> AsyncProducer:
        self.redis()
        assert self._producer is not None
        return self._producer


# What a vendor's values can raise while an adapter maps them (a URL urllib cannot split, a
# number where text belongs, a time out of range): the sender's fault, answered 422, never 500.
UNMAPPABLE = (ValueError, TypeError, LookupError, ArithmeticError, AttributeError, RecursionError)


def interpret(
    adapter: Adapter, request: Incoming, payload: Any, window: EventWindow | None = None
) -> Mapped:
    """The delivery's events, each inside the time `window` around its arrival; a 422 naming the
    field for anything in the payload that breaks the mapping, whatever the adapter."""
    # Our own events name their fields as sent; a vendor's events name them as `event.<field>`.
    prefix = "" if adapter.name == "events" else "event."
    try:
        mapped = adapter.interpret(request, payload)
        if window is not None:
            for event in mapped.events:
                window.check(event, request.now)
    except ValidationError as exc:
        raise invalid(pydantic_errors(exc.errors(), prefix), "Invalid event") from None
    except UNMAPPABLE as exc:
        log.warning(
            "gateway.unmappable", source=adapter.name, error=type(exc).__name__, exc_info=True
        )
        reason = f"a value cannot be mapped to an event ({type(exc).__name__}: {exc})"[:500]
        raise invalid([{"field": "body", "message": reason}], "Invalid payload") from None
    return mapped


async def accept(
    adapter: Adapter,
    request: Incoming,
    per_loop: PerLoop,
    ttl_s: int,
    insecure: bool = False,
    window: EventWindow | None = None,
) -> tuple[int, Receipt]:
    """Authenticate (unless insecure), interpret, and put the delivery's events on the stream."""
    if not insecure:
        adapter.authenticate(request)
    mapped = interpret(adapter, request, parse_json(request.body), window)
    if not mapped.events:
        log.info("gateway.ignored", source=adapter.name, reason=mapped.note)
        return 200, Receipt(status="ignored", event_ids=[], stream_ids=[], detail=mapped.note)
    key = delivery_key(adapter.name, mapped.delivery_id)
    new, event_ids, stream_ids = await per_loop.producer().send_once(key, ttl_s, mapped.events)
    if not new:
        log.info("gateway.duplicate", source=adapter.name, event_ids=event_ids)
        detail = "this delivery was accepted before; nothing was added"
        return 200, Receipt(
            status="duplicate", event_ids=event_ids, stream_ids=stream_ids, detail=detail
        )
    log.debug("gateway.accepted", source=adapter.name, event_ids=event_ids)
    return 202, Receipt(status="accepted", event_ids=event_ids, stream_ids=stream_ids)


class BodyLimit:
    """ASGI middleware: buffer request bodies up to `limit` bytes; larger ones get a 413.

    Checks Content-Length up front and counts what is actually streamed, so a chunked or lying
    request cannot push more than the limit into memory.
    """

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS"):
            await self.app(scope, receive, send)
            return
        too_big = Rejected(413, "Payload too large", f"the body exceeds {self.limit} bytes")
        for name, value in scope["headers"]:
            if name == b"content-length":
                if not value.isdigit():
                    await self._refuse(scope, receive, send, Rejected(400, "Bad Content-Length"))
                    return
                if int(value) > self.limit:
                    await self._refuse(scope, receive, send, too_big)
                    return
        chunks: list[bytes] = []
        size = 0
        more = True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.limit:
                await self._refuse(scope, receive, send, too_big)
                return
            chunks.append(chunk)
            more = message.get("more_body", False)
        body = b"".join(chunks)
        sent = False

        async def replay() -> Message:
            nonlocal sent
            if sent:
                return await receive()
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)

    @staticmethod
    async def _refuse(scope: Scope, receive: Receive, send: Send, exc: Rejected) -> None:
        log.info("gateway.rejected", path=scope.get("path"), status=exc.status, reason=exc.title)
        await problem_response(exc)(scope, receive, send)
