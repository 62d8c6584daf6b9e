"""HTTP answers of receivers (webhooks, ticket APIs) as Escalator's errors; Retry-After."""

from __future__ import annotations

from datetime import datetime
from email.utils import parsedate_to_datetime

import httpx

from worker.errors import DeliveryError, PermanentError, RateLimited

MAX_RETRY_AFTER_S = 3600.0


def parse_retry_after(value: str | None, now: datetime) -> float | None:
    """Seconds to wait from a Retry-After header: delta-seconds or an HTTP date; None if bad."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return min(float(value), MAX_RETRY_AFTER_S)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        return None
    return min(max((when - now).total_seconds(), 0.0), MAX_RETRY_AFTER_S)


def check(name: str, response: httpx.Response, now: datetime) -> None:
    """Return on 2xx; raise RateLimited, DeliveryError (retried) or PermanentError (refused)."""
    status = response.status_code
    if 200 <= status < 300:
        return
    if status in (429, 503) and "retry-after" in response.headers:
        wait = parse_retry_after(response.headers.get("retry-after"), now)
        raise RateLimited(f"{name}: HTTP {status}, retry after {wait}s", wait)
    if status in (408, 425, 429) or status >= 500:
        raise DeliveryError(f"{name}: HTTP {status}")
    raise PermanentError(f"{name}: HTTP {status} (the receiver refused the message)")


def post_error(name: str, exc: httpx.HTTPError) -> DeliveryError:
    """A transport failure as a retried error (never with the URL's query, which may hold keys)."""
    return DeliveryError(f"{name}: {type(exc).__name__}")
