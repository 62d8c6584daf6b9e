"""Applying a batch of events to the store: validate, dedupe, decide, write, in one commit.

The fast path loads everything the batch touches in three queries (its event ids, its issues,
their armed deadlines), applies the events in memory in order of occurrence and writes it all
in one flush. If anything unexpected happens (a unique race with another consumer, a bug
tripped by one event) the batch is rolled back and applied again one event per savepoint, so a
bad event never spoils its neighbours. The caller acknowledges the stream entries only after
`apply_batch` returns, that is after the commit.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import StrEnum

import structlog
from pydantic import ValidationError
from sqlalchemy import select, tuple_
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError
from sqlalchemy.orm import Session

from schemas.events import EventType, EventWindow, IssueEvent
from schemas.policy import PolicyFile
from worker.domain.clock import Clock
from worker.domain.lifecycle import apply_event, comes_back
from worker.domain.oncall import on_call
from worker.domain.sla import SNOOZE, DeadlineSpec
from worker.errors import InvalidEvent, PermanentError
from worker.services.effects import Effects
from worker.services.fire import claim, decide_firing, record_firing
from worker.services.outbox import (
    cancel_fresh,
    cancel_stored,
    queue_notifications,
)
from worker.store import repository as repo
from worker.store.db import SessionFactory
from worker.store.models import Deadline, Issue, ParkedEvent, ProcessedEvent, TimelineEntry
from worker.store.policy_versions import policies_for, remember, version_of

log = structlog.get_logger("escalator.apply")


class Outcome(StrEnum):
    APPLIED = "applied"  # changed the issue
    IGNORED = "ignored"  # recorded, changed nothing (stale, already in that state)
    DUPLICATE = "duplicate"  # this event id was processed before
    PARKED = "parked"  # its issue is not open yet: it waits for `issue.opened`
    DEAD = "dead"  # cannot be applied: goes to the dead-letter stream


@dataclass(frozen=True, slots=True)
class EntryResult:
    """What became of one stream entry."""

    stream_id: str
    outcome: Outcome
    note: str
    event_id: str | None = None
    issue_key: str | None = None


Key = tuple[str, str]  # (source, external id)


@dataclass
class BatchResult:
    results: list[EntryResult] = field(default_factory=list)
    effects: Effects = field(default_factory=Effects)
    # issues whose events were parked, or that opened, in this batch: checked again after the
    # commit, for an event another consumer parked for them meanwhile (`parking.settle`)
    recheck: set[Key] = field(default_factory=set)


def parse_event(
    raw: str | bytes | None, now: datetime | None = None, window: EventWindow | None = None
) -> IssueEvent:
    """Validate one entry's JSON, and its time against `window` around `now` when both are
    given, with an error that names the field."""
    if raw is None:
        raise InvalidEvent("entry has no 'event' field holding the event JSON")
    try:
        event = IssueEvent.model_validate_json(raw)
        if window is not None and now is not None:
            window.check(event, now)
        return event
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'body'}: {err['msg']}"
            for err in exc.errors()
        )
        raise InvalidEvent(f"invalid event: {problems}") from None


class Loaded:
    """Everything a group of events reads, loaded up front, and what applying them wrote."""

    def __init__(
        self,
        session: Session,
        event_ids: Iterable[str],
        keys: Iterable[Key],
        parked: bool = False,
    ) -> None:
        """Load (and lock) what these events touch; the parked events of the issues not known
        yet, or with `parked` of every issue named."""
        self.session = session
        wanted = list(set(keys))
        # Locked in id order, so concurrent consumers on PostgreSQL never deadlock.
        issues = session.scalars(
            select(Issue)
            .where(tuple_(Issue.source, Issue.external_id).in_(wanted))
            .order_by(Issue.id)
            .with_for_update()
        ).all()
        self.issues = {(i.source, i.external_id): i for i in issues}
        self.armed: dict[Issue, list[Deadline]] = {i: [] for i in issues}
        by_id = {i.id: i for i in issues}
        if by_id:
            for d in session.scalars(
                select(Deadline).where(Deadline.issue_id.in_(by_id), Deadline.state == repo.ARMED)
            ):
                self.armed[by_id[d.issue_id]].append(d)
        self.parked: dict[Key, list[ParkedEvent]] = {}
        if unknown := [k for k in wanted if parked or k not in self.issues]:
            for row in session.scalars(
                select(ParkedEvent)
                .where(tuple_(ParkedEvent.source, ParkedEvent.external_id).in_(unknown))
                .order_by(ParkedEvent.id)
            ):
                self.parked.setdefault((row.source, row.external_id), []).append(row)
        # the processed ones among these events and the parked ones (a parked event may have
        # been applied meanwhile, delivered again to a consumer that knew its issue)
        ids = list({*event_ids, *(r.event_id for rows in self.parked.values() for r in rows)})
        self.seen: dict[str, Issue | None] = (
            {
                row.event_id: row.issue
                for row in session.scalars(
                    select(ProcessedEvent).where(ProcessedEvent.event_id.in_(ids))
                )
            }
            if ids
            else {}
        )
        self.new: list[Deadline] = []
        self.disarm: list[int] = []
        self.rearm: set[Issue] = set()
        self.outbox: list[str] = []
        self.mooted: dict[frozenset[str] | None, list[int]] = {}
        self.recheck: set[Key] = set()

    @classmethod
    def of(cls, session: Session, events: list[IssueEvent], parked: bool = False) -> Loaded:
        keys = ((e.source, e.issue.id) for e in events)
        return cls(session, (e.event_id for e in events), keys, parked)

    def effects(self) -> Effects:
        """After the flush: what to index and drop, and which messages to dispatch."""
        arm = {d.id: d.due_at for d in self.new if d.state == repo.ARMED}
        for issue in self.rearm:
            arm.update((d.id, d.due_at) for d in self.armed.get(issue, []))
        return Effects(arm=list(arm.items()), disarm=self.disarm, outbox=self.outbox)

    def moot(self, issue: Issue, targets: frozenset[str] | None, now: datetime) -> None:
        """Cancel the issue's unsent messages about these met targets (None: resolved, all that
        can be moot): this transaction's at once, the stored ones in one statement per target
        set when the batch is done (`cancel_moot`)."""
        cancel_fresh(self.session, issue, targets, now)
        if issue.id is not None:
            self.mooted.setdefault(targets, []).append(issue.id)

    def cancel_moot(self, now: datetime) -> None:
        for targets, issue_ids in self.mooted.items():
            cancel_stored(self.session, issue_ids, targets, now)
        self.mooted.clear()

    def cancel(self, issue: Issue, targets: frozenset[str], note: str) -> None:
        """Cancel the issue's armed deadlines of these targets (and snoozes)."""
        if not targets:
            return
        keep = []
        for d in self.armed[issue]:
            if d.target in targets:
                d.state, d.note = "cancelled", note
                if d.id is not None:
                    self.disarm.append(d.id)
            else:
                keep.append(d)
        self.armed[issue] = keep

    def catch_up(self, issue: Issue, until: datetime, policies: PolicyFile, now: datetime) -> None:
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
            if deadline.id is None:
                self.session.flush()  # armed in this batch: give it its id
            if not claim(self.session, deadline.id, now):
                continue  # a scheduler's task fired it meanwhile (on PostgreSQL)
            deadline.state, deadline.fired_at = "fired", now
            self.disarm.append(deadline.id)
            firing = decide_firing(self.session, issue, deadline, policies, until)
            if not firing.changes:
                deadline.state, deadline.note = "stale", firing.message
                continue
            self.cancel(issue, firing.cancel, deadline.kind)
            self.arm(issue, firing.arm, deadline.due_at)
            self.outbox += record_firing(
                self.session, issue, deadline, firing, policies, now, self.armed[issue]
            )
            log.info(
                "escalation.fired",
                issue=issue.key,
                kind=deadline.kind,
                target=deadline.target,
                tier=issue.tier,
                before_event=True,
            )
        log.error("apply.catch_up_limit", issue=issue.key, until=until.isoformat())

    def arm(self, issue: Issue, specs: Iterable[DeadlineSpec], not_before: datetime) -> None:
        """Arm deadlines for the issue; one that a re-plan puts in the past is due at the time
        of what armed it (history never has an effect before its cause)."""
        for spec in specs:
            if spec.due_at < not_before:
                spec = replace(spec, due_at=not_before)
            deadline = repo.deadline_row(issue, spec)
            self.session.add(deadline)
            self.armed[issue].append(deadline)
            self.new.append(deadline)

    def park(self, event: IssueEvent, stream_id: str, now: datetime) -> tuple[Outcome, str]:
        """Keep an event whose issue is not open yet, until its `issue.opened` arrives."""
        key = (event.source, event.issue.id)
        waiting = self.parked.setdefault(key, [])
        self.recheck.add(key)
        if any(row.event_id == event.event_id for row in waiting):
            return Outcome.DUPLICATE, "event id already parked"
        row = ParkedEvent(
            event_id=event.event_id,
            source=event.source,
            external_id=event.issue.id,
            occurred_at=event.occurred_at,
            stream_id=stream_id,
            body=event.model_dump_json(),
            parked_at=now,
        )
        self.session.add(row)
        waiting.append(row)
        self.recheck.add(key)
        return Outcome.PARKED, f"parked: {event.type} arrived before issue.opened"

    def unpark(
        self, issue: Issue, policies: PolicyFile, now: datetime, upto: datetime | None = None
    ) -> None:
        """Apply the events parked for an issue that is open now, in order of occurrence, those
        up to `upto` (the time of the event about to be applied: history stays in order) or all.
        One that happened before the open (the source sent them out of order) counts as
        happening with it: an acknowledgement that came first means the issue opens
        acknowledged. One whose applying fails stays parked (dead-lettered when it expires)."""
        key = (issue.source, issue.external_id)
        start = issue.cycle_started_at

        def at(row: ParkedEvent) -> datetime:
            return max(row.occurred_at, start)

        waiting = self.parked.pop(key, [])
        ready = sorted(
            (r for r in waiting if upto is None or at(r) <= upto), key=lambda r: (at(r), r.id or 0)
        )
        if later := [r for r in waiting if r not in ready]:
            self.parked[key] = later
        for row in ready:
            event = IssueEvent.model_validate_json(row.body)
            if event.occurred_at < start:
                event = event.model_copy(update={"occurred_at": start})
            try:
                outcome, note = _apply(self, event, row.stream_id or "", policies, now)
            except PermanentError as exc:
                log.error("event.unpark_failed", event_id=event.event_id, error=str(exc))
                continue
            if row in self.session.new:
                self.session.expunge(row)
            else:
                self.session.delete(row)
            log.info(
                f"event.{outcome.value}",
                event_id=event.event_id,
                issue=issue.key,
                note=f"{note} (it had waited for issue.opened)",
            )

    def unpark_all(self, policies: PolicyFile, now: datetime) -> None:
        """Apply what is still parked for the issues that are open now."""
        for key in list(self.parked):
            issue = self.issues.get(key)
            if issue is not None:
                under = policies_for(self.session, issue.policy_version, policies)
                self.unpark(issue, under, now)


