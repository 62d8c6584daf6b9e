"""The outbox table's queries for one transaction: writing rows, finding moot ones, leasing,
the digest windows, recording sends in bulk, the sweep's look and the retry of dead ones."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, func, insert, not_, or_, select, update
from sqlalchemy.orm import Session

from worker.domain.states import WRITEBACK, OutboxState
from worker.store.models import Issue, OutboxMessage, TimelineEntry
from worker.store.repository import unindexed
from worker.store.rows import OutboxRow

Held = tuple[OutboxMessage, str, list[Any]]  # an outbox row, its issue's lifecycle and clocks


def _with_issue() -> Any:
    return select(OutboxMessage, Issue.lifecycle, Issue.clocks).join(
        Issue, Issue.id == OutboxMessage.issue_id
    )


class SqlOutbox:
    """`added`: where new rows wait for the store's next flush (`worker.store.sql.Pending`)."""

    def __init__(self, session: Session, added: list[OutboxRow] | None = None) -> None:
        self.session = session
        self.added = [] if added is None else added

    def add(self, row: OutboxRow) -> None:
        self.added.append(row)

    def window_end(self, channel: str, now: datetime) -> datetime | None:
        with self.session.no_autoflush:
            return self.session.scalar(
                select(func.min(OutboxMessage.next_attempt_at)).where(
                    OutboxMessage.channel == channel,
                    OutboxMessage.state == OutboxState.PENDING,
                    OutboxMessage.attempts == 0,
                    OutboxMessage.next_attempt_at > now,
                )
            )

    def moot_candidates(
        self,
        issue_ids: Collection[int],
        kinds: Collection[str],
        targets: Collection[str] | None,
        written: Collection[str],
    ) -> list[tuple[str, dict[str, Any]]]:
        about = [] if targets is None else [OutboxMessage.target.in_(sorted(targets))]
        with self.session.no_autoflush:
            rows = self.session.execute(
                select(OutboxMessage.id, OutboxMessage.payload).where(
                    OutboxMessage.issue_id.in_(list(issue_ids)),
                    unindexed(OutboxMessage.state) == OutboxState.PENDING,
                    OutboxMessage.kind.in_(list(kinds)),
                    *about,
                    OutboxMessage.channel.not_like(f"{WRITEBACK}%"),
                    OutboxMessage.id.not_in(list(written)),
                )
            ).all()
        return [(message_id, payload) for message_id, payload in rows]

    def cancel(self, message_ids: Collection[str], note: str) -> int:
        with self.session.no_autoflush:
            result = self.session.execute(
                update(OutboxMessage)
                .where(
                    OutboxMessage.id.in_(list(message_ids)),
                    OutboxMessage.state == OutboxState.PENDING,
                )
                .values(state=OutboxState.CANCELLED, last_error=note)
                .execution_options(synchronize_session=False)
            )
        return int(result.rowcount)  # type: ignore[attr-defined]

    def lock_issues(self, message_ids: Collection[str]) -> None:
        if not message_ids:
            return
        self.session.execute(
            select(Issue.id)
            .where(
                Issue.id.in_(
                    select(OutboxMessage.issue_id).where(OutboxMessage.id.in_(list(message_ids)))
                )
            )
            .order_by(Issue.id)
            .with_for_update(read=True, key_share=True)
        ).all()

    def lease(
        self, message_ids: Sequence[str], now: datetime, until: datetime, heads: bool
    ) -> list[Held]:
        held = and_(
            OutboxMessage.attempts == 0, OutboxMessage.next_attempt_at > OutboxMessage.created_at
        )
        # RETURNING: exactly the rows this statement leased (another task may have taken
        # others with the same lease_until in the same instant).
        mine = self.session.scalars(
            update(OutboxMessage)
            .where(
                OutboxMessage.id.in_(list(message_ids)),
                OutboxMessage.state == OutboxState.PENDING,
                OutboxMessage.next_attempt_at <= now,
                or_(OutboxMessage.lease_until.is_(None), OutboxMessage.lease_until < now),
                *(() if heads else (not_(held),)),
            )
            .values(lease_until=until, attempts=OutboxMessage.attempts + 1)
            .returning(OutboxMessage.id)
            .execution_options(synchronize_session=False)
        ).all()
        if not mine:
            return []
        rows = self.session.execute(
            _with_issue()
            .where(OutboxMessage.id.in_(mine))
            .execution_options(populate_existing=True)
        ).all()
        return [(row, lifecycle, clocks or []) for row, lifecycle, clocks in rows]

    def held(self, message_ids: Sequence[str]) -> dict[str, datetime]:
        return dict(
            self.session.execute(
                select(OutboxMessage.id, OutboxMessage.next_attempt_at).where(
                    OutboxMessage.id.in_(list(message_ids)),
                    OutboxMessage.state == OutboxState.PENDING,
                    OutboxMessage.attempts == 0,
                    OutboxMessage.next_attempt_at > OutboxMessage.created_at,
                )
            ).all()
        )

    def window(self, leader: OutboxMessage) -> list[Held]:
        rows = self.session.execute(
            _with_issue()
            .where(
                OutboxMessage.channel == leader.channel,
                OutboxMessage.state == OutboxState.PENDING,
                OutboxMessage.attempts == 0,
                OutboxMessage.next_attempt_at == leader.next_attempt_at,
                OutboxMessage.id != leader.id,
                OutboxMessage.lease_until.is_(None),
            )
            .order_by(OutboxMessage.created_at, OutboxMessage.id)
            # Only the outbox rows (never the issues: they are not this transaction's to
            # lock), skipping those someone holds: waiting here could close a lock cycle.
            .with_for_update(of=OutboxMessage, skip_locked=True)
        ).all()
        return [(row, lifecycle, clocks or []) for row, lifecycle, clocks in rows]

    def carried(self, message_ids: Collection[str]) -> list[Held]:
        rows = self.session.execute(
            _with_issue().where(OutboxMessage.id.in_(list(message_ids)))
        ).all()
        return [(row, lifecycle, clocks or []) for row, lifecycle, clocks in rows]

    def rows(self, message_ids: Collection[str]) -> dict[str, OutboxMessage]:
        query = (
            select(OutboxMessage)
            .where(OutboxMessage.id.in_(list(message_ids)))
            .execution_options(populate_existing=True)
        )
        return {row.id: row for row in self.session.scalars(query)}

    def mark_sent(self, sent: Sequence[tuple[OutboxMessage, str]], done: datetime) -> None:
        if not sent:
            return
        self.session.execute(
            update(OutboxMessage)
            .where(OutboxMessage.id.in_([row.id for row, _ in sent]))
            .values(state=OutboxState.SENT, sent_at=done, lease_until=None, last_error=None)
            .execution_options(synchronize_session=False)
        )
        self.session.execute(
            insert(TimelineEntry),
            [
                {
                    "issue_id": row.issue_id,
                    "at": done,
                    "kind": "notified",
                    "message": line,
                    "data": {"message_id": row.id, "attempts": row.attempts},
                }
                for row, line in sent
            ],
        )

    def retry_dead(self, message_ids: Sequence[str] | None, now: datetime) -> list[str]:
        """Make dead messages (these, or all with None) pending again with a fresh count of
        attempts, due now; the ids that were dead."""
        where = [OutboxMessage.state == OutboxState.DEAD]
        if message_ids is not None:
            where.append(OutboxMessage.id.in_(list(message_ids)))
        chosen = list(self.session.scalars(select(OutboxMessage.id).where(*where)))
        if chosen:
            self.lock_issues(chosen)  # the lock order: issues first, then outbox rows
            self.session.execute(
                update(OutboxMessage)
                .where(OutboxMessage.id.in_(chosen), OutboxMessage.state == OutboxState.DEAD)
                .values(
                    state=OutboxState.PENDING, attempts=0, next_attempt_at=now, lease_until=None
                )
                .execution_options(synchronize_session=False)
            )
        return chosen

    def due(self, now: datetime, grace_s: float, limit: int) -> list[str]:
        """Pending messages whose next attempt is overdue by `grace_s` and that nobody holds
        (the outbox sweep's look), oldest first."""
        cutoff = now - timedelta(seconds=grace_s)
        return list(
            self.session.scalars(
                select(OutboxMessage.id)
                .where(
                    OutboxMessage.state == OutboxState.PENDING,
                    OutboxMessage.next_attempt_at <= cutoff,
                    or_(OutboxMessage.lease_until.is_(None), OutboxMessage.lease_until < now),
                )
                .order_by(OutboxMessage.next_attempt_at)
                .limit(limit)
            )
        )
