"""A Poster over an httpx.Client, so that unit tests can answer webhooks with MockTransport."""

from __future__ import annotations

import httpx

from worker.notify.http import Reply, TransportError


class HttpxPoster:
    """Sends through `client` (a MockTransport in unit tests); production uses PooledPoster."""

    def __init__(self, client: httpx.Client) -> None:
        self.client = client

    def post(self, url: str, body: bytes, headers: dict[str, str], timeout: float) -> Reply:
        try:
            response = self.client.post(url, content=body, headers=headers, timeout=timeout)
        except httpx.HTTPError as exc:
            raise TransportError(type(exc).__name__) from None
        return Reply(response.status_code, response.headers)

    def close(self) -> None:
        self.client.close()
