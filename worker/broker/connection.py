"""Redis connections and the Celery broker URL for the same server."""

from __future__ import annotations

from typing import Any

from redis import Redis

SOCKET_TIMEOUT_S = 30.0  # above the longest blocking read (ESCALATOR_INGEST_BLOCK_MS, <= 20 s)


def connect(url: str) -> Redis:
    """A client that decodes to str, with health checks for long-lived role loops, and
    timeouts and TCP keepalive, so a Redis that vanished without closing its connections (a
    dead host, a partition) fails a role's call, which then retries, instead of hanging it."""
    tcp: dict[str, Any] = {}
    if not url.startswith("unix://"):  # a unix socket cannot be left half-open by a dead host
        tcp = {"socket_connect_timeout": 5.0, "socket_keepalive": True}
    return Redis.from_url(
        url, decode_responses=True, health_check_interval=30, socket_timeout=SOCKET_TIMEOUT_S, **tcp
    )


def broker_url(url: str) -> str:
    """kombu spells a unix socket `redis+socket://`; TCP URLs pass through."""
    if url.startswith("unix://"):
        path, _, query = url[len("unix://") :].partition("?")
        return f"redis+socket://{path}" + (f"?{query}" if query else "")
    return url