_CATCH_UP_LIMIT = 1000  # firings before one event: far more than any ladder has steps


def _apply(
    loaded: Loaded, event: IssueEvent, stream_id: str, policies: PolicyFile, now: datetime
) -> tuple[Outcome, str]:
    """Apply one event to what `loaded` holds; raises PermanentError before changing anything."""
    session = loaded.session
    if event.event_id in loaded.seen:
        # A redelivery after a crash between commit and indexing: make sure the index has what
        # the first delivery armed (arming is idempotent).
        seen = loaded.seen[event.event_id]
        if seen is not None:
            loaded.rearm.add(seen)
        return Outcome.DUPLICATE, "event id already processed"
    key = (event.source, event.issue.id)
    issue = loaded.issues.get(key)
    if issue is None and event.type is not EventType.OPENED:
        return loaded.park(event, stream_id, now)
    if issue is not None:
        # What happened before this event comes first: parked events, then deadlines that
        # fell due (never past `now`: an event may be stamped a little in the future).
        history = policies_for(session, issue.policy_version, policies)
        if key in loaded.parked:
            loaded.unpark(issue, history, now, upto=event.occurred_at)
        loaded.catch_up(issue, min(event.occurred_at, now), history, now)
    clock = repo.clock_of(issue) if issue else None
    back = clock is not None and comes_back(clock, event)  # a new cycle of a resolved issue
    if clock is None or back:  # runs under the current file, as a new issue does
        version, under = version_of(policies), policies
    else:
        assert issue is not None
        version = issue.policy_version
        under = history
    transition = apply_event(clock, event, under)
    assert transition.clock is not None
    snap = event.issue
    opened = issue is None
    if issue is None:
        issue = Issue(
            source=event.source,
            external_id=snap.id,
            created_at=now,
            tier="",
            policy_version=version,
        )
        session.add(issue)
        loaded.issues[key], loaded.armed[issue] = issue, []
    if transition.take_snapshot:
        issue.title, issue.assignee = snap.title, snap.assignee
        issue.labels, issue.url = list(snap.labels), str(snap.url) if snap.url else None
    holder = issue.tier
    if issue.policy_version != version:
        issue.policy_version = version
    repo.write_clock(issue, transition.clock, under)
    if issue.tier != holder or back:
        # a tier takes the issue (or takes it again, reopened): whoever is on call there
        issue.assignee = on_call(under, issue.tier, now) or issue.assignee
    issue.updated_at = now
    loaded.cancel(issue, transition.cancel, event.type.value)
    if issue.lifecycle == "resolved" and "resolve" in transition.cancel:
        loaded.moot(issue, None, now)
    else:  # targets this event met: their unsent escalations, reminders and warnings are moot
        live = {t.target for t in transition.clock.targets if t.live}
        if met := frozenset(transition.cancel - live - {SNOOZE}):
            loaded.moot(issue, met, now)
    loaded.arm(issue, transition.arm, event.occurred_at)
    for kind, reason in transition.notify:
        loaded.outbox += queue_notifications(
            session, issue, kind, under, event.occurred_at, now, reason, loaded.armed[issue]
        )
    for note in transition.notes:
        session.add(TimelineEntry(issue=issue, at=event.occurred_at, kind="clock", message=note))
    outcome = Outcome.APPLIED if transition.applied else Outcome.IGNORED
    session.add(
        TimelineEntry(
            issue=issue,
            at=event.occurred_at,
            kind="event" if transition.applied else "ignored",
            message=f"{event.type.value}: {transition.note}",
            data={"event_id": event.event_id, "source": event.source},
        )
    )
    session.add(
        ProcessedEvent(
            event_id=event.event_id,
            issue=issue,
            stream_id=stream_id,
            type=event.type.value,
            occurred_at=event.occurred_at,
            outcome=outcome.value,
            processed_at=now,
        )
    )
    loaded.seen[event.event_id] = issue
    if opened:  # what was parked for it is applied in order of time, by the end of the batch
        loaded.recheck.add(key)
    return outcome, transition.note


