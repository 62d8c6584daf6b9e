"""What every source shares: the request as received, the adapter protocol, event building."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol, TypeVar

from pydantic import BaseModel, HttpUrl, TypeAdapter, ValidationError

from config.sources import Sev
from schemas.events import EventType, IssueEvent, Severity
from worker.errors import Rejected
from worker.gateway.problems import invalid, pydantic_errors

M = TypeVar("M", bound=BaseModel)
_URL: TypeAdapter[HttpUrl] = TypeAdapter(HttpUrl)
URGENCY = {Severity.P1: 1, Severity.P2: 2, Severity.P3: 3, Severity.P4: 4}


@dataclass(frozen=True)
class Incoming:
    """One request: headers (lower-case names), the raw body, and the time it arrived."""

    headers: Mapping[str, str]
    body: bytes
    now: datetime
    window_s: float


@dataclass
class Mapped:
    """What a delivery means: its dedup id and the events it produces (maybe none, with why)."""

    delivery_id: str
    events: list[IssueEvent] = field(default_factory=list)
    note: str | None = None


class Adapter(Protocol):
    """One webhook source: how its requests are verified and what they mean."""

    name: str

    def authenticate(self, request: Incoming) -> None:
        """Raise `Rejected(401)` unless the request is genuine."""

    def interpret(self, request: Incoming, payload: Any) -> Mapped:
        """The events of an authenticated delivery; `Rejected(422)` if it does not validate."""


def header(request: Incoming, name: str) -> str:
    """A required header, or a 422 naming it."""
    value = request.headers.get(name.lower(), "").strip()
    if not value:
        raise invalid([{"field": f"header: {name}", "message": "required"}])
    if len(value) > 200:
        raise invalid([{"field": f"header: {name}", "message": "longer than 200 characters"}])
    return value


def body_digest(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


def parse(model: type[M], payload: Any) -> M:
    """The vendor payload as `model`, or a 422 naming every bad field."""
    try:
        return model.model_validate(payload)
    except ValidationError as exc:
        raise invalid(pydantic_errors(exc.errors()), "Invalid payload") from None


def severity_of(names: Iterable[str], table: Mapping[str, Sev], default: Sev) -> Severity:
    """The most urgent severity any of `names` maps to (without regard to case), else default."""
    lowered = {k.strip().lower(): v for k, v in table.items()}
    found = [Severity(lowered[n.strip().lower()]) for n in names if n.strip().lower() in lowered]
    return min(found, key=URGENCY.__getitem__) if found else Severity(default)


def build(
    *,
    event_id: str,
    type: EventType,
    occurred_at: datetime,
    source: str,
    issue_id: str,
    severity: Severity,
    title: str = "",
    status: str = "open",
    assignee: str | None = None,
    labels: Iterable[str] = (),
    url: str | None = None,
) -> IssueEvent:
    """An IssueEvent from vendor values, clipped to the contract's limits; 422 if still invalid."""
    snapshot: dict[str, Any] = {
        "id": issue_id,
        "title": title[:1000],
        "severity": severity,
        "status": (status or "open")[:100],
        "assignee": assignee[:200] if assignee else None,
        "labels": [label[:200] for label in labels][:100],
        "url": url if url and _valid_url(url) else None,
    }
    try:
        return IssueEvent.model_validate(
            {
                "event_id": event_id[:200],
                "type": type,
                "occurred_at": occurred_at,
                "source": source,
                "issue": snapshot,
            }
        )
    except ValidationError as exc:
        raise invalid(
            pydantic_errors(exc.errors(), "event."), "Payload maps to no valid event"
        ) from None


def _valid_url(url: str) -> bool:
    try:
        _URL.validate_python(url)
    except ValidationError:
        return False
    return url.startswith(("http://", "https://"))


def reject_unless(condition: bool, status: int, title: str, detail: str) -> None:
    if not condition:
        raise Rejected(status, title, detail)
