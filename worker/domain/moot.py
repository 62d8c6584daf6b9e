"""When an unsent message no longer matters. Pure: the rule, given what the issue is now.

Messages that speak for a running clock (reminders, warnings) are moot once their target is
met. An escalation notice tells a tier that it holds the issue now, and a breach notice reports
what happened: both are moot only once the issue is resolved (a tier never holds an issue
without being told). `assigned` and `resolved` messages and write-backs are never moot.
"""

from __future__ import annotations

from typing import Any

MOOT_WHEN_MET = ("reminder", "warning")
MOOT_WHEN_RESOLVED = ("escalated", *MOOT_WHEN_MET, "breach")
LIVE = ("running", "paused")


def moot(kind: str, target: str | None, lifecycle: str, clocks: list[dict[str, Any]]) -> bool:
    """Whether a message is no longer worth sending: its issue is resolved, or the target it is
    about (acknowledge, first_response, ...) is no longer live in the issue's `clocks` (not
    for a breach notice: the breach happened).

    A message without a target (an escalation someone requested) is moot only once resolved:
    an acknowledgement ends the acknowledge ladder, not a request to escalate.
    """
    if lifecycle == "resolved":
        return kind in MOOT_WHEN_RESOLVED
    if kind not in MOOT_WHEN_MET or target is None:
        return False
    return not any(c.get("target") == target and c.get("state") in LIVE for c in clocks)


def moot_reason(target: str | None, lifecycle: str) -> str:
    """What made a message moot, for its `last_error`."""
    if lifecycle == "resolved" or target is None:
        return "issue resolved"
    return f"{target} target met"
