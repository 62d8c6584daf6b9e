"""The unit of work: one transaction, and the effects it leaves for Redis and Celery.

A service opens a unit of work, changes rows through its repositories (`uow.store`) and
registers what the change asks of the outside world (deadlines to index or drop, messages to
hand to delivery tasks, a retry to schedule) on `uow.effects`. When the block ends without an
error the unit commits and then, once, runs the effects through the `AfterCommit` that
bootstrap gave it; on an error it rolls back and the effects are forgotten with the rows. This
is the one after-commit seam: no entrypoint runs effects by hand.

The effects are run by an adapter outside the services (`worker.broker.effects.BrokerEffects`),
which never raises: the database already holds the truth, and what a lost effect would have done
is done again by the reconciler and the outbox sweep.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from types import TracebackType

from sqlalchemy.orm import SessionTransaction

from schemas.policy import PolicyFile
from worker.services.outbox import Outbox
from worker.services.repositories import Store
from worker.store.db import SessionFactory
from worker.store.policy_versions import remember
from worker.store.sql import SqlStore


@dataclass
class Effects:
    """Post-commit work: index these deadlines, drop those, hand these outbox messages to a
    delivery task, retry these (id, in seconds), and forget the in-flight marks of these."""

    arm: list[tuple[int, datetime]] = field(default_factory=list)
    disarm: list[int] = field(default_factory=list)
    outbox: list[str] = field(default_factory=list)
    retry: list[tuple[str, float]] = field(default_factory=list)
    finished: list[str] = field(default_factory=list)

    def merge(self, other: Effects) -> None:
        self.arm += other.arm
        self.disarm += other.disarm
        self.outbox += other.outbox
        self.retry += other.retry
        self.finished += other.finished

    def __bool__(self) -> bool:
        return bool(self.arm or self.disarm or self.outbox or self.retry or self.finished)


AfterCommit = Callable[[Effects], None]


def ignore(effects: Effects) -> None:
    """The after-commit of units whose effects are only looked at (tests, dry runs)."""


class UnitOfWork:
    """One transaction over a session; `effects` run once after its commit.

    ```
    with units() as uow:
        issue = uow.store.issues.lock([key])[0]
        issue.assignee = "alice"
        uow.effects.outbox.append(message_id)
    ```
    """

    store: Store  # the repositories of this transaction
    outbox: Outbox  # the outbox rows this transaction writes and cancels
    effects: Effects

    def __init__(self, sessions: SessionFactory, after_commit: AfterCommit) -> None:
        self._sessions = sessions
        self._after_commit = after_commit
        self._transaction: SessionTransaction | None = None

    def __enter__(self) -> UnitOfWork:
        self._session = self._sessions()
        self.store = SqlStore(self._session)
        self.outbox = Outbox(self.store.outbox)
        self.effects = Effects()
        self._transaction = self._session.begin()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        assert self._transaction is not None
        try:
            if kind is None:
                self.store.flush()  # what the repositories hold back is written in bulk
                self._transaction.commit()
            else:
                self._transaction.rollback()
        finally:
            self._session.close()
        if kind is None and self.effects:
            self._after_commit(self.effects)


class Units:
    """Opens units of work over one database; `sessions` and `readers` for plain reads.

    Without an `after_commit` the effects are not run, only returned: each service also returns
    the effects it registered (tests look at them).
    """

    def __init__(
        self,
        sessions: SessionFactory,
        after_commit: AfterCommit = ignore,
        readers: SessionFactory | None = None,
    ) -> None:
        self.sessions = sessions
        self.readers = readers or sessions
        self.after_commit = after_commit

    def __call__(self) -> UnitOfWork:
        return UnitOfWork(self.sessions, self.after_commit)

    @contextmanager
    def reading(self) -> Iterator[Store]:
        """The repositories over a read-only session (no transaction to commit)."""
        with self.readers() as session:
            yield SqlStore(session)

    def remember(self, policies: PolicyFile, now: datetime) -> str:
        """Store the policy file's version (once); its version. New issues name it."""
        return remember(self.sessions, policies, now)

    def running(self, after_commit: AfterCommit) -> Units:
        """Units on the same database whose effects go to `after_commit` instead."""
        return Units(self.sessions, after_commit, self.readers)

    @contextmanager
    def deferred(self) -> Iterator[Units]:
        """Units whose committed effects wait until the block ends, then run together (a
        delivery task's: its in-flight marks are renewed until then, and only then dropped or
        pushed to a retry's countdown). An error in the block does not lose them."""
        held = Effects()
        try:
            yield self.running(held.merge)
        finally:
            if held:
                self.after_commit(held)
