"""What every write-back adapter shares: the comment text, people's ids, one HTTP call."""

from __future__ import annotations

from typing import Any

import httpx

from config.settings import Settings
from schemas.messages import Notification
from schemas.policy import PolicyFile
from worker.domain import Clock, wording
from worker.errors import PermanentError
from worker.notify.http import check, post_error


def comment_text(message: Notification) -> str:
    """The note left on the ticket (its words from `wording.comment`); it names the message id,
    so a repeat is recognisable."""
    text = wording.comment(
        message.issue.severity, message.kind, message.tier, message.assignee, message.reason
    )
    return f"{text} [{message.id}]"


class HttpAdapter:
    """Base of the adapters: a name, an HTTP client with auth, and the policy's people."""

    name = "writeback"

    def __init__(
        self, policies: PolicyFile, clock: Clock, http: httpx.Client, timeout: float
    ) -> None:
        self.policies = policies
        self.clock = clock
        self.http = http
        self.timeout = timeout

    def configure(self, settings: Settings) -> HttpAdapter:
        """Take this adapter's URLs and credentials from settings."""
        raise NotImplementedError

    def send(self, message: Notification) -> None:
        """Write one reassignment back."""
        raise NotImplementedError

    def person(self, name: str | None, system: str) -> Any:
        """The person's id in `system` (from `people:`), else the name itself."""
        if name is None:
            return None
        person = self.policies.people.get(name)
        value = getattr(person, system, None) if person else None
        return value if value is not None else name

    def call(
        self, method: str, url: str, headers: dict[str, str], body: Any, message_id: str
    ) -> httpx.Response:
        """One request; raises DeliveryError, RateLimited or PermanentError unless 2xx.

        Every call names its message in `escalator-message-id`, for proxies and audit logs.
        """
        headers = {**headers, "escalator-message-id": message_id}
        try:
            response = self.http.request(
                method, url, json=body, headers=headers, timeout=self.timeout
            )
        except httpx.HTTPError as exc:
            raise post_error(self.name, exc) from None
        check(
            f"{self.name} {method} {httpx.URL(url).path}",
            response.status_code,
            response.headers,
            self.clock.now(),
        )
        return response


def need(value: Any, what: str) -> Any:
    """A setting the adapter cannot work without."""
    if not value:
        raise PermanentError(f"write-back needs {what}")
    return value
