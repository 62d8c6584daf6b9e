"""The reconcile: the index made equal to the database's armed deadlines, page by page in order
of due time, writing only the differences."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any

import fakeredis
import pytest
from sqlalchemy import insert, select, update
from sqlalchemy.orm import Session, sessionmaker

from worker.broker.deadline_index import DeadlineIndex, score
from worker.broker.keys import DUE, INFLIGHT
from worker.domain.clock import ManualClock
from worker.services.reconcile import reconcile
from worker.store.models import Deadline, Issue
from worker.store.reconcile_queries import armed_page

from .factories import T0, issue_row

Sessions = sessionmaker[Session]


def secs(n: float) -> timedelta:
    return timedelta(seconds=n)


def add_deadlines(sessions: Sessions, dues: dict[int, datetime], state: str = "armed") -> None:
    """Deadlines of one issue (made on first use), by id: due time."""
    with sessions.begin() as session:
        issue_id = session.scalar(select(Issue.id).limit(1))
        if issue_id is None:
            issue = issue_row()
            session.add(issue)
            session.flush()
            issue_id = issue.id
        session.execute(
            insert(Deadline),
            [
                {
                    "id": i,
                    "issue_id": issue_id,
                    "kind": "escalate",
                    "tier_index": 0,
                    "clock_version": 1,
                    "due_at": due,
                    "state": state,
                }
                for i, due in dues.items()
            ],
        )


def set_state(sessions: Sessions, deadline_id: int, state: str) -> None:
    with sessions.begin() as session:
        session.execute(update(Deadline).where(Deadline.id == deadline_id).values(state=state))


class Spy:
    """The real index, counting what a pass writes to it."""

    def __init__(self, index: DeadlineIndex) -> None:
        self.index = index
        self.armed: list[list[int]] = []
        self.disarmed: list[int] = []

    def mark_intact(self, now: datetime) -> bool:
        return self.index.mark_intact(now)

    def arm(self, deadlines: Iterable[tuple[int, datetime]]) -> int:
        items = list(deadlines)
        self.armed.append([i for i, _ in items])
        return self.index.arm(items)

    def disarm(self, deadline_ids: Sequence[int]) -> None:
        self.disarmed += deadline_ids
        self.index.disarm(deadline_ids)

    def due_between(
        self, low: float | None, high: float | None, offset: int = 0, count: int = -1
    ) -> list[tuple[int, float]]:
        return self.index.due_between(low, high, offset, count)

    def in_flight(self) -> list[int]:
        return self.index.in_flight()


@pytest.fixture
def index(redis: fakeredis.FakeRedis) -> DeadlineIndex:
    return DeadlineIndex(redis)


def indexed(redis: fakeredis.FakeRedis) -> dict[int, float]:
    pairs: list[Any] = list(redis.zrange(DUE, 0, -1, withscores=True))
    return {int(member): float(at) for member, at in pairs}


def test_a_rebuild_indexes_every_armed_deadline_and_nothing_else(
    sessions: Sessions, index: DeadlineIndex, redis: fakeredis.FakeRedis, clock: ManualClock
) -> None:
    dues = {i: T0 + secs(i * 7 % 13) + timedelta(microseconds=i * 37) for i in range(1, 12)}
    add_deadlines(sessions, dues)
    add_deadlines(sessions, {50: T0, 51: T0 + secs(3)}, state="fired")
    report = reconcile(index, sessions, clock, page=3)
    assert (report.armed, report.rearmed, report.dropped) == (11, 11, 0)
    assert indexed(redis) == {i: score(due) for i, due in dues.items()}


def test_a_pass_over_a_healthy_index_writes_nothing(
    sessions: Sessions, index: DeadlineIndex, clock: ManualClock
) -> None:
    """Ties of due time across page boundaries included: nothing re-armed, nothing dropped."""
    add_deadlines(sessions, {i: T0 + secs(i // 5) for i in range(1, 23)})  # 5 at each second
    reconcile(index, sessions, clock, page=3)
    spy = Spy(index)
    report = reconcile(spy, sessions, clock, page=3)
    assert (report.armed, report.rearmed, report.dropped) == (22, 0, 0)
    assert (spy.armed, spy.disarmed) == ([], [])


def test_a_pass_repairs_only_the_differences(
    sessions: Sessions, index: DeadlineIndex, redis: fakeredis.FakeRedis, clock: ManualClock
) -> None:
    """A lost arm, a wrong due time, a lost disarm, an id the database never held."""
    dues = {i: T0 + secs(i) for i in range(1, 10)}
    add_deadlines(sessions, dues)
    reconcile(index, sessions, clock, page=4)
    redis.zrem(DUE, "3")  # its arm was lost
    redis.zadd(DUE, {"5": score(T0 + secs(500))})  # indexed at another time
    set_state(sessions, 7, "cancelled")  # its disarm was lost
    redis.zadd(DUE, {"99": score(T0 + secs(4))})  # not a deadline at all
    spy = Spy(index)
    report = reconcile(spy, sessions, clock, page=4)
    assert (report.rearmed, report.dropped) == (1, 2)
    assert sorted(i for batch in spy.armed for i in batch) == [3, 5]
    assert sorted(spy.disarmed) == [7, 99]
    assert indexed(redis) == {i: score(due) for i, due in dues.items() if i != 7}


def test_a_deadline_in_flight_is_not_re_armed_and_a_fired_one_leaves_the_window(
    sessions: Sessions, index: DeadlineIndex, redis: fakeredis.FakeRedis, clock: ManualClock
) -> None:
    add_deadlines(sessions, {1: T0, 2: T0 + secs(1), 3: T0 + secs(60)})
    reconcile(index, sessions, clock)
    assert index.claim(T0 + secs(1), 60.0, 10) == ([1, 2], [])
    set_state(sessions, 2, "fired")  # committed; its task has not acked yet
    report = reconcile(index, sessions, clock)
    assert report.dropped == 1
    assert redis.zrange(INFLIGHT, 0, -1) == ["1"]  # still claimed, not due again
    assert indexed(redis) == {3: score(T0 + secs(60))}


def test_an_entry_armed_while_the_pass_runs_is_kept(
    sessions: Sessions, index: DeadlineIndex, redis: fakeredis.FakeRedis, clock: ManualClock
) -> None:
    """The index is read after the database page: an entry the page does not hold is dropped
    only if the database, asked again after that, does not hold it as armed either."""
    add_deadlines(sessions, {1: T0, 2: T0 + secs(2)})
    reconcile(index, sessions, clock)

    class Racing(Spy):
        def due_between(self, *args: Any) -> list[tuple[int, float]]:
            if not self.disarmed and 3 not in indexed(redis):  # ingest commits, then indexes
                add_deadlines(sessions, {3: T0 + secs(1)})
                self.index.arm([(3, T0 + secs(1))])
            return super().due_between(*args)

    report = reconcile(Racing(index), sessions, clock)
    assert report.dropped == 0
    assert 3 in indexed(redis)


def test_pages_come_in_order_of_due_time(
    sessions: Sessions, index: DeadlineIndex, clock: ManualClock
) -> None:
    """A rebuild arms the earliest deadlines first: the overdue ones are claimable after the
    first page, whatever their ids."""
    add_deadlines(sessions, {i: T0 + secs(100 - i) for i in range(1, 11)})
    spy = Spy(index)
    reconcile(spy, sessions, clock, page=4)
    assert spy.armed == [[10, 9, 8, 7], [6, 5, 4, 3], [2, 1]]


def test_the_page_scores_are_the_index_scores(sessions: Sessions) -> None:
    """Due times read back as epoch seconds equal to `score()` of the datetime, microseconds
    included, so a healthy entry compares equal."""
    dues = {i: T0 + timedelta(days=i * 400, microseconds=i * 123_457) for i in range(1, 30)}
    add_deadlines(sessions, dues)
    with sessions() as session:
        page, cursor = armed_page(session, None, 100)
    assert page == sorted(((i, score(d)) for i, d in dues.items()), key=lambda p: p[1])
    assert cursor == (dues[29], 29)


def test_a_lost_index_is_reported_and_rebuilt(
    sessions: Sessions, index: DeadlineIndex, redis: fakeredis.FakeRedis, clock: ManualClock
) -> None:
    add_deadlines(sessions, {1: T0, 2: T0 + secs(5)})
    assert index.mark_intact(clock.now()) is False  # never built
    assert index.mark_intact(clock.now()) is True
    redis.flushall()
    report = reconcile(index, sessions, clock)
    assert report.rearmed == 2
    assert index.intact()
