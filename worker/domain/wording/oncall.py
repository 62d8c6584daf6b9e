"""What people read about a tier that reaches nobody: `policy check`, start-up logs, console."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from worker.domain.oncall import Gap
from worker.domain.wording.base import duration

NO_CHANNEL = "escalations reach no channel (none routed, or only log channels)"


def moment(value: datetime) -> str:
    """A gap's bound for people: `Sat 2026-12-05 18:00 UTC`."""
    return value.astimezone(UTC).strftime("%a %Y-%m-%d %H:%M UTC")


def span(value: timedelta) -> str:
    """How long a gap lasts: `2 days`, `1 day 6h`, `3h30m`."""
    days, rest = divmod(value, timedelta(days=1))
    if not days:
        return duration(rest)
    whole = f"{days} day" + ("s" if days > 1 else "")
    hours = rest // timedelta(hours=1)
    return f"{whole} {hours}h" if hours else whole


def gap_text(gap: Gap) -> str:
    """One line per gap: `tier L2: nobody on call from Sat ... to Mon ... (2 days)`."""
    if gap.reason == "no_channel":
        return f"tier {gap.tier}: {NO_CHANNEL}"
    if gap.start is None:
        return f"tier {gap.tier}: nobody on call"
    if gap.end is None:
        return f"tier {gap.tier}: nobody on call from {moment(gap.start)} on, with no end"
    return (
        f"tier {gap.tier}: nobody on call from {moment(gap.start)} to {moment(gap.end)} "
        f"({span(gap.end - gap.start)})"
    )
