"""What the timeline and the outbox say about delivering a message, and about re-planning."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import datetime


def what(kind: str, writeback: bool) -> str:
    """What a message is, for people: its kind, or `write-back`."""
    return "write-back" if writeback else kind


def sent(what: str, tier: str, channel: str, digest: str | None = None) -> str:
    return f"{what} sent to {tier} via {channel}" + (f" (digest {digest})" if digest else "")


def dead(what: str, channel: str, attempts: int, error: str) -> str:
    return f"{what} to {channel} is dead after {attempts} attempts: {error}"


def writeback_failed(channel: str, attempts: int, retry_in_s: float, error: str) -> str:
    return (
        f"write-back via {channel} failed (attempt {attempts}), retry in {retry_in_s:.1f}s: {error}"
    )


def mooted(targets: Collection[str] | None, at: datetime) -> str:
    """Why unsent messages were cancelled: their targets met, or the issue resolved."""
    why = "issue resolved" if targets is None else f"{', '.join(sorted(targets))} met"
    return f"{why}: cancelled at {at.isoformat()}"


def moot_before_sending(reason: str) -> str:
    return f"{reason} before it was sent"


def moot_before_digest(reason: str) -> str:
    return f"{reason} before the digest"


def moot_with_digest(digest: str) -> str:
    return f"moot before digest {digest} was sent"


def in_digest(digest: str) -> str:
    return f"in digest {digest}"


def digest_text(texts: Sequence[str]) -> str:
    """A digest's text: one line per message it carries."""
    return f"{len(texts)} notifications:\n" + "\n".join(f"- {text}" for text in texts)


def escalated_from(previous: str, tier: str, reason: str) -> str:
    """The timeline line of an escalation: from which tier to which, and why."""
    return f"escalated {previous} → {tier}: {reason}"


POLICY_APPLIED = "policy applied"


def policy_applied(before: str, after: str, note: str) -> str:
    return f"{POLICY_APPLIED}: {before} → {after}: {note}"
