"""Zendesk: ticket event webhooks (`zen:event-type:ticket.*`), base64 HMAC of timestamp + body."""

from __future__ import annotations

from typing import Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from config.sources import ZendeskSource
from schemas.events import EventType, IssueEvent
from worker.gateway.signatures import zendesk_signature
from worker.gateway.sources.common import Incoming, Mapped, build, parse, severity_of

PREFIX = "zen:event-type:ticket."


class _Model(BaseModel):
    model_config = ConfigDict(extra="ignore", coerce_numbers_to_str=True)


class Detail(_Model):
    id: str = Field(min_length=1, max_length=100)
    subject: str | None = None
    status: str | None = None
    priority: str | None = None
    assignee_id: str | None = None
    tags: list[str] | None = None


class Payload(_Model):
    type: str
    id: str = Field(min_length=1, max_length=200)
    time: AwareDatetime
    detail: Detail
    event: dict[str, Any] = Field(default_factory=dict)


UPDATES = ("priority_changed", "agent_assignment_changed", "subject_changed", "tags_changed")


class ZendeskAdapter:
    name = "zendesk"

    def __init__(self, config: ZendeskSource) -> None:
        self.config = config
        self.solved = {s.lower() for s in config.solved_statuses}

    def authenticate(self, request: Incoming) -> None:
        zendesk_signature(
            self.config.secrets,
            request.body,
            request.headers.get("x-zendesk-webhook-signature"),
            request.headers.get("x-zendesk-webhook-signature-timestamp"),
            request.now,
            request.window_s,
        )

    def interpret(self, request: Incoming, payload: Any) -> Mapped:
        p = parse(Payload, payload)
        mapped = Mapped(delivery_id=p.id)
        if not p.type.startswith(PREFIX):
            mapped.note = f"Zendesk event {p.type!r} is not a ticket event"
            return mapped
        kind = self._type(p.type[len(PREFIX) :], p)
        if kind is None:
            mapped.note = f"{p.type} changes nothing Escalator tracks"
            return mapped
        mapped.events.append(self._event(p, kind))
        return mapped

    def _type(self, what: str, p: Payload) -> EventType | None:
        if what == "created":
            return EventType.OPENED
        if what == "status_changed":
            current, previous = _pair(p.event)
            if current in self.solved:
                return EventType.RESOLVED
            if previous in self.solved:
                return EventType.REOPENED
            return EventType.STATUS_CHANGED
        if what in UPDATES:
            return EventType.UPDATED
        if what == "comment_added":
            comment = p.event.get("comment")
            if not isinstance(comment, dict):
                return None
            author = comment.get("author")
            staff = isinstance(author, dict) and author.get("is_staff") is True
            if not staff:
                return EventType.CUSTOMER_REPLIED
            return EventType.RESPONDED if comment.get("is_public", True) is True else None
        return None

    def _event(self, p: Payload, kind: EventType) -> IssueEvent:
        d = p.detail
        base = self.config.url_base
        return build(
            event_id=f"zendesk:{p.id}",
            type=kind,
            occurred_at=p.time,
            source=self.name,
            issue_id=d.id,
            severity=severity_of(
                [d.priority] if d.priority else [],
                self.config.priorities,
                self.config.default_severity,
            ),
            title=d.subject or "",
            status=(d.status or "open").lower(),
            assignee=d.assignee_id,
            labels=d.tags or (),
            url=f"{base.rstrip('/')}/agent/tickets/{d.id}" if base else None,
        )


def _pair(event: dict[str, Any]) -> tuple[str, str]:
    """(current, previous) of a status change, lower case."""
    current, previous = event.get("current"), event.get("previous")
    if isinstance(current, dict):
        current = current.get("status")
    if isinstance(previous, dict):
        previous = previous.get("status")
    return str(current or "").lower(), str(previous or "").lower()
