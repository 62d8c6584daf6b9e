"""Writing notifications into the outbox, in the transaction of the change that causes them.

One row per channel that the tier holding the issue routes this kind of message to, plus one
write-back row on a reassignment when the policy file maps the issue's source to an adapter.
A row for a channel with a `digest` window is held until the window closes; the dispatcher then
sends everything held for that channel as one message.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import datetime, timedelta

from schemas.messages import IssueRef, Notification, NotificationKind
from schemas.policy import PolicyFile
from worker.domain import MOOT_WHEN_MET, MOOT_WHEN_RESOLVED, message_text, people, wording
from worker.domain.states import OutboxState, is_writeback, writeback_channel
from worker.services import repositories
from worker.store.repository import ARMED
from worker.store.rows import DeadlineRow, IssueRow, OutboxRow

WRITEBACK_KINDS = (NotificationKind.ASSIGNED, NotificationKind.ESCALATED)


def new_message_id() -> str:
    """A stable, unique message id (`webhook-id`) that receivers can dedupe on."""
    return f"msg_{uuid.uuid4().hex}"


class Outbox:
    """The outbox as one transaction writes it: the rows it wrote per issue (an event later in
    the same transaction can make them moot) and the digest windows it found open. A unit of
    work holds one (`uow.outbox`)."""

    def __init__(self, rows: repositories.Outbox) -> None:
        self.rows = rows
        self.fresh: dict[IssueRow, list[OutboxRow]] = {}
        self.windows: dict[str, datetime] = {}


def _due_at(
    deadlines: Iterable[DeadlineRow], kind: NotificationKind, at: datetime
) -> datetime | None:
    """The deadline the message is about: the holding tier's next one, or the breached one."""
    if kind is NotificationKind.RESOLVED:
        return None
    if kind is NotificationKind.BREACH:
        return max(
            (d.due_at for d in deadlines if d.kind == "breach" and d.due_at <= at), default=None
        )
    due = [
        d.due_at
        for d in deadlines
        if d.state == ARMED and d.kind in ("escalate", "remind") and d.due_at >= at
    ]
    return min(due, default=None)


def _send_at(outbox: Outbox, policies: PolicyFile, channel: str, now: datetime) -> datetime:
    """When a new row for `channel` is due: now, or when its open digest window closes."""
    config = policies.channels.get(channel)
    window = getattr(config, "digest", None)
    if not window:
        return now
    windows = outbox.windows
    end = windows.get(channel)
    if end is None or end <= now:
        end = outbox.rows.window_end(channel, now)
        end = end if end is not None else now + timedelta(seconds=window.total_seconds())
        windows[channel] = end
    return end


def queue_notifications(
    outbox: Outbox,
    issue: IssueRow,
    kind: NotificationKind,
    policies: PolicyFile,
    at: datetime,
    now: datetime,
    reason: str = "",
    deadlines: Iterable[DeadlineRow] = (),
    target: str | None = None,
) -> list[str]:
    """One outbox row per channel the tier routes `kind` to (and a write-back); their ids.

    `at` is when the cause happened (shown in the message); `now` is when the row is written,
    from which its delivery is due. `deadlines` are the issue's deadlines as the transaction
    leaves them (the caller holds them): the message tells the time left from them. `target`
    is the SLA target a fired deadline belongs to: meeting it makes the messages moot.
    """
    tier = policies.tier(issue.tier)
    channels = list(tier.channels_for(kind.value) if tier else ("log",))
    adapter = policies.writeback.get(issue.source)
    if adapter is not None and kind in WRITEBACK_KINDS:
        channels.append(writeback_channel(adapter))
    text = message_text(kind, issue.severity, issue.key, issue.tier, issue.title, reason)
    ref = IssueRef(
        key=issue.key,
        source=issue.source,
        id=issue.external_id,
        title=issue.title,
        severity=issue.severity,
        url=issue.url,
    )
    due_at = _due_at(deadlines, kind, at) if channels else None
    fresh = outbox.fresh.setdefault(issue, [])
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
            reason=reason,
            tier_number=issue.tier_index + 1,
            people=people(policies, issue.tier),
            due_at=due_at,
            target=target,
        )
        row = OutboxRow(
            id=message.id,
            issue=issue,
            channel=channel,
            kind=kind.value,
            target=target,
            payload=message.model_dump(mode="json"),
            state=OutboxState.PENDING,
            attempts=0,
            next_attempt_at=_send_at(outbox, policies, channel, now),
            created_at=now,
        )
        outbox.rows.add(row)
        fresh.append(row)
        ids.append(message.id)
    return ids


def _kinds(targets: frozenset[str] | None) -> tuple[str, ...]:
    return MOOT_WHEN_RESOLVED if targets is None else MOOT_WHEN_MET


def cancel_fresh(
    outbox: Outbox, issue: IssueRow, targets: frozenset[str] | None, now: datetime
) -> int:
    """Cancel the issue's unsent messages written in this transaction that are now moot: those
    about one of `targets` (met), or with `targets` None (resolved) all that can be moot."""
    count = 0
    for row in outbox.fresh.get(issue, []):
        if (
            row.kind in _kinds(targets)
            and (targets is None or row.target in targets)
            and row.state == OutboxState.PENDING
            and not is_writeback(row.channel)
        ):
            row.state = OutboxState.CANCELLED
            row.last_error = wording.mooted(targets, now)
            count += 1
    return count


def cancel_stored(
    outbox: Outbox, issue_ids: Iterable[int], targets: frozenset[str] | None, now: datetime
) -> int:
    """Cancel what earlier transactions wrote for these issues that is now moot (as in
    `cancel_fresh`): one SELECT, and one UPDATE when there is something to cancel.

    Write-backs are kept, and so is a digest waiting for a retry: it carries other issues'
    messages too, and the dispatcher decides on it when it sends (`digest.row_moot`).
    """
    ids = list(issue_ids)
    if not ids:
        return 0
    fresh = [row.id for rows in outbox.fresh.values() for row in rows]
    candidates = outbox.rows.moot_candidates(ids, _kinds(targets), targets, fresh)
    moot = [message_id for message_id, payload in candidates if not payload.get("covers")]
    if not moot:
        return 0
    return outbox.rows.cancel(moot, wording.mooted(targets, now))


def cancel_pending(
    outbox: Outbox, issue: IssueRow, targets: frozenset[str] | None, now: datetime
) -> int:
    """Cancel the issue's moot unsent messages, wherever written; how many."""
    count = cancel_fresh(outbox, issue, targets, now)
    if issue.id is not None:
        count += cancel_stored(outbox, [issue.id], targets, now)
    return count
