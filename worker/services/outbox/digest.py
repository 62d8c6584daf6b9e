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

from sqlalchemy import select
from sqlalchemy.orm import Session

from schemas.messages import Notification
from worker.domain.moot import moot, moot_reason
from worker.store.models import Issue, OutboxMessage


def row_moot(session: Session, row: OutboxMessage, lifecycle: str, clocks: list[Any]) -> bool:
    """`moot` for a stored row. A digest (a retry: its payload `covers` several messages) is
    moot only when every message it carries is: one live message in it is reason to send it.
    Then the carried rows are cancelled with it."""
    covers = row.payload.get("covers")
    if not covers:
        return moot(row.kind, row.target, lifecycle, clocks)
    carried = session.execute(
        select(OutboxMessage, Issue.lifecycle, Issue.clocks)
        .join(Issue, Issue.id == OutboxMessage.issue_id)
        .where(OutboxMessage.id.in_(covers))
    ).all()
    if not all(moot(r.kind, r.target, life, c or []) for r, life, c in carried):
        return False
    for other, _, _ in carried:
        if other.id != row.id and other.state == "merged":
            other.state, other.last_error = "cancelled", f"moot before digest {row.id} was sent"
    return True


def cancel_if_moot(
    session: Session, row: OutboxMessage, lifecycle: str, clocks: list[Any] | None
) -> bool:
    """At send time: cancel the leased row if it has become moot (never a write-back)."""
    if row.channel.startswith("writeback:") or not row_moot(session, row, lifecycle, clocks or []):
        return False
    row.state, row.lease_until = "cancelled", None
    row.last_error = f"{moot_reason(row.target, lifecycle)} before it was sent"
    return True


def held(row: OutboxMessage) -> bool:
    """Whether the row was held for a digest window (and is not a digest already)."""
    return row.next_attempt_at > row.created_at and not row.payload.get("covers")


def gather(session: Session, leader: OutboxMessage, now: datetime) -> Notification | None:
    """Merge the rest of the leader's window into it; the digest, or None if it is alone.

    A row another transaction holds right now is left out: it stays pending and due, and is
    delivered on its own (the sweep hands it out), so the lock order is kept
    (`worker.services.deliver`)."""
    rows = session.execute(
        select(OutboxMessage, Issue.lifecycle, Issue.clocks)
        .join(Issue, Issue.id == OutboxMessage.issue_id)
        .where(
            OutboxMessage.channel == leader.channel,
            OutboxMessage.state == "pending",
            OutboxMessage.attempts == 0,
            OutboxMessage.next_attempt_at == leader.next_attempt_at,
            OutboxMessage.id != leader.id,
            OutboxMessage.lease_until.is_(None),
        )
        .order_by(OutboxMessage.created_at, OutboxMessage.id)
        # Only the outbox rows (never the issues: they are not this transaction's to lock),
        # skipping those someone holds: waiting here could close a lock cycle with an ingest.
        .with_for_update(of=OutboxMessage, skip_locked=True)
    ).all()
    items = [Notification.model_validate(leader.payload)]
    for row, lifecycle, clocks in rows:
        if moot(row.kind, row.target, lifecycle, clocks or []):
            row.state = "cancelled"
            row.last_error = f"{moot_reason(row.target, lifecycle)} before the digest"
            continue
        row.state, row.last_error = "merged", f"in digest {leader.id}"
        items.append(Notification.model_validate(row.payload))
    if len(items) == 1:
        return None
    first = items[0]
    text = f"{len(items)} notifications:\n" + "\n".join(f"- {m.text}" for m in items)
    return first.model_copy(
        update={
            "text": text,
            "covers": tuple(m.id for m in items),
            "items": tuple(items),
            "occurred_at": max(m.occurred_at for m in items),
        }
    )


def merged_rows(session: Session, digest: Notification) -> list[OutboxMessage]:
    """The rows a digest carries besides its own."""
    others = list(digest.covers[1:])
    if not others:
        return []
    return list(session.scalars(select(OutboxMessage).where(OutboxMessage.id.in_(others))))
