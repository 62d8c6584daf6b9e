"""HTTP for the outbound hot path, and receivers' answers as Escalator's errors; Retry-After.

Signed webhooks go through a `Poster`. Its production form, `PooledPoster`, keeps connections
alive in a urllib3 pool. Per POST it spends about 0.4 ms of CPU where httpx spends 0.65 ms
(bench/notify_bench.py), and the webhook channel is where a burst of escalations queues up.
The write-back adapters, one call per reassignment, keep httpx's richer API.
"""

from __future__ import annotations

import ssl
import threading
from collections.abc import Mapping
from datetime import datetime
from email.utils import parsedate_to_datetime
from typing import NamedTuple, Protocol
from urllib.parse import unquote, urlsplit
from urllib.request import (  # type: ignore[attr-defined]  # not in typeshed
    getproxies,
    proxy_bypass_environment,
)

import certifi
import structlog
import urllib3
from urllib3.util.ssl_ import create_urllib3_context

from worker.errors import DeliveryError, PermanentError, RateLimited
from worker.notify.redact import mask_url

log = structlog.get_logger("escalator.http")

MAX_RETRY_AFTER_S = 3600.0


class Reply(NamedTuple):
    """A receiver's answer: the status and headers (the body is of no interest)."""

    status: int
    headers: Mapping[str, str]


class TransportError(Exception):
    """No answer: the connection was refused or reset, it timed out, TLS failed."""


class Poster(Protocol):
    """POSTs one body; raises TransportError when no answer came."""

    def post(self, url: str, body: bytes, headers: dict[str, str], timeout: float) -> Reply: ...

    def close(self) -> None: ...


def tls_context() -> ssl.SSLContext:
    """How every outbound call verifies certificates: certifi's bundle and the system's store
    (SSL_CERT_FILE and SSL_CERT_DIR name others). Webhooks and write-backs share it."""
    context = create_urllib3_context()  # CERT_REQUIRED, hostnames checked
    context.load_verify_locations(certifi.where())
    context.load_default_certs()
    return context


def _proxies() -> dict[str, str]:
    """Proxies from the environment (HTTP_PROXY, HTTPS_PROXY, ALL_PROXY; NO_PROXY as "no"),
    with `http://` added where the scheme is left out, as httpx and requests read them."""
    proxies = {}
    for scheme, proxy in getproxies().items():
        if scheme != "no" and "://" not in proxy:
            proxy = f"http://{proxy}"
        if scheme != "no" and urlsplit(proxy).scheme not in ("http", "https"):
            log.warning("http.proxy_unsupported", scheme=scheme, proxy=mask_url(proxy))
            continue
        proxies[scheme] = proxy
    return proxies


class PooledPoster:
    """POSTs on kept-alive connections: one urllib3 pool per host, `size` connections each.

    Thread-safe. Redirects are not followed and nothing is retried here (the outbox retries).
    Proxies come from the environment, read once (`_proxies`); a proxy's `user:password@` is
    sent as Proxy-Authorization. Certificates are verified (`tls_context`).
    """

    def __init__(self, size: int, tls: ssl.SSLContext | None = None) -> None:
        self.size = size
        self._tls = tls or tls_context()
        self._direct = urllib3.PoolManager(
            num_pools=32, maxsize=size, ssl_context=self._tls, retries=False
        )
        self._proxies = _proxies()
        self._via: dict[str, urllib3.ProxyManager] = {}
        self._lock = threading.Lock()

    def _manager(self, url: str) -> urllib3.PoolManager:
        parts = urlsplit(url)
        proxy = self._proxies.get(parts.scheme) or self._proxies.get("all")
        host = parts.hostname or ""
        if parts.port:
            host = f"{host}:{parts.port}"
        if not proxy or proxy_bypass_environment(host, self._proxies):
            return self._direct
        with self._lock:
            if proxy not in self._via:
                auth = urllib3.util.parse_url(proxy).auth
                self._via[proxy] = urllib3.ProxyManager(
                    proxy,
                    num_pools=32,
                    maxsize=self.size,
                    ssl_context=self._tls,
                    retries=False,
                    proxy_headers=(
                        urllib3.make_headers(proxy_basic_auth=unquote(auth)) if auth else None
                    ),
                )
            return self._via[proxy]

    def post(self, url: str, body: bytes, headers: dict[str, str], timeout: float) -> Reply:
        try:
            response = self._manager(url).request(
                "POST",
                url,
                body=body,
                headers=headers,
                timeout=urllib3.Timeout(total=timeout),
                retries=False,
                redirect=False,
                preload_content=False,
            )
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise TransportError(type(exc).__name__) from None
        try:
            response.drain_conn()  # the body is read and dropped (a broken one too): the
        finally:  # answer is its status; the connection goes back to the pool
            response.release_conn()
        return Reply(response.status, response.headers)

    def close(self) -> None:
        self._direct.clear()
        with self._lock:
            for manager in self._via.values():
                manager.clear()


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


def check(name: str, status: int, headers: Mapping[str, str], now: datetime) -> None:
    """Return on 2xx; raise RateLimited, DeliveryError (retried) or PermanentError (refused)."""
    if 200 <= status < 300:
        return
    if status in (429, 503) and "retry-after" in headers:
        wait = parse_retry_after(headers.get("retry-after"), now)
        raise RateLimited(f"{name}: HTTP {status}, retry after {wait}s", wait)
    if status in (408, 425, 429) or status >= 500:
        raise DeliveryError(f"{name}: HTTP {status}")
    raise PermanentError(f"{name}: HTTP {status} (the receiver refused the message)")


def post_error(name: str, exc: Exception) -> DeliveryError:
    """A transport failure as a retried error (never with the URL's query, which may hold keys)."""
    kind = str(exc) if isinstance(exc, TransportError) else type(exc).__name__
    return DeliveryError(f"{name}: {kind}")
