"""Timeline notes: what the timeline says an event or a clock did."""

from __future__ import annotations

from datetime import datetime, timedelta

from worker.domain.wording.base import duration, label

# --- timeline notes of events -------------------------------------------------------------

OPENED_AGAIN = "opened again after it was resolved: the clocks start again at the first tier"
OPENED_AGAIN_REASON = "opened again after it was resolved"
REOPENED = "reopened: the clocks start again at the first tier"
REOPENED_REASON = "reopened"
UPDATED = "details updated"
CUSTOMER_REPLIED = "customer update: next response due"
NO_NEXT_RESPONSE = "recorded; the policy has no next-response target"
FIRST_STILL_DUE = "recorded; the first response is still due"
NEXT_ALREADY_DUE = "recorded; a next response is already due"
SNOOZE_NOT_AFTER = "snooze_until is not after the event"
SNOOZE_GONE = "that snooze was replaced or ended"
SNOOZE_ENDED = "snooze ended"
RESOLVED_NOTE = "resolved"
ALREADY_RESOLVED = "issue is already resolved"
SIMULATION_STOPPED = "reminders go on at the same interval until met (not simulated further)"


def paused(target: str, status: str | None, left: timedelta) -> str:
    """A clock stopped, by a pausing status (or, with `status` None, by a snooze)."""
    why = f"status {status!r}" if status is not None else "snoozed"
    return f"{label(target)} clock paused ({why}) with {_left(left)}"


def resumed(target: str, left: timedelta) -> str:
    """A clock runs again."""
    return f"{label(target)} clock resumed with {_left(left)}"


def _left(left: timedelta) -> str:
    """What a paused or resumed clock has left of its target."""
    return f"{duration(left)} left" if left > timedelta() else "its target already passed"


def opened(severity: str, policy: str) -> str:
    """A new issue's timeline note."""
    return f"opened as {severity} under policy {policy}"


def opened_reason(policy: str) -> str:
    """What the first tier is told of a new issue."""
    return f"opened under policy {policy}"


def replanned(policy: str, since: datetime) -> str:
    """The targets were planned again under `policy` from the cycle's start."""
    return f"re-planned under policy {policy} from {since.isoformat(timespec='seconds')}"


def severity_changed(old: str, new: str, then: str) -> str:
    """The severity changed, and `then` happened (the re-plan)."""
    return f"severity {old} → {new}: {then}"


def status_changed(old: str, new: str) -> str:
    """The issue's status changed."""
    return f"status {old!r} → {new!r}"


def responded(acknowledged: bool, met: list[str]) -> str:
    """An acknowledgement (or a response) and the targets it met."""
    verb = "acknowledged" if acknowledged else "responded to"
    return f"{verb}: met {', '.join(label(n) for n in sorted(met)) or 'nothing new'}"


def already(lifecycle: str) -> str:
    """An acknowledgement or response for an issue already past that."""
    return f"issue is already {lifecycle}"


def requested(old: str, new: str, target: str | None = None) -> str:
    """Someone asked for an escalation, and got it (up `target`'s ladder, if one moved)."""
    ladder = f" ({label(target)} ladder)" if target else ""
    return f"escalation requested: {old} → {new}{ladder}"


def requested_by(source: str) -> str:
    """What the new tier is told of an escalation someone requested."""
    return f"escalation requested by {source}"


def last_tier(tier: str) -> str:
    """An escalation was requested at the last tier."""
    return f"escalation requested, but {tier} is the last tier"


def snoozed(until: datetime) -> str:
    """The issue is snoozed."""
    return f"snoozed until {until.isoformat(timespec='seconds')}"


def resolved_again(at: datetime) -> str:
    """A later resolution of a resolved issue."""
    return f"already resolved; resolved again at {at.isoformat()}"


def older_than(what: str, at: datetime) -> str:
    """An event older than the last `update` or `lifecycle event`: ignored."""
    return f"older than the last {what} ({at.isoformat()})"


def event_line(event_type: str, note: str, actor: str | None = None) -> str:
    """The timeline line of an event: its type and what it did, and who did it if a person."""
    line = f"{event_type}: {note}"
    return f"{line} (by {actor})" if actor else line
