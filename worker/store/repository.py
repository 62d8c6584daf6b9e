"""Queries and writes the services share. Each takes a Session; the caller owns the transaction."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from schemas.events import Severity
from schemas.policy import PolicyFile
from worker.domain.lifecycle import IssueClock
from worker.domain.sla import ClockState, DeadlineSpec, Lifecycle, TargetClock
from worker.store.models import Deadline, Issue, SlaClock, TimelineEntry

ARMED = "armed"


def issue_by_key(
    session: Session, source: str, external_id: str, lock: bool = True
) -> Issue | None:
    """The issue `source:external_id`, locked for update where the backend can."""
    query = select(Issue).where(Issue.source == source, Issue.external_id == external_id)
    if lock:
        query = query.with_for_update()
    return session.scalars(query).one_or_none()


def issue_by_ref(session: Session, ref: str) -> Issue | None:
    """An issue named as `source:id`, or by its numeric id."""
    if ":" in ref:
        source, external_id = ref.split(":", 1)
        return issue_by_key(session, source, external_id, lock=False)
    return session.get(Issue, int(ref)) if ref.isdigit() else None


def _target_of(row: SlaClock) -> TargetClock:
    return TargetClock(
        target=row.target,
        state=ClockState(row.state),
        started_at=row.started_at,
        running_since=row.running_since,
        spent=timedelta(seconds=row.spent_s),
        step=row.step,
        step_base=timedelta(seconds=row.step_base_s),
        reminded=row.reminded,
        warned=tuple(row.warned),
        breached=row.breached,
    )


def clock_of(issue: Issue) -> IssueClock:
    """The domain's view of an issue's SLA clocks."""
    return IssueClock(
        lifecycle=Lifecycle(issue.lifecycle),
        severity=Severity(issue.severity),
        policy_name=issue.policy_name,
        tier=issue.tier,
        clock_version=issue.clock_version,
        cycle_started_at=issue.cycle_started_at,
        lifecycle_at=issue.lifecycle_at,
        snapshot_at=issue.snapshot_at,
        status=issue.status,
        snoozed_until=issue.snoozed_until,
        targets=tuple(_target_of(row) for row in issue.clocks),
    )


def write_target(row: SlaClock, clock: TargetClock) -> None:
    """Copy one target's domain clock onto its row."""
    row.state = clock.state.value
    row.started_at, row.running_since = clock.started_at, clock.running_since
    row.spent_s = clock.spent.total_seconds()
    row.step, row.step_base_s = clock.step, clock.step_base.total_seconds()
    row.reminded, row.warned, row.breached = clock.reminded, list(clock.warned), clock.breached


def write_clock(issue: Issue, clock: IssueClock, policies: PolicyFile) -> None:
    """Copy a domain clock back onto the issue and its target clocks' rows."""
    issue.lifecycle = clock.lifecycle.value
    issue.severity = clock.severity.value
    issue.policy_name = clock.policy_name
    issue.tier = clock.tier
    issue.tier_index = tier_rank(policies, clock.tier)
    issue.clock_version = clock.clock_version
    issue.cycle_started_at = clock.cycle_started_at
    issue.lifecycle_at = clock.lifecycle_at
    issue.snapshot_at = clock.snapshot_at
    issue.status = clock.status
    issue.snoozed_until = clock.snoozed_until
    rows = {row.target: row for row in issue.clocks}
    for target in clock.targets:
        row = rows.pop(target.target, None)
        if row is None:
            row = SlaClock(target=target.target)
            issue.clocks.append(row)
        write_target(row, target)
    for row in rows.values():  # targets the issue's policy no longer has
        issue.clocks.remove(row)


def tier_rank(policies: PolicyFile, tier: str) -> int:
    """The tier's place in the file's `tiers` list, for sorting (0 for an unknown tier)."""
    names = [t.name for t in policies.tiers]
    return names.index(tier) if tier in names else 0


def deadline_row(issue: Issue, spec: DeadlineSpec) -> Deadline:
    """A row for a deadline armed for the issue's current clock version."""
    return Deadline(
        issue=issue,
        kind=spec.kind.value,
        target=spec.target,
        tier_index=spec.step,
        budget_s=spec.budget.total_seconds(),
        fraction=spec.fraction,
        clock_version=issue.clock_version,
        due_at=spec.due_at,
        state=ARMED,
    )


def add_deadlines(
    session: Session, issue: Issue, specs: Iterable[DeadlineSpec]
) -> list[tuple[int, datetime]]:
    """Arm deadlines for the issue's current clock version; returns (id, due) to index."""
    rows = [deadline_row(issue, spec) for spec in specs]
    if not rows:
        return []
    session.add_all(rows)
    session.flush()
    return [(row.id, row.due_at) for row in rows]


def cancel_deadlines(
    session: Session, issue: Issue, targets: Iterable[str], note: str
) -> list[int]:
    """Cancel the issue's armed deadlines of these targets; returns their ids to disarm."""
    names = set(targets)
    ids = []
    for row in session.scalars(
        select(Deadline).where(Deadline.issue_id == issue.id, Deadline.state == ARMED)
    ):
        if row.target in names:
            row.state, row.note = "cancelled", note
            ids.append(row.id)
    return ids


def armed_deadlines(
    session: Session, issue_ids: Sequence[int] | None = None, after_id: int = 0, limit: int = 5000
) -> list[tuple[int, datetime]]:
    """Armed deadlines as (id, due), for the given issues or a page of all of them."""
    query = select(Deadline.id, Deadline.due_at).where(Deadline.state == ARMED)
    if issue_ids is not None:
        query = query.where(Deadline.issue_id.in_(issue_ids))
    else:
        query = query.where(Deadline.id > after_id).order_by(Deadline.id).limit(limit)
    return [(row.id, row.due_at) for row in session.execute(query)]


def not_armed(session: Session, deadline_ids: Sequence[int]) -> list[int]:
    """Which of these ids the database does not hold as armed (fired, cancelled or gone)."""
    armed = set(
        session.scalars(
            select(Deadline.id).where(Deadline.id.in_(deadline_ids), Deadline.state == ARMED)
        )
    )
    return [i for i in deadline_ids if i not in armed]


def add_timeline(
    session: Session, issue_id: int, at: datetime, kind: str, message: str, **data: Any
) -> None:
    """Append to the issue's timeline."""
    session.add(TimelineEntry(issue_id=issue_id, at=at, kind=kind, message=message, data=data))
