"""Alertmanager: webhook payload version 4; one issue per alert fingerprint; bearer or basic."""

from __future__ import annotations

from typing import Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from config.sources import AlertmanagerSource
from schemas.events import EventType, IssueEvent
from worker.gateway.signatures import basic_matches, bearer_matches, unauthorized
from worker.gateway.sources.common import Incoming, Mapped, body_digest, build, parse, severity_of


class _Model(BaseModel):
    model_config = ConfigDict(extra="ignore")


class Alert(_Model):
    status: str = Field(pattern="^(firing|resolved)$")
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)
    startsAt: AwareDatetime
    endsAt: AwareDatetime | None = None
    generatorURL: str | None = None
    fingerprint: str = Field(min_length=1, max_length=100)


class Payload(_Model):
    version: str = Field(pattern="^4$")
    status: str
    receiver: str = ""
    externalURL: str | None = None
    alerts: list[Alert] = Field(max_length=1000)


class AlertmanagerAdapter:
    name = "alertmanager"

    def __init__(self, config: AlertmanagerSource) -> None:
        self.config = config

    def authenticate(self, request: Incoming) -> None:
        auth = request.headers.get("authorization")
        secrets = self.config.secrets
        if not (
            bearer_matches(secrets, auth) or basic_matches(secrets, auth, self.config.username)
        ):
            raise unauthorized("Authorization must be a configured bearer token or basic auth")

    def interpret(self, request: Incoming, payload: Any) -> Mapped:
        p = parse(Payload, payload)
        # Alertmanager sends no delivery id: an identical body is the same notification.
        mapped = Mapped(delivery_id=body_digest(request.body))
        mapped.events = [self._event(alert, p) for alert in p.alerts]
        if not mapped.events:
            mapped.note = "no alerts in the notification"
        return mapped

    def _event(self, alert: Alert, p: Payload) -> IssueEvent:
        firing = alert.status == "firing"
        at = alert.startsAt if firing or alert.endsAt is None else alert.endsAt
        severity = alert.labels.get(self.config.severity_label, "")
        labels = [f"{k}={v}" for k, v in sorted(alert.labels.items())]
        title = (
            alert.annotations.get("summary")
            or alert.labels.get("alertname")
            or alert.annotations.get("description", "")
        )
        return build(
            event_id=f"alertmanager:{alert.fingerprint}:{at.timestamp():.0f}:{alert.status}",
            type=EventType.OPENED if firing else EventType.RESOLVED,
            occurred_at=at,
            source=self.name,
            issue_id=alert.fingerprint,
            severity=severity_of(
                [severity] if severity else [],
                self.config.severities,
                self.config.default_severity,
            ),
            title=title,
            status=alert.status,
            labels=labels,
            url=alert.generatorURL or p.externalURL,
        )
