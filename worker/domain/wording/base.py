"""How people speak of time and of the SLA targets: the words every other text is made of."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from schemas.durations import format_duration


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
