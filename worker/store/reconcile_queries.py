"""The reconcile's reads: armed deadlines a page at a time, in order of due time.

A page is a range scan of the index on `(state, due_at)` (`ix_deadlines_state_due_at`), which
leaves the rows in `(due_at, id)` order (on SQLite the rowid ends every index entry), so it
needs no sort, and each page starts where the last one ended: a pass over n armed deadlines
costs O(n) whatever the page size. (Paging by id with that index sorted every page in a
temporary B-tree: O(n^2).) Due order also means a rebuilt index gets its earliest deadlines
first. The due times come back as epoch seconds, the index's scores (on SQLite made by SQLite:
a million of them are read every pass).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import BigInteger, cast, func, or_, select
from sqlalchemy.orm import Session

from worker.domain.states import DeadlineState
from worker.store.models import Deadline

Cursor = tuple[datetime, int]  # the due time and the id of the previous page's last row
Page = list[tuple[int, float]]  # (deadline id, due time in epoch seconds)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def armed_page(session: Session, after: Cursor | None, limit: int) -> tuple[Page, Cursor | None]:
    """Up to `limit` armed deadlines ordered by (due_at, id), after `after`; and the cursor
    after the last of them (None when there were none)."""
    sqlite = session.get_bind().dialect.name == "sqlite"
    # SQLite stores naive UTC as text ('2026-01-01 09:00:00.250000'): SQLite itself counts
    # the microseconds since the epoch, exactly, so Python makes no datetime per row
    due: Any = (
        cast(func.strftime("%s", Deadline.due_at), BigInteger) * 1_000_000
        + cast(func.substr(Deadline.due_at, 21, 6), BigInteger)
        if sqlite
        else Deadline.due_at
    )
    query = select(Deadline.id, due).where(Deadline.state == DeadlineState.ARMED)
    if after is not None:
        when, last = after
        # `due_at >= when` bounds the index range; the OR only drops the ties already read.
        query = query.where(
            Deadline.due_at >= when, or_(Deadline.due_at > when, Deadline.id > last)
        )
    query = query.order_by(Deadline.due_at, Deadline.id).limit(limit)
    rows = session.connection().execute(query).all()
    if not rows:
        return [], None
    if sqlite:
        # `micros / 10**6` is the very float `datetime.timestamp()` gives (both divide the
        # exact count of microseconds once): scores compare equal with what the effects armed
        page = [(i, micros / 1_000_000) for i, micros in rows]
        last_due = _EPOCH + timedelta(microseconds=rows[-1][1])
    else:
        page = [(i, when.timestamp()) for i, when in rows]
        last_due = rows[-1][1]
    return page, (last_due, rows[-1][0])


def not_armed(session: Session, deadline_ids: Sequence[int]) -> list[int]:
    """Which of these ids the database does not hold as armed (fired, cancelled or gone)."""
    armed = set(
        session.scalars(
            select(Deadline.id).where(
                Deadline.id.in_(deadline_ids), Deadline.state == DeadlineState.ARMED
            )
        )
    )
    return [i for i in deadline_ids if i not in armed]
