"""Applying one event to what a batch has loaded, after what came before it in time.

Before the event, the issue's parked events up to its time are applied and the deadlines that
fell due by then are fired (`Loaded.catch_up`); then the domain decides the transition and it is
written: the clock, deadlines cancelled and armed, moot messages cancelled, notifications
queued, timeline lines, and the processed-event row that makes a redelivery a duplicate.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import structlog

from schemas.events import EventType, IssueEvent
from schemas.policy import PolicyFile
from worker.domain import SNOOZE, apply_event, comes_back, on_call, wording
from worker.domain.clock_facts import SLA_KEY
from worker.errors import PermanentError
from worker.services.clock_facts import sla_of
from worker.services.history import Loaded, Outcome
from worker.services.outbox import queue_notifications
from worker.store import repository as repo
from worker.store.event_bodies import pack
from worker.store.policy_versions import version_of
from worker.store.rows import IssueRow, ParkedRow

log = structlog.get_logger("escalator.apply")


def apply_one(
    loaded: Loaded, event: IssueEvent, stream_id: str, policies: PolicyFile, now: datetime
) -> tuple[Outcome, str]:
    """Apply one event to what `loaded` holds; raises PermanentError before changing anything."""
    store = loaded.store
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
        history = store.policies.under(issue.policy_version, policies)
        if key in loaded.parked:
            unpark(loaded, issue, history, now, upto=event.occurred_at)
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
        issue = IssueRow(
            source=event.source,
            external_id=snap.id,
            created_at=now,
            updated_at=now,
            cycle_started_at=now,  # the clocks' times are written with them, below
            lifecycle_at=now,
            snapshot_at=now,
            policy_version=version,
        )
        store.issues.add(issue)
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
            loaded.writer, issue, kind, under, event.occurred_at, now, reason, loaded.armed[issue]
        )
    for note in transition.notes:
        store.timeline.add(issue, event.occurred_at, "clock", note)
    outcome = Outcome.APPLIED if transition.applied else Outcome.IGNORED
    data: dict[str, Any] = {"event_id": event.event_id, "source": event.source}
    if event.actor:
        data["actor"] = event.actor
    if transition.applied and (sla := sla_of(issue, clock, transition.clock, event, under)):
        data[SLA_KEY] = sla
    store.timeline.add(
        issue,
        event.occurred_at,
        "event" if transition.applied else "ignored",
        wording.event_line(event.type.value, transition.note, event.actor),
        data,
    )
    store.events.add_processed(
        event.event_id,
        issue,
        stream_id,
        event.type.value,
        event.occurred_at,
        outcome.value,
        now,
        pack(event),
    )
    loaded.seen[event.event_id] = issue
    if opened:  # what was parked for it is applied in order of time, by the end of the batch
        loaded.recheck.add(key)
    return outcome, transition.note


def unpark(
    loaded: Loaded,
    issue: IssueRow,
    policies: PolicyFile,
    now: datetime,
    upto: datetime | None = None,
) -> None:
    """Apply the events parked for an issue that is open now, in order of occurrence, those
    up to `upto` (the time of the event about to be applied: history stays in order) or all.
    One that happened before the open (the source sent them out of order) counts as
    happening with it: an acknowledgement that came first means the issue opens
    acknowledged. One whose applying fails stays parked (dead-lettered when it expires)."""
    key = (issue.source, issue.external_id)
    start = issue.cycle_started_at

    def at(row: ParkedRow) -> datetime:
        return max(row.occurred_at, start)

    waiting = loaded.parked.pop(key, [])
    ready = sorted(
        (r for r in waiting if upto is None or at(r) <= upto), key=lambda r: (at(r), r.id or 0)
    )
    if later := [r for r in waiting if r not in ready]:
        loaded.parked[key] = later
    for row in ready:
        event = IssueEvent.model_validate_json(row.body)
        if event.occurred_at < start:
            event = event.model_copy(update={"occurred_at": start})
        try:
            outcome, note = apply_one(loaded, event, row.stream_id or "", policies, now)
        except PermanentError as exc:
            log.error("event.unpark_failed", event_id=event.event_id, error=str(exc))
            continue
        loaded.store.events.unpark(row)
        log.info(
            f"event.{outcome.value}",
            event_id=event.event_id,
            issue=issue.key,
            note=f"{note} (it had waited for issue.opened)",
        )


def unpark_all(loaded: Loaded, policies: PolicyFile, now: datetime) -> None:
    """Apply what is still parked for the issues that are open now."""
    for key in list(loaded.parked):
        issue = loaded.issues.get(key)
        if issue is not None:
            under = loaded.store.policies.under(issue.policy_version, policies)
            unpark(loaded, issue, under, now)