def _result(stream_id: str, event: IssueEvent, outcome: Outcome, note: str) -> EntryResult:
    return EntryResult(stream_id, outcome, note, event.event_id, event.issue_key)


def _fast(
    sessions: SessionFactory,
    parsed: list[tuple[str, IssueEvent]],
    policies: PolicyFile,
    now: datetime,
) -> BatchResult:
    batch = BatchResult()
    with sessions() as session, session.begin():
        loaded = Loaded.of(session, [event for _, event in parsed])
        for stream_id, event in parsed:
            try:
                outcome, note = _apply(loaded, event, stream_id, policies, now)
            except PermanentError as exc:  # raised before anything was changed
                outcome, note = Outcome.DEAD, str(exc)
            batch.results.append(_result(stream_id, event, outcome, note))
        loaded.unpark_all(policies, now)
        loaded.cancel_moot(now)
        session.flush()
        batch.effects = loaded.effects()
        batch.recheck = loaded.recheck
    return batch


def _careful(
    sessions: SessionFactory,
    parsed: list[tuple[str, IssueEvent]],
    policies: PolicyFile,
    now: datetime,
) -> BatchResult:
    """One savepoint per event: an event that fails is dead-lettered alone."""
    batch = BatchResult()
    keys = [(event.source, event.issue.id) for _, event in parsed]
    with sessions() as session, session.begin():
        lock_issues(session, keys)  # all at once, in id order, as the fast path does
        for stream_id, event in parsed:
            for attempt in (1, 2):
                try:
                    with session.begin_nested():
                        loaded = Loaded.of(session, [event], parked=True)
                        outcome, note = _apply(loaded, event, stream_id, policies, now)
                        loaded.cancel_moot(now)
                        session.flush()
                    batch.effects.merge(loaded.effects())
                    batch.recheck |= loaded.recheck
                    break
                except PermanentError as exc:
                    outcome, note = Outcome.DEAD, str(exc)
                    break
                except IntegrityError:
                    # Another consumer committed the same event id or issue meanwhile; the
                    # retry sees its row. Failing twice aborts the batch, which is not acked.
                    if attempt == 2:
                        raise
                except (OperationalError, DBAPIError):
                    raise  # the database is away: the whole batch is retried later
                except Exception as exc:
                    log.exception("apply.event_failed", event_id=event.event_id)
                    outcome, note = Outcome.DEAD, f"internal error: {type(exc).__name__}: {exc}"
                    break
            batch.results.append(_result(stream_id, event, outcome, note))
        for key in set(keys):
            if unparked := unpark_safely(session, key, policies, now):
                batch.effects.merge(unparked.effects())
    return batch


