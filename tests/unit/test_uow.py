"""The unit of work: one transaction, its effects run once after the commit, never after a
rollback; deferred units hold them until their block ends (worker/services/uow.py)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from worker.services.uow import Effects, Units
from worker.store.models import Issue
from worker.store.rows import IssueRow

from .factories import T0, issue_fields


class Recorder:
    """An AfterCommit that keeps what it was asked to run, and whether the row was committed
    by then (read from another session)."""

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self.sessions = sessions
        self.runs: list[tuple[Effects, int]] = []

    def __call__(self, effects: Effects) -> None:
        with self.sessions() as session:
            committed = session.scalar(select(func.count()).select_from(Issue)) or 0
        self.runs.append((effects, committed))


def issue(n: int = 1) -> IssueRow:
    """A bare issue row (what the unit commits does not matter here, only that it does)."""
    return IssueRow(**issue_fields(f"OPS-{n}"))


def test_effects_run_once_after_the_commit(sessions: sessionmaker[Session]) -> None:
    """The row is committed before the effects run, and they run once."""
    after = Recorder(sessions)
    with Units(sessions, after)() as uow:
        uow.store.issues.add(issue())
        uow.effects.outbox.append("msg_a")
        uow.effects.arm.append((1, T0))
    [(effects, committed)] = after.runs
    assert committed == 1
    assert effects.outbox == ["msg_a"] and effects.arm == [(1, T0)]


def test_a_rollback_forgets_the_effects(sessions: sessionmaker[Session]) -> None:
    """An error in the block: nothing committed, nothing run, the error goes on."""
    after = Recorder(sessions)
    with pytest.raises(RuntimeError), Units(sessions, after)() as uow:
        uow.store.issues.add(issue())
        uow.effects.outbox.append("msg_a")
        raise RuntimeError("boom")
    assert after.runs == []
    with sessions() as session:
        assert session.scalar(select(func.count()).select_from(Issue)) == 0


def test_a_unit_without_effects_runs_nothing(sessions: sessionmaker[Session]) -> None:
    """A commit that asks nothing of Redis or Celery does not call the after-commit."""
    after = Recorder(sessions)
    with Units(sessions, after)() as uow:
        uow.store.issues.add(issue())
    assert after.runs == []


def test_deferred_units_run_their_effects_together_when_the_block_ends(
    sessions: sessionmaker[Session],
) -> None:
    """Two units committed inside `deferred`: nothing runs until the block ends, then the
    effects of both, once; a unit rolled back inside adds nothing."""
    after = Recorder(sessions)
    units = Units(sessions, after)
    with units.deferred() as held:
        with held() as uow:
            uow.store.issues.add(issue(1))
            uow.effects.finished.append("msg_a")
        with pytest.raises(RuntimeError), held() as uow:
            uow.effects.finished.append("msg_lost")
            raise RuntimeError("boom")
        with held() as uow:
            uow.store.issues.add(issue(2))
            uow.effects.retry.append(("msg_b", 2.0))
        assert after.runs == []
    [(effects, committed)] = after.runs
    assert committed == 2
    assert effects.finished == ["msg_a"] and effects.retry == [("msg_b", 2.0)]


def test_deferred_effects_still_run_when_the_block_fails(sessions: sessionmaker[Session]) -> None:
    """What committed before an error in the block is not lost: its effects run."""
    after = Recorder(sessions)
    with pytest.raises(RuntimeError), Units(sessions, after).deferred() as held:
        with held() as uow:
            uow.store.issues.add(issue())
            uow.effects.disarm.append(7)
        raise RuntimeError("after the commit")
    [(effects, _)] = after.runs
    assert effects.disarm == [7]


def test_effects_are_empty_until_something_is_registered() -> None:
    """`bool(Effects())` is False; any registered effect makes it True."""
    assert not Effects()
    for effects in (
        Effects(arm=[(1, T0 + timedelta(minutes=5))]),
        Effects(disarm=[1]),
        Effects(outbox=["m"]),
        Effects(retry=[("m", 1.0)]),
        Effects(finished=["m"]),
    ):
        assert effects
