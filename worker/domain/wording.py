"""Every text a person reads: target names and verbs, message headlines and texts, the reasons a
firing gives, timeline notes, ticket comments and the labels of message templates. Pure.

Words are chosen per SLA target (acknowledge, first_response, next_response, resolve) from one
table, never built by appending letters to a verb, and per notification kind. Adapters
(`worker.notify.templates`, `worker.writeback`) lay the words out and escape them; they do not
choose them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from types import MappingProxyType

from schemas.durations import format_duration
from schemas.messages import NotificationKind
from worker.domain.sla import DeadlineKind


def duration(value: timedelta) -> str:
    """A duration for people, as policy files write it: `1h30m`, `45s`, `0s`.

    Hours are the largest unit, because a business day's length varies; the sign is dropped
    (the text says whether the time is left or over).
    """
    return format_duration(abs(value))


def _at(value: datetime | None) -> str:
    """A point in time for people: ISO 8601 to the second, `(paused)` when a clock stands."""
    return value.isoformat(timespec="seconds") if value else "(paused)"


# --- SLA targets --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TargetWords:
    """How people speak of one SLA target."""

    label: str  # its name: "the first response target"
    verb: str  # what the holder must do: "L1 did not respond within 5m"
    done: str  # the verb done: "L3 still has not responded"
    missing: str  # a headline's state: "still no first response (L3)"


TARGETS: dict[str, TargetWords] = {
    "acknowledge": TargetWords("acknowledge", "acknowledge", "acknowledged", "not acknowledged"),
    "first_response": TargetWords("first response", "respond", "responded", "no first response"),
    "next_response": TargetWords("next response", "respond", "responded", "no next response"),
    "resolve": TargetWords("resolve", "resolve", "resolved", "not resolved"),
}


def words(target: str | None) -> TargetWords:
    """The words for `target`; neutral ones for a target this table does not know (or none)."""
    known = TARGETS.get(target or "")
    if known is not None:
        return known
    name = (target or "SLA").replace("_", " ")
    return TargetWords(name, f"meet the {name} target", f"met the {name} target", "not met")


def label(target: str) -> str:
    """How people call a target: `first response`."""
    return words(target).label


# --- notifications ------------------------------------------------------------------------

_TEXT = {
    NotificationKind.ASSIGNED: "{sev} {key} assigned to {tier}: {title}",
    NotificationKind.ESCALATED: "{sev} {key} escalated to {tier}: {reason}",
    NotificationKind.REMINDER: "{sev} {key} reminder for {tier}: {reason}",
    NotificationKind.WARNING: "{sev} {key} warning for {tier}: {reason}",
    NotificationKind.BREACH: "{sev} {key} {reason}",
    NotificationKind.RESOLVED: "{sev} {key} resolved: {title}",
}


def message_text(
    kind: NotificationKind, severity: str, key: str, tier: str, title: str, reason: str
) -> str:
    """The one-line text of a notification (`Notification.text`)."""
    return _TEXT[kind].format(sev=severity, key=key, tier=tier, title=title, reason=reason)


def headline(kind: NotificationKind, tier: str, target: str | None = None) -> str:
    """What a message's title says happened, naming the target it is about."""
    said = words(target)
    match kind:
        case NotificationKind.ASSIGNED:
            return f"assigned to {tier}"
        case NotificationKind.ESCALATED:
            return f"escalated to {tier}"
        case NotificationKind.REMINDER:
            return f"still {said.missing} ({tier})"
        case NotificationKind.WARNING:
            return f"is about to breach its {said.label} target" if target else "is about to breach"
        case NotificationKind.BREACH:
            return f"breached its {said.label} target" if target else "breached a target"
        case _:
            return "resolved"


# Labels of the packaged message templates, seen by templates as `words`.
TEMPLATE_WORDS: Mapping[str, str] = MappingProxyType(
    {
        "tier": "Tier",
        "tier_number": "tier",
        "on_call": "On call",
        "nobody": "nobody",
        "roster": "roster",
        "time_left": "Time left",
        "over_by": "Over by",
        "ticket": "Ticket",
        "escalator": "Escalator",
        "ref": "Ref",
        "notifications": "Escalator notifications",
    }
)


def comment(severity: str, kind: NotificationKind, tier: str, who: str | None, why: str) -> str:
    """The note a write-back leaves on the ticket (the adapter appends the message id)."""
    verb = "assigned to" if kind is NotificationKind.ASSIGNED else "escalated to"
    text = f"Escalator: {severity} {verb} {tier} (on call: {who or TEMPLATE_WORDS['nobody']})."
    return f"{text} {why}." if why else text


# --- firing a deadline --------------------------------------------------------------------


def warned(target: str, fraction: float, target_time: timedelta, breach: datetime | None) -> str:
    """A warning: this share of the target's time has passed."""
    return (
        f"{fraction:.0%} of the {label(target)} time ({duration(target_time)}) has passed; "
        f"it breaches at {_at(breach)}"
    )


def breached(target: str, target_time: timedelta) -> str:
    """The target's time passed."""
    return f"breached the {label(target)} target of {duration(target_time)}"


def breach_carried(target: str) -> str:
    """Added to an escalation or reminder whose deadline is also the breach."""
    return f"; the {label(target)} target is breached"


def escalated(target: str, holder: str, within: timedelta, tier: str, breach: str = "") -> str:
    """A ladder step's time passed: the next tier takes the issue."""
    said = words(target)
    return f"{holder} did not {said.verb} within {duration(within)}: escalated to {tier}{breach}"


def reminded(target: str, holder: str, following: datetime | None, breach: str = "") -> str:
    """The last tier still has not met the target."""
    said = words(target)
    return (
        f"{holder} still has not {said.done} ({said.label}){breach}; "
        f"next reminder at {_at(following)}"
    )


def stale_cycle(armed: int, current: int) -> str:
    """A firing armed for an earlier clock cycle."""
    return f"armed for clock cycle {armed}, issue is on {current}"


def stale_step(armed: int, current: int) -> str:
    """A ladder firing armed for another step."""
    return f"armed for ladder step {armed}, the clock is at {current}"


def no_target(target: str) -> str:
    """The policy lost the target since the deadline was armed."""
    return f"the policy no longer has a {label(target)} target"


def clock_is(target: str, state: str) -> str:
    """The target's clock is not running."""
    return f"the {label(target)} clock is {state}"


def already_warned(fraction: float) -> str:
    """This warning went out in this cycle."""
    return f"the {fraction:.0%} warning was sent in this cycle"


def already_breached(target: str) -> str:
    """The breach was reported in this cycle."""
    return f"the {label(target)} breach was reported in this cycle"


REPLANNED = "the ladder was re-planned since this deadline was armed"
IS_RESOLVED = "issue is resolved"


def armed(kind: DeadlineKind, target: str, step: int, fraction: float | None) -> str:
    """A deadline as the simulation lists it."""
    name = label(target)
    match kind:
        case DeadlineKind.WARN:
            return f"{name}: {fraction or 0.0:.0%} warning"
        case DeadlineKind.BREACH:
            return f"{name}: breach"
        case DeadlineKind.RESUME:
            return "snooze ends"
        case DeadlineKind.REMIND:
            return f"{name}: reminder of the last tier"
        case _:
            return f"{name}: escalation (ladder step {step + 1})"


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
