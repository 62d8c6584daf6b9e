"""Queries and writes the services share. Each takes a Session; the caller owns the transaction."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, func, or_, select
from sqlalchemy.orm import Session

from schemas.events import Severity
from schemas.policy import PolicyFile
from worker.domain import ClockState, DeadlineSpec, IssueClock, Lifecycle, TargetClock
from worker.domain.states import DeadlineState
from worker.store.models import Deadline, Issue, Key
from worker.store.rows import DeadlineRow, IssueRow

ARMED, FIRED, CANCELLED, STALE = (
    DeadlineState.ARMED,
    DeadlineState.FIRED,
    DeadlineState.CANCELLED,
    DeadlineState.STALE,
)


def by_key(table: Any, keys: Collection[Key]) -> Any:
    """Rows of these (source, external id) keys, as one `source = ? AND external_id IN (...)`
    per source: SQLite answers a row-value `(source, external_id) IN (VALUES ...)` by scanning
    the whole table, and this from the (source, external_id) index."""
    ids: dict[str, list[str]] = {}
    for source, external_id in keys:
        ids.setdefault(source, []).append(external_id)
    return or_(
        *(
            and_(table.c.source == source, table.c.external_id.in_(sorted(set(wanted))))
            for source, wanted in sorted(ids.items())
        )
    )


def unindexed(column: Any) -> Any:
    """The column as a term no index serves (`coalesce(column, '')`): where a query also names
    a selective indexed column (an issue id), the planner must take that index, not one on a
    state that a large share of the table holds (SQLite keeps no statistics to tell them
    apart)."""
    return func.coalesce(column, "")


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


def _when(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def _target_of(data: dict[str, Any]) -> TargetClock:
    return TargetClock(
        target=data["target"],
        state=ClockState(data["state"]),
        started_at=_when(data.get("started_at")),
        running_since=_when(data.get("running_since")),
        spent=timedelta(seconds=data.get("spent_s", 0.0)),
        step=data.get("step", 0),
        step_base=timedelta(seconds=data.get("step_base_s", 0.0)),
        reminded=data.get("reminded", 0),
        warned=tuple(data.get("warned", ())),
        breached=data.get("breached", False),
    )


def _data_of(clock: TargetClock) -> dict[str, Any]:
    return {
        "target": clock.target,
        "state": clock.state.value,
        "started_at": clock.started_at.isoformat() if clock.started_at else None,
        "running_since": clock.running_since.isoformat() if clock.running_since else None,
        "spent_s": clock.spent.total_seconds(),
        "step": clock.step,
        "step_base_s": clock.step_base.total_seconds(),
        "reminded": clock.reminded,
        "warned": list(clock.warned),
        "breached": clock.breached,
    }


def clock_of(issue: Issue | IssueRow) -> IssueClock:
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
        targets=tuple(_target_of(data) for data in issue.clocks or ()),
    )


def write_clock(issue: IssueRow, clock: IssueClock, policies: PolicyFile) -> None:
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
    issue.clocks = [_data_of(target) for target in clock.targets]


def tier_rank(policies: PolicyFile, tier: str) -> int:
    """The tier's place in the file's `tiers` list, for sorting (0 for an unknown tier)."""
    names = [t.name for t in policies.tiers]
    return names.index(tier) if tier in names else 0


def deadline_row(issue: IssueRow, spec: DeadlineSpec) -> DeadlineRow:
    """A row for a deadline armed for the issue's current clock version."""
    return DeadlineRow(
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
