"""The intake endpoints without FastAPI's per-request machinery.

`POST /v1/events` and `POST /v1/webhooks/{source}` take the raw body and no parameters, so
routing, dependency solving and response validation add nothing to them but CPU. This
middleware calls the very same endpoint functions directly, and answers their exceptions with
the very same handlers; every other request goes on to the FastAPI app, where those routes stay
registered (they document the endpoints in OpenAPI and behave identically when reached).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

Endpoint = Callable[[Request], Awaitable[Response]]
OnError = Callable[[Request, Exception], Awaitable[Response]]


class FastPath:
    def __init__(self, app: ASGIApp, endpoints: Mapping[str, Endpoint], on_error: OnError) -> None:
        self.app = app
        self.endpoints = endpoints
        self.on_error = on_error

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        endpoint = None
        if scope["type"] == "http" and scope["method"] == "POST":
            endpoint = self.endpoints.get(scope["path"])
        if endpoint is None:
            await self.app(scope, receive, send)
            return
        request = Request(scope, receive)
        try:
            response = await endpoint(request)
        except Exception as exc:
            response = await self.on_error(request, exc)
        await response(scope, receive, send)
