"""Per-source gateway settings: secrets (several at once, for rotation) and field maps.

Parsed from `ESCALATOR_SOURCES` (JSON). A source that is absent is not served (404); a source
that is present needs a secret unless it is explicitly marked `insecure`.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator

Sev = Literal["P1", "P2", "P3", "P4"]

GITHUB_LABELS: dict[str, Sev] = {
    "sev:1": "P1",
    "sev:2": "P2",
    "sev:3": "P3",
    "sev:4": "P4",
    "p1": "P1",
    "p2": "P2",
    "p3": "P3",
    "p4": "P4",
    "critical": "P1",
    "severity: critical": "P1",
}
JIRA_PRIORITIES: dict[str, Sev] = {
    "highest": "P1",
    "blocker": "P1",
    "critical": "P1",
    "high": "P2",
    "major": "P2",
    "medium": "P3",
    "low": "P4",
    "lowest": "P4",
    "minor": "P4",
    "trivial": "P4",
}
ZENDESK_PRIORITIES: dict[str, Sev] = {"urgent": "P1", "high": "P2", "normal": "P3", "low": "P4"}
PAGERDUTY_PRIORITIES: dict[str, Sev] = {"p1": "P1", "p2": "P2", "p3": "P3", "p4": "P4", "p5": "P4"}
PAGERDUTY_URGENCIES: dict[str, Sev] = {"high": "P1", "low": "P3"}
ALERTMANAGER_SEVERITIES: dict[str, Sev] = {
    "critical": "P1",
    "page": "P1",
    "error": "P2",
    "high": "P2",
    "warning": "P3",
    "medium": "P3",
    "info": "P4",
    "low": "P4",
    "none": "P4",
}


class SourceBase(BaseModel):
    """What every source has: its secrets, the insecure switch and a fallback severity."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    secrets: tuple[SecretStr, ...] = Field(
        default=(), description="Accepted secrets; several during a rotation, any one verifies."
    )
    insecure: bool = Field(
        default=False, description="Accept unauthenticated requests (logged loudly at start-up)."
    )
    default_severity: Sev = Field(default="P3", description="When nothing maps to a severity.")

    @model_validator(mode="after")
    def _secret_or_insecure(self) -> SourceBase:
        if not self.secrets and not self.insecure:
            raise ValueError("a source needs at least one secret, or insecure: true")
        if any(not s.get_secret_value() for s in self.secrets):
            raise ValueError("an empty secret is not a secret")
        return self


class EventsSource(SourceBase):
    """`POST /v1/events`: our own IssueEvent, signed with Standard Webhooks (`whsec_...`)."""


class GithubSource(SourceBase):
    severity_labels: dict[str, Sev] = Field(
        default_factory=lambda: dict(GITHUB_LABELS),
        description="Label (matched without case) to severity; the most urgent match wins.",
    )
    member_associations: tuple[str, ...] = Field(
        default=("OWNER", "MEMBER", "COLLABORATOR"),
        description="Comment author_association values that count as your team responding.",
    )


class JiraSource(SourceBase):
    priorities: dict[str, Sev] = Field(
        default_factory=lambda: dict(JIRA_PRIORITIES),
        description="Priority name (matched without case) to severity.",
    )
    done_statuses: tuple[str, ...] = Field(
        default=("done", "resolved", "closed"), description="Statuses that resolve the issue."
    )
    acknowledged_statuses: tuple[str, ...] = Field(
        default=("in progress",), description="Statuses that acknowledge the issue."
    )


class ZendeskSource(SourceBase):
    priorities: dict[str, Sev] = Field(
        default_factory=lambda: dict(ZENDESK_PRIORITIES),
        description="Ticket priority (matched without case) to severity.",
    )
    solved_statuses: tuple[str, ...] = Field(default=("solved", "closed"))
    url_base: str | None = Field(
        default=None, description="e.g. https://acme.zendesk.com: issue URLs link to tickets."
    )


class PagerDutySource(SourceBase):
    priorities: dict[str, Sev] = Field(
        default_factory=lambda: dict(PAGERDUTY_PRIORITIES),
        description="Incident priority summary (matched without case) to severity.",
    )
    urgencies: dict[str, Sev] = Field(
        default_factory=lambda: dict(PAGERDUTY_URGENCIES),
        description="Incident urgency to severity, when the incident has no mapped priority.",
    )


class AlertmanagerSource(SourceBase):
    severity_label: str = Field(default="severity", description="The alert label to map.")
    severities: dict[str, Sev] = Field(
        default_factory=lambda: dict(ALERTMANAGER_SEVERITIES),
        description="Value of the severity label (matched without case) to severity.",
    )
    username: str | None = Field(
        default=None, description="With basic auth: the user name required (any when unset)."
    )


class Sources(BaseModel):
    """The configured sources; an absent one answers 404."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    events: EventsSource | None = None
    github: GithubSource | None = None
    jira: JiraSource | None = None
    zendesk: ZendeskSource | None = None
    pagerduty: PagerDutySource | None = None
    alertmanager: AlertmanagerSource | None = None
