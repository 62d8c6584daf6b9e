"""What a delivery attempt gave, as the lease, the send and the record pass it along."""

from __future__ import annotations

from dataclasses import dataclass

from schemas.messages import Notification
from worker.store.models import OutboxMessage


@dataclass(frozen=True, slots=True)
class Delivery:
    """The outcome of one attempt: sent, skipped, cancelled, dead, or retry (or, held for a
    digest window, try again) in `retry_in` seconds."""

    state: str
    retry_in: float | None = None
    # what was attempted, for the metrics: the row's channel and kind, and for a message sent,
    # the seconds from its creation to its sending (None for outcomes decided without a row)
    channel: str | None = None
    kind: str | None = None
    latency_s: float | None = None

    @classmethod
    def of(
        cls,
        row: OutboxMessage,
        state: str,
        retry_in: float | None = None,
        latency_s: float | None = None,
    ) -> Delivery:
        """An outcome of an attempt at this row."""
        return cls(state, retry_in, row.channel, row.kind, latency_s)


@dataclass(frozen=True, slots=True)
class Attempt:
    """What sending once gave: no error, or the error and how to treat it."""

    error: str | None = None
    permanent: bool = False
    retry_after: float | None = None


Sent = tuple[OutboxMessage, Notification, Attempt]  # a leased row, what was sent, what it gave
