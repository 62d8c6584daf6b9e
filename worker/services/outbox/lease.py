"""Leasing outbox rows for an attempt: the one lease for one message and for many.

One implementation for one message and for many (`worker.services.deliver` uses both ways):
a message is leased with a conditional UPDATE before it is sent, so the retry task and the
periodic sweep never send it at the same moment; if the sender dies, the lease runs out and
the sweep hands the message out again with the same id.

Lock order, the same for every writer on PostgreSQL (ingest, firing, delivery, the CLI), so no
two transactions ever wait on each other in a cycle:

1. issue rows, in id order (ingest and firing: FOR UPDATE; delivery: FOR KEY SHARE, taken by
   `lock_issues` before anything else, for every issue whose messages the transaction writes
   or whose timeline it extends);
2. deadline rows;
3. outbox rows (the conditional lease UPDATE, or the record of an attempt);
4. timeline inserts (their foreign key takes KEY SHARE on the issue, already held by then).

One exception never waits, so it cannot close a cycle: a digest gathers the other issues'
held messages with FOR UPDATE SKIP LOCKED (a row someone holds is left for its own delivery).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from worker.domain.states import OutboxState
from worker.services.outbox import digest
from worker.services.outbox.outcomes import Delivery
from worker.services.repositories import Store
from worker.store.models import OutboxMessage


@dataclass(frozen=True, slots=True)
class Leased:
    """What a lease took (`rows`, each for one attempt) and cancelled as moot instead."""

    rows: list[OutboxMessage]
    cancelled: list[str]
    moot: dict[str, Delivery] = field(default_factory=dict)  # the cancelled ones' outcomes


def lease(
    store: Store, message_ids: Sequence[str], now: datetime, lease_s: float, heads: bool
) -> Leased:
    """Lease the pending, due, unheld rows among these ids for one attempt each, each with its
    issue's state checked: a row that has become moot (its target met, its issue resolved) is
    cancelled instead.

    A row held for a digest window (never tried, due after it was written) is leased only with
    `heads`, one at a time: its delivery folds the window (`digest.gather`).
    """
    rows = store.outbox
    taken = Leased([], [])
    for row, lifecycle, clocks in rows.lease(
        message_ids, now, now + timedelta(seconds=lease_s), heads
    ):
        # its target met or the issue resolved since it was written: checked again here
        if digest.cancel_if_moot(rows, row, lifecycle, clocks):
            taken.cancelled.append(row.id)
            taken.moot[row.id] = Delivery.of(row, OutboxState.CANCELLED)
        else:
            taken.rows.append(row)
    return taken


def waiting(store: Store, message_ids: Sequence[str], now: datetime) -> dict[str, Delivery | None]:
    """What became of ids a lease did not take, in one look: held for a digest window (come
    back when it closes), skipped (another task holds it, or it is done), or None: at the head
    of a digest window that has closed, to be leased with `heads`."""
    windows = store.outbox.held(message_ids) if message_ids else {}
    outcomes: dict[str, Delivery | None] = {}
    for message_id in message_ids:
        due = windows.get(message_id)
        if due is None:
            outcomes[message_id] = Delivery("skipped")
        elif due > now:
            outcomes[message_id] = Delivery("held", (due - now).total_seconds())
        else:
            outcomes[message_id] = None
    return outcomes
