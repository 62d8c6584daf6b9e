"""Writing notifications into the outbox, in the transaction of the change that causes them."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy.orm import Session

from schemas.messages import IssueRef, Notification, NotificationKind
from schemas.policy import PolicyFile
from worker.store.models import Issue, OutboxMessage

_TEXT = {
    NotificationKind.ASSIGNED: "{sev} {key} assigned to {tier}: {title}",
    NotificationKind.ESCALATED: "{sev} {key} escalated to {tier}: {reason}",
    NotificationKind.REMINDER: "{sev} {key} reminder for {tier}: {reason}",
    NotificationKind.WARNING: "{sev} {key} warning for {tier}: {reason}",
    NotificationKind.BREACH: "{sev} {key} {reason}",
    NotificationKind.RESOLVED: "{sev} {key} resolved: {title}",
}


def new_message_id() -> str:
    """A stable, unique message id (`webhook-id`) that receivers can dedupe on."""
    return f"msg_{uuid.uuid4().hex}"


def queue_notifications(
    session: Session,
    issue: Issue,
    kind: NotificationKind,
    policies: PolicyFile,
    at: datetime,
    now: datetime,
    reason: str = "",
) -> list[str]:
    """One outbox row per channel of the tier holding the issue; returns their ids.

    `at` is when the cause happened (shown in the message); `now` is when the row is written,
    from which its delivery is due.
    """
    tier = policies.tier(issue.tier)
    channels = tier.channels if tier else ("log",)
    text = _TEXT[kind].format(
        sev=issue.severity, key=issue.key, tier=issue.tier, title=issue.title, reason=reason
    )
    ref = IssueRef(
        key=issue.key,
        source=issue.source,
        id=issue.external_id,
        title=issue.title,
        severity=issue.severity,
        url=issue.url,
    )
    ids = []
    for channel in channels:
        message = Notification(
            id=new_message_id(),
            kind=kind,
            issue=ref,
            tier=issue.tier,
            assignee=issue.assignee,
            text=text,
            occurred_at=at,
        )
        session.add(
            OutboxMessage(
                id=message.id,
                issue=issue,
                channel=channel,
                kind=kind.value,
                payload=message.model_dump(mode="json"),
                state="pending",
                attempts=0,
                next_attempt_at=now,
                created_at=now,
            )
        )
        ids.append(message.id)
    return ids
