"""Jira: `jira:issue_created` / `jira:issue_updated` (with the changelog), `X-Hub-Signature`."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator

from config.sources import JiraSource
from schemas.events import EventType, IssueEvent
from worker.gateway.signatures import hub_signature
from worker.gateway.sources.common import Incoming, Mapped, build, header, parse, severity_of


class _Model(BaseModel):
    model_config = ConfigDict(extra="ignore")


class Named(_Model):
    name: str = ""


class StatusCategory(_Model):
    key: str = ""


class Status(Named):
    statusCategory: StatusCategory | None = None


class Person(_Model):
    displayName: str | None = None
    accountId: str | None = None
    name: str | None = None


class Fields(_Model):
    summary: str = ""
    priority: Named | None = None
    status: Status | None = None
    assignee: Person | None = None
    labels: list[str] = Field(default_factory=list)


class JiraIssue(_Model):
    key: str = Field(min_length=1, max_length=200)
    self_url: str | None = Field(default=None, alias="self")
    fields: Fields

    @field_validator("self_url")
    @classmethod
    def _splits(cls, value: str | None) -> str | None:
        if value is not None:
            urlsplit(value)  # a ValueError (`http://[::1/...`) names issue.self in the 422
        return value


class Item(_Model):
    field: str
    fromString: str | None = None
    toString: str | None = None


class Changelog(_Model):
    items: list[Item] = Field(default_factory=list)


class Payload(_Model):
    webhookEvent: str
    timestamp: int = Field(ge=0, le=10**14, description="Milliseconds since the epoch.")
    issue: JiraIssue
    changelog: Changelog | None = None


TRACKED = ("jira:issue_created", "jira:issue_updated", "jira:issue_deleted")


class JiraAdapter:
    name = "jira"

    def __init__(self, config: JiraSource) -> None:
        self.config = config
        self.done = {s.lower() for s in config.done_statuses}
        self.acked = {s.lower() for s in config.acknowledged_statuses}

    def authenticate(self, request: Incoming) -> None:
        signature = request.headers.get("x-hub-signature")
        hub_signature(self.config.secrets, request.body, signature, "X-Hub-Signature")

    def interpret(self, request: Incoming, payload: Any) -> Mapped:
        mapped = Mapped(delivery_id=header(request, "X-Atlassian-Webhook-Identifier"))
        kind = payload.get("webhookEvent") if isinstance(payload, dict) else None
        if isinstance(kind, str) and kind not in TRACKED:
            mapped.note = f"Jira event {kind!r} is not tracked"
            return mapped
        p = parse(Payload, payload)
        event_type = self._type(p)
        if event_type is None:
            mapped.note = "the change touches nothing Escalator tracks"
            return mapped
        mapped.events.append(self._event(p, event_type, mapped.delivery_id))
        return mapped

    def _is_done(self, status: str | None) -> bool:
        return (status or "").lower() in self.done

    def _type(self, p: Payload) -> EventType | None:
        if p.webhookEvent == "jira:issue_created":
            return EventType.OPENED
        if p.webhookEvent == "jira:issue_deleted":
            return EventType.RESOLVED
        items = {i.field.lower(): i for i in (p.changelog.items if p.changelog else [])}
        status = items.get("status")
        if status is not None:
            if self._is_done(status.toString) or self._category_done(p):
                return EventType.RESOLVED
            if self._is_done(status.fromString):
                return EventType.REOPENED
            if (status.toString or "").lower() in self.acked:
                return EventType.ACKNOWLEDGED
            return EventType.STATUS_CHANGED
        if {"priority", "assignee", "summary", "labels"} & items.keys():
            return EventType.UPDATED
        return None

    @staticmethod
    def _category_done(p: Payload) -> bool:
        status = p.issue.fields.status
        return bool(status and status.statusCategory and status.statusCategory.key == "done")

    def _event(self, p: Payload, kind: EventType, delivery: str) -> IssueEvent:
        f = p.issue.fields
        priority = [f.priority.name] if f.priority else []
        assignee = f.assignee.displayName or f.assignee.accountId if f.assignee else None
        url = None
        if p.issue.self_url:
            parts = urlsplit(p.issue.self_url)
            url = f"{parts.scheme}://{parts.netloc}/browse/{p.issue.key}"
        return build(
            event_id=f"jira:{delivery}",
            type=kind,
            occurred_at=datetime.fromtimestamp(p.timestamp / 1000, UTC),
            source=self.name,
            issue_id=p.issue.key,
            severity=severity_of(priority, self.config.priorities, self.config.default_severity),
            title=f.summary,
            status=f.status.name if f.status else "open",
            assignee=assignee,
            labels=f.labels,
            url=url,
        )
