"""Messages: their headlines and texts per kind and target, ticket comments, and the reasons a
firing gives."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from types import MappingProxyType

from schemas.messages import NotificationKind
from worker.domain.sla import DeadlineKind
from worker.domain.wording.base import TARGETS, _at, duration, label, words

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
    # "responded" alone could be the first or a next response: then the target is named too
    shared = sum(other.verb == said.verb for other in TARGETS.values()) > 1
    which = f" ({said.label})" if shared else ""
    return f"{holder} still has not {said.done}{which}{breach}; next reminder at {_at(following)}"


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
