"""The inbound contract: one `IssueEvent` per thing that happened to an issue in a ticket system."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    HttpUrl,
    ValidationError,
    WithJsonSchema,
    field_validator,
    model_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError


class Severity(StrEnum):
    """Severity, P1 most urgent. Producers may also say critical/high/medium/low."""

    P1 = "P1"
    P2 = "P2"
    P3 = "P3"
    P4 = "P4"


SEVERITY_ALIASES: dict[str, Severity] = {
    "p1": Severity.P1,
    "critical": Severity.P1,
    "p2": Severity.P2,
    "high": Severity.P2,
    "p3": Severity.P3,
    "medium": Severity.P3,
    "p4": Severity.P4,
    "low": Severity.P4,
}


def _severity(value: Any) -> Any:
    if isinstance(value, str):
        found = SEVERITY_ALIASES.get(value.strip().lower())
        if found is None:
            allowed = "P1, P2, P3, P4, critical, high, medium, low"
            raise ValueError(f"unknown severity {value!r}; expected one of {allowed}")
        return found
    return value


class EventType(StrEnum):
    """What happened to the issue."""

    OPENED = "issue.opened"
    UPDATED = "issue.updated"
    ACKNOWLEDGED = "issue.acknowledged"
    RESPONDED = "issue.responded"
    STATUS_CHANGED = "issue.status_changed"
    RESOLVED = "issue.resolved"
    REOPENED = "issue.reopened"
    CUSTOMER_REPLIED = "issue.customer_replied"  # the requester wrote: next response is due
    ESCALATION_REQUESTED = "issue.escalation_requested"  # someone asks to escalate it now
    SNOOZED = "issue.snoozed"  # the acknowledge ladder waits until `snooze_until`


def _utc(value: datetime) -> datetime:
    try:
        return value.astimezone(UTC)
    except OverflowError:  # e.g. 9999-12-31T23:59:59-01:00: its UTC form is in year 10000
        raise ValueError(f"{value.isoformat()} is outside years 1-9999 in UTC") from None


def _no_nul(value: Any) -> Any:
    """Refuse text, or a list of texts, holding a NUL byte: PostgreSQL cannot store one, so no
    database is given one."""
    if isinstance(value, str) and "\x00" in value:
        raise ValueError("contains a NUL byte (\\x00)")
    if isinstance(value, list | tuple):
        for n, item in enumerate(value):
            if isinstance(item, str) and "\x00" in item:
                raise ValueError(f"item {n} contains a NUL byte (\\x00)")
    return value


UtcDatetime = Annotated[AwareDatetime, AfterValidator(_utc)]
SeverityField = Annotated[
    Severity,
    BeforeValidator(_severity),
    WithJsonSchema(
        {
            "type": "string",
            "enum": [s.value for s in Severity] + [a for a in SEVERITY_ALIASES if a[0] != "p"],
            "description": "P1 (most urgent) to P4; aliases critical, high, medium, low; "
            "matched without regard to case.",
        }
    ),
]
Name = Annotated[str, Field(min_length=1, max_length=200)]


class IssueSnapshot(BaseModel):
    """The issue as the ticket system sees it when the event happened."""

    model_config = ConfigDict(frozen=True, extra="forbid", str_strip_whitespace=True)

    id: Name = Field(description="The issue's id in its ticket system, e.g. OPS-123.")
    title: str = Field(default="", max_length=1000)
    severity: SeverityField = Field(description="P1-P4, or critical/high/medium/low.")
    status: str = Field(default="open", max_length=100)
    assignee: str | None = Field(default=None, max_length=200)
    labels: tuple[Annotated[str, Field(max_length=200)], ...] = Field(default=(), max_length=100)
    url: HttpUrl | None = None

    @field_validator("*", mode="before")
    @classmethod
    def _refuse_nul(cls, value: Any) -> Any:
        return _no_nul(value)


class IssueEvent(BaseModel):
    """One event about one issue. `event_id` is the dedup key: a repeat is a recorded no-op."""

    model_config = ConfigDict(frozen=True, extra="forbid", str_strip_whitespace=True)

    event_id: Name = Field(description="Unique per event; repeats are ignored.")
    type: EventType
    occurred_at: UtcDatetime = Field(
        description="When it happened, with a time zone offset; events are ordered by it."
    )
    source: Annotated[
        str, Field(min_length=1, max_length=50, pattern=r"^[a-z0-9][a-z0-9_.-]*$")
    ] = Field(description="The ticket or alerting system, e.g. jira, github, alertmanager.")
    issue: IssueSnapshot
    snooze_until: UtcDatetime | None = Field(
        default=None, description="With issue.snoozed only: when the acknowledge ladder resumes."
    )
    actor: Name | None = Field(
        default=None,
        description=(
            "Who did it, when a person acted (the console's sign-in name, the management API's "
            "X-Escalator-Actor header); shown on the issue's timeline."
        ),
    )

    @field_validator("*", mode="before")
    @classmethod
    def _refuse_nul(cls, value: Any) -> Any:
        return _no_nul(value)

    @model_validator(mode="after")
    def _snooze_until_goes_with_snoozed(self) -> IssueEvent:
        if self.type is EventType.SNOOZED and self.snooze_until is None:
            raise ValueError("snooze_until is required for issue.snoozed")
        if self.type is not EventType.SNOOZED and self.snooze_until is not None:
            raise ValueError("snooze_until goes with issue.snoozed only")
        return self

    @property
    def issue_key(self) -> str:
        """The issue's key across sources: `source:id`."""
        return f"{self.source}:{self.issue.id}"


@dataclass(frozen=True, slots=True)
class EventWindow:
    """How far from now an event's `occurred_at` may lie: the door's guard against bad clocks.

    An event more than `max_skew` ahead of the receiving clock, or older than `max_age`, is
    refused (a producer's clock gone wrong, Go's zero time, a Unix epoch by mistake). `max_age`
    is generous by design, so that a backlog can still be imported.
    """

    max_skew: timedelta
    max_age: timedelta

    @classmethod
    def of_seconds(cls, max_skew_s: float, max_age_s: float) -> EventWindow:
        """The window from settings given in seconds."""
        return cls(timedelta(seconds=max_skew_s), timedelta(seconds=max_age_s))

    def problem(self, occurred_at: datetime, now: datetime) -> str | None:
        """Why `occurred_at` lies outside the window around `now`, or None when it does not."""
        ahead = occurred_at - now  # a difference of aware datetimes never overflows
        if ahead > self.max_skew:
            return (
                f"lies {_span(ahead)} in the future; at most {_span(self.max_skew)} "
                "of clock skew is accepted"
            )
        if -ahead > self.max_age:
            return f"lies {_span(-ahead)} in the past; at most {_span(self.max_age)} is accepted"
        return None

    def check(self, event: IssueEvent, now: datetime) -> None:
        """Raise a `ValidationError` naming `occurred_at` when `event` lies outside the window."""
        found = self.problem(event.occurred_at, now)
        if found is not None:
            error = InitErrorDetails(
                type=PydanticCustomError("time_window", found),
                loc=("occurred_at",),
                input=event.occurred_at.isoformat(),
            )
            raise ValidationError.from_exception_data("IssueEvent", [error])


def _span(value: timedelta) -> str:
    """A duration for people, to the second: `366d`, `5m`, `2d3h0m7s` reads as `2d3h7s`."""
    rest = int(value.total_seconds())
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        count, rest = divmod(rest, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts) or "0s"
