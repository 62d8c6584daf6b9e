"""Redis connections and the Celery broker URL for the same server."""

from __future__ import annotations

from redis import Redis


def connect(url: str) -> Redis:
    """A client that decodes to str, with health checks for long-lived role loops."""
    return Redis.from_url(url, decode_responses=True, health_check_interval=30)


def broker_url(url: str) -> str:
    """kombu spells a unix socket `redis+socket://`; TCP URLs pass through."""
    if url.startswith("unix://"):
        path, _, query = url[len("unix://") :].partition("?")
        return f"redis+socket://{path}" + (f"?{query}" if query else "")
    return url
