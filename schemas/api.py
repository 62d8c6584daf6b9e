"""Bodies of the management API: issues with their SLA state, deadlines and timeline."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field


class NextDeadline(BaseModel):
    target: str = Field(description="acknowledge, first_response, next_response, resolve, snooze.")
    kind: str = Field(description="warn, breach, escalate, remind or resume.")
    due_at: datetime


class IssueSummary(BaseModel):
    """An issue and where its SLA clock stands."""

    key: str = Field(description="`source:id`, how every endpoint names the issue.")
    source: str
    id: str
    title: str
    severity: str
    status: str
    assignee: str | None
    lifecycle: str = Field(description="open, acknowledged or resolved.")
    tier: str
    policy: str
    cycle_started_at: datetime
    updated_at: datetime
    next_deadline: NextDeadline | None


class DeadlineOut(BaseModel):
    id: int
    target: str = Field(description="The SLA target it belongs to (or `snooze`).")
    kind: str = Field(description="warn, breach, escalate, remind or resume.")
    tier_index: int
    clock_version: int
    due_at: datetime
    state: str = Field(description="armed, fired, stale or cancelled.")
    fired_at: datetime | None
    note: str | None


class TimelineOut(BaseModel):
    at: datetime
    kind: str
    message: str
    data: dict[str, Any]


class TargetOut(BaseModel):
    """One SLA target's clock in the issue's current cycle."""

    target: str = Field(description="acknowledge, first_response, next_response or resolve.")
    state: str = Field(description="running, paused, met or idle.")
    started_at: datetime | None
    running_since: datetime | None = Field(description="Set while running: it counts from here.")
    counted_s: float = Field(
        description="Time counted before `running_since` (business time on a calendar)."
    )
    step: int = Field(description="The ladder step holding the issue (0 = first).")
    warned: list[float] = Field(description="The warning fractions already sent.")
    breached: bool


class IssueDetail(IssueSummary):
    """One issue with every deadline it has had and its timeline (oldest first)."""

    labels: list[str]
    url: str | None
    clock_version: int
    snoozed_until: datetime | None
    targets: list[TargetOut]
    deadlines: list[DeadlineOut]
    timeline: list[TimelineOut]


class IssuePage(BaseModel):
    items: list[IssueSummary]
    next_offset: int | None = Field(description="Pass as `offset` for the next page; null: last.")


class SnoozeRequest(BaseModel):
    """Hold the acknowledge ladder until `until`."""

    model_config = ConfigDict(extra="forbid")

    until: AwareDatetime = Field(description="With a time-zone offset.")
