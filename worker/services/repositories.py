"""What the services read and write, as repositories on the unit of work (`uow.store`).

`worker.store.sql.SqlStore` implements them over one SQLAlchemy session (the transaction of
the unit of work); `tests/support/memory_store.py` implements them in memory, so that ingesting
a batch, firing a deadline and delivering a message are unit-tested without a database. Rows
are the store's entities (`worker.store.models`), built and changed in memory by the services;
`flush` gives new rows their ids, and a change to a row's attributes is written at the commit.

Locks follow the order every writer takes (`docs/ARCHITECTURE.md`, "Lock order"): issues in id
order first, then deadlines, then outbox rows.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from contextlib import AbstractContextManager
from datetime import datetime
from typing import Any, Protocol

from schemas.policy import PolicyFile
from worker.store.models import Key, OutboxMessage
from worker.store.outbox import Held
from worker.store.rows import DeadlineRow, IssueRow, OutboxRow, ParkedRow


class Issues(Protocol):
    def lock(self, keys: Collection[Key]) -> list[IssueRow]:
        """The issues of these keys that exist, locked for update, in id order."""
        ...

    def keys_of_deadlines(self, deadline_ids: Collection[int]) -> dict[int, Key]:
        """The (source, external id) of each of these deadlines' issues (those that exist)."""
        ...

    def add(self, issue: IssueRow) -> None: ...


class Deadlines(Protocol):
    def armed(self, issue_ids: Collection[int]) -> list[DeadlineRow]:
        """The armed deadlines of these issues."""
        ...

    def lock_many(self, deadline_ids: Collection[int]) -> dict[int, DeadlineRow]:
        """These deadlines (those that exist), locked for update in id order."""
        ...

    def claim(self, deadline_id: int, now: datetime) -> bool:
        """Armed to fired if it is still armed: True for the one caller that wins."""
        ...

    def claim_many(self, deadline_ids: Collection[int], now: datetime) -> set[int]:
        """`claim` for many in one statement: the ids this caller won."""
        ...

    def add(self, deadline: DeadlineRow) -> None: ...


class Events(Protocol):
    def processed(self, event_ids: Collection[str]) -> dict[str, int | None]:
        """Which of these event ids were processed before, with their issue's id."""
        ...

    def add_processed(
        self,
        event_id: str,
        issue: IssueRow,
        stream_id: str | None,
        type: str,
        occurred_at: datetime,
        outcome: str,
        processed_at: datetime,
        body: bytes | None = None,
    ) -> None:
        """The dedup record of an event applied or ignored, with its packed contents
        (`worker.store.event_bodies.pack`) for backtests."""
        ...

    def parked(self, keys: Collection[Key]) -> list[ParkedRow]:
        """The events parked for these issues, in the order they were parked."""
        ...

    def park(self, row: ParkedRow) -> None: ...

    def unpark(self, row: ParkedRow) -> None:
        """Forget a parked event (applied now)."""
        ...


class Timeline(Protocol):
    def add(
        self,
        issue: IssueRow | int,
        at: datetime,
        kind: str,
        message: str,
        data: dict[str, Any] | None = None,
    ) -> None:
        """A line of the issue's (a row, or its id) history."""
        ...


class Outbox(Protocol):
    def add(self, row: OutboxRow) -> None: ...

    def window_end(self, channel: str, now: datetime) -> datetime | None:
        """When the open digest window of the channel closes (its rows' send time), if any."""
        ...

    def moot_candidates(
        self,
        issue_ids: Collection[int],
        kinds: Collection[str],
        targets: Collection[str] | None,
        written: Collection[str],
    ) -> list[tuple[str, dict[str, Any]]]:
        """Unsent rows of these issues and kinds (about these targets), not write-backs, not
        among `written`: (id, payload)."""
        ...

    def cancel(self, message_ids: Collection[str], note: str) -> int:
        """Cancel those of these rows that are still pending; how many."""
        ...

    def lock_issues(self, message_ids: Collection[str]) -> None:
        """KEY SHARE on the messages' issues, in id order: the first locks of the order."""
        ...

    def lease(
        self, message_ids: Sequence[str], now: datetime, until: datetime, heads: bool
    ) -> list[Held]:
        """Take the pending, due, unheld rows among these for one attempt each (`attempts` +1,
        held until `until`); rows held for a digest window only with `heads`."""
        ...

    def held(self, message_ids: Sequence[str]) -> dict[str, datetime]:
        """Those of these ids held for a digest window, with the window's end."""
        ...

    def window(self, leader: OutboxMessage) -> list[Held]:
        """The rest of the leader's digest window that nobody holds (skipping locked rows)."""
        ...

    def carried(self, message_ids: Collection[str]) -> list[Held]:
        """These rows (those a digest carries), with their issues' state."""
        ...

    def rows(self, message_ids: Collection[str]) -> dict[str, OutboxMessage]:
        """These rows, as the database holds them now."""
        ...

    def mark_sent(self, sent: Sequence[tuple[OutboxMessage, str]], done: datetime) -> None:
        """Many plain messages sent: mark them and add their timeline lines, in bulk."""
        ...


class PolicyVersions(Protocol):
    def under(self, version: str, current: PolicyFile) -> PolicyFile:
        """The policy file of that stored version (the current one if it is that version)."""
        ...


class Store(Protocol):
    """The repositories of one transaction."""

    @property
    def issues(self) -> Issues: ...

    @property
    def deadlines(self) -> Deadlines: ...

    @property
    def events(self) -> Events: ...

    @property
    def timeline(self) -> Timeline: ...

    @property
    def outbox(self) -> Outbox: ...

    @property
    def policies(self) -> PolicyVersions: ...

    def flush(self) -> None:
        """Write what was added and changed so far, in bulk; new rows get their ids."""
        ...

    def savepoint(self) -> AbstractContextManager[object]:
        """A nested transaction: an error inside undoes only what was done inside."""
        ...


__all__ = [
    "Deadlines",
    "Events",
    "Held",
    "Issues",
    "Key",
    "Outbox",
    "PolicyVersions",
    "Store",
    "Timeline",
]
