"""The clock facts a timeline line carries (`worker.domain.clock_facts`), from the issue's clock
before and after an event or a firing: what the reports count (docs/reports.md)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from schemas.events import EventType, IssueEvent
from schemas.policy import Policy, PolicyFile
from worker.domain import IssueClock
from worker.domain.clock_facts import diff, to_data
from worker.store.rows import IssueRow


def _policy(policies: PolicyFile, clock: IssueClock | None) -> Policy | None:
    return policies.policy(clock.policy_name) if clock is not None else None


def facts_data(
    issue: IssueRow,
    before: IssueClock | None,
    after: IssueClock,
    policies_before: PolicyFile,
    policies_after: PolicyFile,
    at: datetime,
    escalated_to: str | None = None,
) -> dict[str, Any] | None:
    """The `sla` object for a change from `before` to `after` at `at` (None: nothing to count)."""
    facts = diff(
        before, after, _policy(policies_before, before), _policy(policies_after, after), at
    )
    return to_data(after, facts, issue.assignee, escalated_to)


def sla_of(
    issue: IssueRow,
    before: IssueClock | None,
    after: IssueClock | None,
    event: IssueEvent,
    policies: PolicyFile,
) -> dict[str, Any] | None:
    """The `sla` object of an applied event's timeline line; an escalation someone requested
    names the tier it moved the issue to."""
    if after is None:
        return None
    escalated = (
        after.tier
        if event.type is EventType.ESCALATION_REQUESTED
        and before is not None
        and before.tier != after.tier
        else None
    )
    return facts_data(issue, before, after, policies, policies, event.occurred_at, escalated)
