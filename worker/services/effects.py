"""What a committed transaction leaves for Redis and Celery to do afterwards."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime


@dataclass
class Effects:
    """Post-commit work: index these deadlines, drop those, dispatch these outbox messages."""

    arm: list[tuple[int, datetime]] = field(default_factory=list)
    disarm: list[int] = field(default_factory=list)
    outbox: list[str] = field(default_factory=list)

    def merge(self, other: Effects) -> None:
        self.arm += other.arm
        self.disarm += other.disarm
        self.outbox += other.outbox
