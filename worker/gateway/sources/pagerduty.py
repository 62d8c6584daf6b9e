"""PagerDuty: V3 webhooks (`incident.*`), `X-PagerDuty-Signature: v1=<hex>[,v1=<hex>]`."""

from __future__ import annotations

from typing import Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from config.sources import PagerDutySource
from schemas.events import EventType, IssueEvent, Severity
from worker.gateway.signatures import pagerduty_signature
from worker.gateway.sources.common import Incoming, Mapped, build, header, parse, severity_of


class _Model(BaseModel):
    model_config = ConfigDict(extra="ignore")


class Reference(_Model):
    summary: str | None = None


class Incident(_Model):
    id: str = Field(min_length=1, max_length=200)
    title: str = ""
    html_url: str | None = None
    status: str = "triggered"
    urgency: str | None = None
    priority: Reference | None = None
    assignees: list[Reference] = Field(default_factory=list)


class Event(_Model):
    id: str = Field(min_length=1, max_length=150)
    event_type: str
    resource_type: str = "incident"
    occurred_at: AwareDatetime
    data: dict[str, Any]


class Payload(_Model):
    event: Event


TYPES = {
    "incident.triggered": EventType.OPENED,
    "incident.acknowledged": EventType.ACKNOWLEDGED,
    "incident.resolved": EventType.RESOLVED,
    "incident.reopened": EventType.REOPENED,
    "incident.priority_updated": EventType.UPDATED,
    "incident.reassigned": EventType.UPDATED,
}


class PagerDutyAdapter:
    name = "pagerduty"

    def __init__(self, config: PagerDutySource) -> None:
        self.config = config

    def authenticate(self, request: Incoming) -> None:
        signature = request.headers.get("x-pagerduty-signature")
        pagerduty_signature(self.config.secrets, request.body, signature)

    def interpret(self, request: Incoming, payload: Any) -> Mapped:
        mapped = Mapped(delivery_id=header(request, "X-Webhook-Id"))
        p = parse(Payload, payload)
        kind = TYPES.get(p.event.event_type)
        if kind is None or p.event.resource_type != "incident":
            mapped.note = f"PagerDuty event {p.event.event_type!r} is not tracked"
            return mapped
        incident = parse(Incident, p.event.data)
        mapped.events.append(self._event(p.event, incident, kind))
        return mapped

    def _severity(self, incident: Incident) -> Severity:
        """The mapped priority if there is one, else the urgency, else the default."""
        c = self.config
        priority = (incident.priority.summary or "") if incident.priority else ""
        if priority.strip().lower() in {k.lower() for k in c.priorities}:
            return severity_of([priority], c.priorities, c.default_severity)
        return severity_of([incident.urgency or ""], c.urgencies, c.default_severity)

    def _event(self, event: Event, incident: Incident, kind: EventType) -> IssueEvent:
        assignee = incident.assignees[0].summary if incident.assignees else None
        return build(
            event_id=f"pagerduty:{event.id}",
            type=kind,
            occurred_at=event.occurred_at,
            source=self.name,
            issue_id=incident.id,
            severity=self._severity(incident),
            title=incident.title,
            status=incident.status,
            assignee=assignee,
            url=incident.html_url,
        )
