"""Contracts at Escalator's boundaries: pydantic models, no I/O."""

from schemas.events import EventType, IssueEvent, IssueSnapshot, Severity
from schemas.messages import Notification, NotificationKind
from schemas.policy import PolicyFile

__all__ = [
    "EventType",
    "IssueEvent",
    "IssueSnapshot",
    "Notification",
    "NotificationKind",
    "PolicyFile",
    "Severity",
]
