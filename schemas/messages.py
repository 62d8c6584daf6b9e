"""The outbound contract: what a channel receives when Escalator notifies someone."""

from __future__ import annotations

from enum import StrEnum

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field


class NotificationKind(StrEnum):
    """Why a message is sent."""

    ASSIGNED = "assigned"  # a new issue landed on the first tier
    ESCALATED = "escalated"  # a ladder step ran out, or someone asked: the next tier has it
    REMINDER = "reminder"  # the last tier still has not met the target
    WARNING = "warning"  # a target is about to breach (a fraction of its time has passed)
    BREACH = "breach"  # a target's time passed
    RESOLVED = "resolved"


class IssueRef(BaseModel):
    """Enough of the issue for a person to act on the message."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    key: str
    source: str
    id: str
    title: str
    severity: str
    url: str | None = None


class Notification(BaseModel):
    """One message to one channel. `id` is stable across retries: receivers dedupe on it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str = Field(description="Stable message id, sent as `webhook-id`.")
    kind: NotificationKind
    issue: IssueRef
    tier: str
    assignee: str | None
    text: str
    occurred_at: AwareDatetime
    # outbound: optional, so messages written before these fields still parse
    reason: str = ""
    tier_number: int = Field(default=1, description="1 for the first tier of the ladder.")
    people: tuple[str, ...] = Field(default=(), description="The tier's people (its roster).")
    due_at: AwareDatetime | None = Field(default=None, description="The next deadline, if any.")
    target: str | None = Field(
        default=None,
        description="The SLA target the message is about: acknowledge, first_response, "
        "next_response or resolve (none for assigned, resolved and requested escalations).",
    )
    covers: tuple[str, ...] = Field(
        default=(), description="A digest: the ids of the messages it carries (its own first)."
    )
    items: tuple[Notification, ...] = Field(default=(), description="A digest's messages.")