def lock_issues(session: Session, keys: Iterable[Key]) -> None:
    """Lock these issues (those that exist) in id order: the order every writer takes."""
    wanted = list(set(keys))
    if wanted:
        session.execute(
            select(Issue.id)
            .where(tuple_(Issue.source, Issue.external_id).in_(wanted))
            .order_by(Issue.id)
            .with_for_update()
        ).all()


def unpark_safely(session: Session, key: Key, policies: PolicyFile, now: datetime) -> Loaded | None:
    """Apply, in a savepoint of its own, what is parked for this issue if it is open now. If
    that fails, it stays parked (and is dead-lettered with a reason when it expires)."""
    try:
        with session.begin_nested():
            loaded = Loaded(session, (), [key], parked=True)
            if not loaded.parked or key not in loaded.issues:
                return None
            loaded.unpark_all(policies, now)
            loaded.cancel_moot(now)
            session.flush()
        return loaded
    except (OperationalError, DBAPIError) as exc:
        if not isinstance(exc, IntegrityError):
            raise  # the database is away
        log.warning("parking.unpark_failed", issue=f"{key[0]}:{key[1]}", error=str(exc))
    except Exception as exc:
        log.exception("parking.unpark_failed", issue=f"{key[0]}:{key[1]}", error=str(exc))
    return None


