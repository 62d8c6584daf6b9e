"""What the core needs from the outside world, as protocols that the adapters fulfil."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Protocol

from schemas.messages import Notification


class Channel(Protocol):
    """Sends one message (a notification, or a write-back to the ticket system); raises
    DeliveryError to be retried, PermanentError to give up. Idempotent receivers dedupe on
    `message.id`."""

    def send(self, message: Notification) -> None: ...


class Index(Protocol):
    """The deadline index the schedulers claim from: a mirror of the armed deadlines. Its
    scores are due times in epoch seconds (`datetime.timestamp()`)."""

    def mark_intact(self, now: datetime) -> bool:
        """Say a reconcile starts; False if the index had been lost since the last one."""
        ...

    def arm(self, deadlines: Iterable[tuple[int, datetime]]) -> int: ...

    def disarm(self, deadline_ids: Sequence[int]) -> None: ...

    def due_between(
        self, low: float | None, high: float | None, offset: int = ..., count: int = ...
    ) -> list[tuple[int, float]]: ...

    def in_flight(self) -> list[int]: ...
