"""Digests: messages held for one channel's window go out as one message carrying their ids.

A row held for a digest has `next_attempt_at` (the window's end) after its `created_at`, and
every row of the same window shares that `next_attempt_at`. The first of them to be leased
becomes the digest: it takes the others (state `merged`, pointing at it), and its payload
becomes a Notification whose `covers` lists every id and whose `items` are the messages. A
retry of the digest sends the same payload with the same id.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from schemas.messages import Notification
from worker.domain import wording
from worker.domain.moot import moot, moot_reason
from worker.domain.states import OutboxState, is_writeback
from worker.services.repositories import Outbox
from worker.store.models import OutboxMessage


def row_moot(rows: Outbox, row: OutboxMessage, lifecycle: str, clocks: list[Any]) -> bool:
    """`moot` for a stored row. A digest (a retry: its payload `covers` several messages) is
    moot only when every message it carries is: one live message in it is reason to send it.
    Then the carried rows are cancelled with it."""
    covers = row.payload.get("covers")
    if not covers:
        return moot(row.kind, row.target, lifecycle, clocks)
    carried = rows.carried(covers)
    if not all(moot(r.kind, r.target, life, c) for r, life, c in carried):
        return False
    for other, _, _ in carried:
        if other.id != row.id and other.state == OutboxState.MERGED:
            other.state = OutboxState.CANCELLED
            other.last_error = wording.moot_with_digest(row.id)
    return True


def cancel_if_moot(rows: Outbox, row: OutboxMessage, lifecycle: str, clocks: list[Any]) -> bool:
    """At send time: cancel the leased row if it has become moot (never a write-back)."""
    if is_writeback(row.channel) or not row_moot(rows, row, lifecycle, clocks):
        return False
    row.state, row.lease_until = OutboxState.CANCELLED, None
    row.last_error = wording.moot_before_sending(moot_reason(row.target, lifecycle))
    return True


def held(row: OutboxMessage) -> bool:
    """Whether the row was held for a digest window (and is not a digest already)."""
    return row.next_attempt_at > row.created_at and not row.payload.get("covers")


def gather(rows: Outbox, leader: OutboxMessage, now: datetime) -> Notification | None:
    """Merge the rest of the leader's window into it; the digest, or None if it is alone.

    A row another transaction holds right now is left out: it stays pending and due, and is
    delivered on its own (the sweep hands it out), so the lock order is kept
    (`worker.services.deliver`)."""
    items = [Notification.model_validate(leader.payload)]
    for row, lifecycle, clocks in rows.window(leader):
        if moot(row.kind, row.target, lifecycle, clocks):
            row.state = OutboxState.CANCELLED
            row.last_error = wording.moot_before_digest(moot_reason(row.target, lifecycle))
            continue
        row.state, row.last_error = OutboxState.MERGED, wording.in_digest(leader.id)
        items.append(Notification.model_validate(row.payload))
    if len(items) == 1:
        return None
    first = items[0]
    text = wording.digest_text([m.text for m in items])
    return first.model_copy(
        update={
            "text": text,
            "covers": tuple(m.id for m in items),
            "items": tuple(items),
            "occurred_at": max(m.occurred_at for m in items),
        }
    )


def merged_rows(rows: Outbox, digest: Notification) -> list[OutboxMessage]:
    """The rows a digest carries besides its own."""
    others = list(digest.covers[1:])
    return list(rows.rows(others).values()) if others else []
