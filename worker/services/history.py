"""What a batch of events reads and writes: its issues, their armed deadlines, parked events.

`Loaded` loads (and locks, in id order) everything a group of events touches in a few queries,
and keeps what applying them changes: deadlines armed and cancelled, messages queued and mooted,
events parked. History is time-ordered: before an event is applied, the deadlines of its issue
that fell due earlier are fired (`catch_up`), whatever order the events are processed in.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from datetime import datetime
from enum import StrEnum

import structlog

from schemas.events import IssueEvent
from schemas.policy import PolicyFile
from worker.domain.sla import DeadlineSpec
from worker.services.firing import (
    Firing,
    Happened,
    decide_firing,
    happened,
    late_ms,
    record_firing,
)
from worker.services.outbox import cancel_fresh, cancel_stored
from worker.services.repositories import Store
from worker.services.uow import Effects, UnitOfWork
from worker.store import repository as repo
from worker.store.models import Key
from worker.store.rows import DeadlineRow, IssueRow, ParkedRow

log = structlog.get_logger("escalator.apply")


class Outcome(StrEnum):
    APPLIED = "applied"  # changed the issue
    IGNORED = "ignored"  # recorded, changed nothing (stale, already in that state)
    DUPLICATE = "duplicate"  # this event id was processed before
    PARKED = "parked"  # its issue is not open yet: it waits for `issue.opened`
    DEAD = "dead"  # cannot be applied: goes to the dead-letter stream


class Loaded:
    """Everything a group of events reads, loaded up front, and what applying them wrote."""

    def __init__(
        self,
        uow: UnitOfWork,
        event_ids: Iterable[str],
        keys: Iterable[Key],
        parked: bool = False,
    ) -> None:
        """Load (and lock) what these events touch; the parked events of the issues not known
        yet, or with `parked` of every issue named."""
        self.store = store = uow.store
        self.writer = uow.outbox
        wanted = list(set(keys))
        issues = store.issues.lock(wanted)  # in id order: writers never deadlock
        self.issues = {(i.source, i.external_id): i for i in issues}
        self.armed: dict[IssueRow, list[DeadlineRow]] = {i: [] for i in issues}
        by_id = {i.id: i for i in issues if i.id is not None}
        for d in store.deadlines.armed(list(by_id)):
            d.issue = by_id[d.issue_id or 0]
            self.armed[d.issue].append(d)
        self.parked: dict[Key, list[ParkedRow]] = {}
        unknown = [k for k in wanted if parked or k not in self.issues]
        for row in store.events.parked(unknown):
            self.parked.setdefault((row.source, row.external_id), []).append(row)
        # the processed ones among these events and the parked ones (a parked event may have
        # been applied meanwhile, delivered again to a consumer that knew its issue)
        ids = {*event_ids, *(r.event_id for rows in self.parked.values() for r in rows)}
        self.seen: dict[str, IssueRow | None] = {
            event_id: by_id.get(issue_id) if issue_id is not None else None
            for event_id, issue_id in store.events.processed(ids).items()
        }
        self.new: list[DeadlineRow] = []
        self.disarm: list[int] = []
        self.rearm: set[IssueRow] = set()
        self.outbox: list[str] = []
        self.mooted: dict[frozenset[str] | None, list[int]] = {}
        self.recheck: set[Key] = set()
        self.happened: list[Happened] = []  # the firings that counted, in order

    @classmethod
    def of(cls, uow: UnitOfWork, events: list[IssueEvent], parked: bool = False) -> Loaded:
        keys = ((e.source, e.issue.id) for e in events)
        return cls(uow, (e.event_id for e in events), keys, parked)

    def effects(self) -> Effects:
        """What to index and drop, and which messages to dispatch (new rows flushed first,
        so that each deadline to index has its id)."""
        self.store.flush()
        arm = {d.id: d.due_at for d in self.new if d.state == repo.ARMED and d.id is not None}
        for issue in self.rearm:
            arm.update(self.armed_ids(issue))
        return Effects(arm=list(arm.items()), disarm=self.disarm, outbox=self.outbox)

    def armed_ids(self, issue: IssueRow) -> list[tuple[int, datetime]]:
        """The issue's armed deadlines that have ids, as the index holds them: (id, due)."""
        return [(d.id, d.due_at) for d in self.armed.get(issue, []) if d.id is not None]

    def moot(self, issue: IssueRow, targets: frozenset[str] | None, now: datetime) -> None:
        """Cancel the issue's unsent messages about these met targets (None: resolved, all that
        can be moot): this transaction's at once, the stored ones in one statement per target
        set when the batch is done (`cancel_moot`)."""
        cancel_fresh(self.writer, issue, targets, now)
        if issue.id is not None:
            self.mooted.setdefault(targets, []).append(issue.id)

    def cancel_moot(self, now: datetime) -> None:
        for targets, issue_ids in self.mooted.items():
            cancel_stored(self.writer, issue_ids, targets, now)
        self.mooted.clear()

    def cancel(self, issue: IssueRow, targets: frozenset[str], note: str) -> None:
        """Cancel the issue's armed deadlines of these targets (and snoozes)."""
        if not targets:
            return
        keep = []
        for d in self.armed[issue]:
            if d.target in targets:
                d.state, d.note = repo.CANCELLED, note
                if d.id is not None:
                    self.disarm.append(d.id)
            else:
                keep.append(d)
        self.armed[issue] = keep

    def catch_up(
        self, issue: IssueRow, until: datetime, policies: PolicyFile, now: datetime
    ) -> None:
        """Fire, in order of due time, the issue's armed deadlines due by `until` (the time of
        the event about to be applied): history is time-ordered, whatever the processing order.

        A deadline a scheduler has in flight is claimed here with the same fence as its task's,
        so exactly one of the two fires it; the task then finds it fired and does nothing.
        """
        for _ in range(_CATCH_UP_LIMIT):
            due = [d for d in self.armed[issue] if d.due_at <= until and d.state == repo.ARMED]
            if not due:
                return
            deadline = min(due, key=lambda d: (d.due_at, d.id or 0))
            self.armed[issue].remove(deadline)
            self.fire(issue, deadline, policies, now, until, before_event=True)
        log.error("apply.catch_up_limit", issue=issue.key, until=until.isoformat())

    def fire(
        self,
        issue: IssueRow,
        deadline: DeadlineRow,
        policies: PolicyFile,
        now: datetime,
        at: datetime,
        before_event: bool = False,
        claimed: bool = False,
    ) -> Firing | None:
        """Claim one of the issue's armed deadlines (unless the caller `claimed` it already)
        and fire it as of `at`: decide, write it onto the issue, cancel and arm what it says,
        record it. None if another firing claimed it first (a scheduler's task, or a
        concurrent ingest on PostgreSQL)."""
        if deadline.id is None:
            self.store.flush()  # armed in this batch: give it its id
        assert deadline.id is not None
        if not claimed and not self.store.deadlines.claim(deadline.id, now):
            return None
        deadline.state, deadline.fired_at = repo.FIRED, now
        self.disarm.append(deadline.id)
        if deadline in self.armed[issue]:
            self.armed[issue].remove(deadline)
        firing = decide_firing(self.store, issue, deadline, policies, at)
        if not firing.changes:
            deadline.state, deadline.note = repo.STALE, firing.message
            return firing
        self.cancel(issue, firing.cancel, deadline.kind)
        self.arm(issue, firing.arm, deadline.due_at)
        self.outbox += record_firing(
            self.store, self.writer, issue, deadline, firing, policies, now, self.armed[issue]
        )
        self.happened.append(happened(issue, deadline, firing, now))
        log.info(
            "escalation.fired",
            issue=issue.key,
            kind=deadline.kind,
            target=deadline.target,
            tier=issue.tier,
            late_ms=late_ms(deadline, now),
            before_event=before_event,
        )
        return firing

    def arm(
        self, issue: IssueRow, specs: Iterable[DeadlineSpec], not_before: datetime | None = None
    ) -> None:
        """Arm deadlines for the issue; one that a re-plan puts before `not_before` is due at
        that time (the time of what armed it: history never has an effect before its cause)."""
        for spec in specs:
            if not_before is not None and spec.due_at < not_before:
                spec = replace(spec, due_at=not_before)
            deadline = repo.deadline_row(issue, spec)
            self.store.deadlines.add(deadline)
            self.armed[issue].append(deadline)
            self.new.append(deadline)

    def park(self, event: IssueEvent, stream_id: str, now: datetime) -> tuple[Outcome, str]:
        """Keep an event whose issue is not open yet, until its `issue.opened` arrives."""
        key = (event.source, event.issue.id)
        waiting = self.parked.setdefault(key, [])
        self.recheck.add(key)
        if any(row.event_id == event.event_id for row in waiting):
            return Outcome.DUPLICATE, "event id already parked"
        row = ParkedRow(
            event_id=event.event_id,
            source=event.source,
            external_id=event.issue.id,
            occurred_at=event.occurred_at,
            stream_id=stream_id,
            body=event.model_dump_json(),
            parked_at=now,
        )
        self.store.events.park(row)
        waiting.append(row)
        self.recheck.add(key)
        return Outcome.PARKED, f"parked: {event.type} arrived before issue.opened"


_CATCH_UP_LIMIT = 1000  # firings before one event: far more than any ladder has steps


def lock_issues(store: Store, keys: Iterable[Key]) -> None:
    """Lock these issues (those that exist) in id order: the order every writer takes."""
    store.issues.lock(list(set(keys)))
