"""Applying a batch of events to the store: validate, dedupe, decide, write, in one commit.

Each event runs in its own savepoint, so one bad event never spoils its neighbours; the batch
commits once. The caller acknowledges the stream entries only after `apply_batch` returns.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from pydantic import ValidationError
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from schemas.events import IssueEvent
from schemas.policy import PolicyFile
from worker.clock import Clock
from worker.domain.lifecycle import apply_event
from worker.effects import Effects
from worker.errors import InvalidEvent, PermanentError
from worker.outbox import queue_notifications
from worker.store import repository as repo
from worker.store.db import SessionFactory
from worker.store.models import Issue, ProcessedEvent


class Outcome(StrEnum):
    APPLIED = "applied"  # changed the issue
    IGNORED = "ignored"  # recorded, changed nothing (stale, already in that state)
    DUPLICATE = "duplicate"  # this event id was processed before
    DEAD = "dead"  # cannot be applied: goes to the dead-letter stream


@dataclass(frozen=True, slots=True)
class EntryResult:
    """What became of one stream entry."""

    stream_id: str
    outcome: Outcome
    note: str
    event_id: str | None = None
    issue_key: str | None = None


@dataclass
class BatchResult:
    results: list[EntryResult] = field(default_factory=list)
    effects: Effects = field(default_factory=Effects)


def parse_event(raw: str | bytes | None) -> IssueEvent:
    """Validate one entry's JSON, with an error that names the field."""
    if raw is None:
        raise InvalidEvent("entry has no 'event' field holding the event JSON")
    try:
        return IssueEvent.model_validate_json(raw)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'body'}: {err['msg']}"
            for err in exc.errors()
        )
        raise InvalidEvent(f"invalid event: {problems}") from None


def _apply_one(
    session: Session, event: IssueEvent, stream_id: str, policies: PolicyFile, clock: Clock
) -> tuple[Outcome, str, Effects]:
    effects = Effects()
    seen = session.get(ProcessedEvent, event.event_id)
    if seen is not None:
        # A redelivery after a crash between commit and indexing: make sure the index has
        # what the first delivery armed (arming is idempotent).
        if seen.issue_id is not None:
            effects.arm = repo.armed_deadlines(session, [seen.issue_id])
        return Outcome.DUPLICATE, "event id already processed", effects
    now = clock.now()
    issue = repo.issue_by_key(session, event.source, event.issue.id)
    transition = apply_event(repo.clock_of(issue) if issue else None, event, policies)
    assert transition.clock is not None
    if issue is None:
        issue = Issue(source=event.source, external_id=event.issue.id, created_at=now, tier="")
        session.add(issue)
    snap = event.issue
    if transition.take_snapshot:
        issue.title, issue.status, issue.assignee = snap.title, snap.status, snap.assignee
        issue.labels, issue.url = list(snap.labels), str(snap.url) if snap.url else None
    repo.write_clock(issue, transition.clock)
    policy = policies.policy(issue.policy_name)
    if policy is None:  # the policy file changed under the issue: match it afresh
        policy = policies.match(snap.severity, event.source, snap.labels)
        issue.policy_name = policy.name
    issue.tier_index = min(issue.tier_index, len(policy.acknowledge.ladder) - 1)
    holder = policy.acknowledge.ladder[issue.tier_index].tier
    if holder != issue.tier:  # a tier takes the issue: its configured assignee with it
        tier = policies.tier(holder)
        issue.tier = holder
        issue.assignee = tier.assignee if tier and tier.assignee else issue.assignee
    issue.updated_at = now
    session.flush()
    effects.disarm = repo.cancel_deadlines(session, issue.id, transition.cancel, event.type.value)
    effects.arm = repo.add_deadlines(session, issue, transition.arm)
    for kind in transition.notify:
        effects.outbox += queue_notifications(
            session, issue, kind, policies, event.occurred_at, now
        )
    outcome = Outcome.APPLIED if transition.applied else Outcome.IGNORED
    repo.add_timeline(
        session,
        issue.id,
        event.occurred_at,
        "event" if transition.applied else "ignored",
        f"{event.type.value}: {transition.note}",
        event_id=event.event_id,
        source=event.source,
    )
    session.add(
        ProcessedEvent(
            event_id=event.event_id,
            issue_id=issue.id,
            stream_id=stream_id,
            type=event.type.value,
            occurred_at=event.occurred_at,
            outcome=outcome.value,
            processed_at=now,
        )
    )
    session.flush()
    return outcome, transition.note, effects


def _apply_in_savepoint(
    session: Session, event: IssueEvent, stream_id: str, policies: PolicyFile, clock: Clock
) -> tuple[Outcome, str, Effects]:
    """Apply one event in a savepoint; retry once if a concurrent consumer won a unique race."""
    for attempt in (1, 2):
        try:
            with session.begin_nested():
                return _apply_one(session, event, stream_id, policies, clock)
        except IntegrityError:
            # Another consumer committed the same event id or created the same issue meanwhile;
            # the retry sees its row. A second failure aborts the batch, which is not acked.
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


def apply_batch(
    sessions: SessionFactory,
    entries: list[tuple[str, str | bytes | None]],
    policies: PolicyFile,
    clock: Clock,
) -> BatchResult:
    """Apply (stream_id, raw JSON) entries in order of occurrence; commit once."""
    batch = BatchResult()
    parsed: list[tuple[str, IssueEvent]] = []
    for stream_id, raw in entries:
        try:
            parsed.append((stream_id, parse_event(raw)))
        except InvalidEvent as exc:
            batch.results.append(EntryResult(stream_id, Outcome.DEAD, str(exc)))
    # Within a batch, apply in order of occurrence; across batches the domain's rules order them.
    parsed.sort(key=lambda item: item[1].occurred_at)
    with sessions() as session, session.begin():
        for stream_id, event in parsed:
            try:
                outcome, note, effects = _apply_in_savepoint(
                    session, event, stream_id, policies, clock
                )
            except PermanentError as exc:
                outcome, note, effects = Outcome.DEAD, str(exc), Effects()
            batch.effects.merge(effects)
            batch.results.append(
                EntryResult(stream_id, outcome, note, event.event_id, event.issue_key)
            )
    return batch
