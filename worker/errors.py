"""One exception tree. Transient errors are retried; permanent ones are dead-lettered."""

from __future__ import annotations


class EscalatorError(Exception):
    """Root of every error Escalator raises on purpose."""


class TransientError(EscalatorError):
    """Might work if tried again later (a network blip, a locked database)."""


class PermanentError(EscalatorError):
    """Will fail the same way every time: dead-letter it with this message."""


class InvalidEvent(PermanentError):
    """A stream entry that is not a valid `IssueEvent`."""


class UnknownIssue(PermanentError):
    """An event about an issue that was never opened here."""


class PolicyError(PermanentError):
    """The policy file cannot be read or does not validate."""


class DeliveryError(TransientError):
    """A channel did not take a message; it will be retried with backoff."""


class RateLimited(DeliveryError):
    """The receiver answered 429 (or 503) with Retry-After: wait at least `retry_after` s."""

    def __init__(self, message: str, retry_after: float | None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class Rejected(PermanentError):
    """An HTTP request the gateway refuses: answered as `application/problem+json`."""

    def __init__(
        self,
        status: int,
        title: str,
        detail: str | None = None,
        errors: list[dict[str, str]] | None = None,
    ) -> None:
        super().__init__(f"{status} {title}: {detail or ''}")
        self.status = status
        self.title = title
        self.detail = detail
        self.errors = errors
