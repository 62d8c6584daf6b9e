"""Applying a batch of events to the store: validate, dedupe, decide, write, in one commit.

The fast path loads everything the batch touches in three queries (its event ids, its issues,
their armed deadlines), applies the events in memory in order of occurrence and writes it all
in one flush. If anything unexpected happens (a unique race with another consumer, a bug
tripped by one event) the batch is rolled back and applied again one event per savepoint, so a
bad event never spoils its neighbours. The caller acknowledges the stream entries only after
`apply_batch` returns, that is after the commit.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

import structlog
from pydantic import ValidationError
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError

from schemas.events import EventWindow, IssueEvent
from schemas.policy import PolicyFile
from worker.domain.clock import Clock
from worker.errors import InvalidEvent, PermanentError
from worker.services.apply_event import apply_one, unpark_all
from worker.services.firing import Happened
from worker.services.history import Loaded, Outcome, lock_issues
from worker.services.uow import Effects, UnitOfWork, Units
from worker.store.models import Key

__all__ = ["BatchResult", "EntryResult", "Key", "Outcome", "apply_batch", "parse_event"]

log = structlog.get_logger("escalator.apply")


@dataclass(frozen=True, slots=True)
class EntryResult:
    """What became of one stream entry."""

    stream_id: str
    outcome: Outcome
    note: str
    event_id: str | None = None
    issue_key: str | None = None
    event_type: str | None = None  # None: the entry did not parse


@dataclass
class BatchResult:
    """What became of each entry, the effects the commit ran, and the issues to check again."""

    results: list[EntryResult] = field(default_factory=list)
    effects: Effects = field(default_factory=Effects)
    # issues whose events were parked, or that opened, in this batch: checked again after the
    # commit, for an event another consumer parked for them meanwhile (`parking.settle`)
    recheck: set[Key] = field(default_factory=set)
    # deadlines found overdue and fired before an event (`Loaded.catch_up`), for the metrics
    fired: list[Happened] = field(default_factory=list)


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


def _result(stream_id: str, event: IssueEvent, outcome: Outcome, note: str) -> EntryResult:
    return EntryResult(stream_id, outcome, note, event.event_id, event.issue_key, event.type)


def _fast(
    units: Units,
    parsed: list[tuple[str, IssueEvent]],
    policies: PolicyFile,
    now: datetime,
) -> BatchResult:
    batch = BatchResult()
    with units() as uow:
        loaded = Loaded.of(uow, [event for _, event in parsed])
        for stream_id, event in parsed:
            try:
                outcome, note = apply_one(loaded, event, stream_id, policies, now)
            except PermanentError as exc:  # raised before anything was changed
                outcome, note = Outcome.DEAD, str(exc)
            batch.results.append(_result(stream_id, event, outcome, note))
        unpark_all(loaded, policies, now)
        loaded.cancel_moot(now)
        uow.effects.merge(loaded.effects())
        batch.effects, batch.recheck = uow.effects, loaded.recheck
        batch.fired = loaded.happened
    return batch


def _careful(
    units: Units,
    parsed: list[tuple[str, IssueEvent]],
    policies: PolicyFile,
    now: datetime,
) -> BatchResult:
    """One savepoint per event: an event that fails is dead-lettered alone."""
    batch = BatchResult()
    keys = [(event.source, event.issue.id) for _, event in parsed]
    with units() as uow:
        store, batch.effects = uow.store, uow.effects
        lock_issues(store, keys)  # all at once, in id order, as the fast path does
        for stream_id, event in parsed:
            for attempt in (1, 2):
                try:
                    with store.savepoint():
                        loaded = Loaded.of(uow, [event], parked=True)
                        outcome, note = apply_one(loaded, event, stream_id, policies, now)
                        loaded.cancel_moot(now)
                        store.flush()
                    batch.effects.merge(loaded.effects())
                    batch.recheck |= loaded.recheck
                    batch.fired += loaded.happened
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
            if unparked := unpark_safely(uow, key, policies, now):
                batch.effects.merge(unparked.effects())
                batch.fired += unparked.happened
    return batch


def unpark_safely(uow: UnitOfWork, key: Key, policies: PolicyFile, now: datetime) -> Loaded | None:
    """Apply, in a savepoint of its own, what is parked for this issue if it is open now. If
    that fails, it stays parked (and is dead-lettered with a reason when it expires)."""
    try:
        with uow.store.savepoint():
            loaded = Loaded(uow, (), [key], parked=True)
            if not loaded.parked or key not in loaded.issues:
                return None
            unpark_all(loaded, policies, now)
            loaded.cancel_moot(now)
            uow.store.flush()
        return loaded
    except (OperationalError, DBAPIError) as exc:
        if not isinstance(exc, IntegrityError):
            raise  # the database is away
        log.warning("parking.unpark_failed", issue=f"{key[0]}:{key[1]}", error=str(exc))
    except Exception as exc:
        log.exception("parking.unpark_failed", issue=f"{key[0]}:{key[1]}", error=str(exc))
    return None


def apply_batch(
    units: Units,
    entries: list[tuple[str, str | bytes | None]],
    policies: PolicyFile,
    clock: Clock,
    window: EventWindow | None = None,
) -> BatchResult:
    """Apply (stream_id, raw JSON) entries in order of occurrence; commit once. Events whose
    time falls outside `window` around now are refused (dead-lettered, the field named). The
    effects of the commit run after it, through the unit of work."""
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
        units.remember(policies, now)  # new issues name this version: it must be stored
    try:
        batch = _fast(units, parsed, policies, now)
    except (OperationalError, DBAPIError) as exc:
        if not isinstance(exc, IntegrityError):
            raise
        log.info("apply.retry_one_by_one", reason="unique race with another consumer")
        batch = _careful(units, parsed, policies, now)
    except Exception:
        log.warning("apply.retry_one_by_one", reason="an event failed", exc_info=True)
        batch = _careful(units, parsed, policies, now)
    batch.results = dead + batch.results
    return batch
