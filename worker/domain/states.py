"""The states a deadline and an outbox message go through, and how write-back channels are named."""

from __future__ import annotations

from enum import StrEnum


class DeadlineState(StrEnum):
    """A deadline is `armed` until it fires (`fired`), is cancelled by what met or replaced it
    (`cancelled`), or is found, when it fires, to be for a clock that moved on (`stale`)."""

    ARMED = "armed"
    FIRED = "fired"
    CANCELLED = "cancelled"
    STALE = "stale"


class OutboxState(StrEnum):
    """The life of an outbox row. `pending` until it is sent (`sent`), given up on after its
    last attempt or a permanent error (`dead`, retried only by hand), found moot before it was
    sent (`cancelled`), or carried by another row's digest (`merged`)."""

    PENDING = "pending"
    SENT = "sent"
    DEAD = "dead"
    CANCELLED = "cancelled"
    MERGED = "merged"


# Outcomes after which no delivery task needs the message any more.
FINISHED = frozenset({OutboxState.SENT, OutboxState.CANCELLED, OutboxState.DEAD})

WRITEBACK = "writeback:"  # a write-back row's channel is `writeback:ADAPTER`


def writeback_channel(adapter: str) -> str:
    """The outbox channel of a write-back through `adapter` (jira, github, zendesk, webhook)."""
    return f"{WRITEBACK}{adapter}"


def is_writeback(channel: str) -> bool:
    return channel.startswith(WRITEBACK)


def adapter_of(channel: str) -> str | None:
    """The write-back adapter a channel names, or None for a notification channel."""
    return channel[len(WRITEBACK) :] if is_writeback(channel) else None