def apply_batch(
    sessions: SessionFactory,
    entries: list[tuple[str, str | bytes | None]],
    policies: PolicyFile,
    clock: Clock,
    window: EventWindow | None = None,
) -> BatchResult:
    """Apply (stream_id, raw JSON) entries in order of occurrence; commit once. Events whose
    time falls outside `window` around now are refused (dead-lettered, the field named)."""
    now = clock.now()
    dead: list[EntryResult] = []
    parsed: list[tuple[str, IssueEvent]] = []
    for stream_id, raw in entries:
        try:
            parsed.append((stream_id, parse_event(raw, now, window)))
        except InvalidEvent as exc:
            dead.append(EntryResult(stream_id, Outcome.DEAD, str(exc)))
    # Within a batch, apply in order of occurrence; across batches the domain's rules order them.
    parsed.sort(key=lambda item: item[1].occurred_at)
    if parsed:
        remember(sessions, policies, now)  # new issues name this version: it must be stored
    try:
        batch = _fast(sessions, parsed, policies, now)
    except (OperationalError, DBAPIError) as exc:
        if not isinstance(exc, IntegrityError):
            raise
        log.info("apply.retry_one_by_one", reason="unique race with another consumer")
        batch = _careful(sessions, parsed, policies, now)
    except Exception:
        log.warning("apply.retry_one_by_one", reason="an event failed", exc_info=True)
        batch = _careful(sessions, parsed, policies, now)
    batch.results = dead + batch.results
    return batch
