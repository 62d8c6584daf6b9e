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
    """The deadline index the schedulers claim from: a mirror of the armed deadlines."""

    def mark_intact(self, now: datetime) -> None: ...

    def arm(self, deadlines: Iterable[tuple[int, datetime]]) -> int: ...

    def disarm(self, deadline_ids: Sequence[int]) -> None: ...

    def members(self, batch: int = ...) -> Iterable[list[int]]: ...
