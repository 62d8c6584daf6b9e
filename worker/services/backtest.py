"""Backtest a policy over real history: replay the recorded events of a period under it and
compare with what really happened. Reads only (a read-only session), writes nothing, needs no
Redis: the CLI (`escalator policy backtest`), the API (`POST /v1/policies/backtest`) and the
console's Backtest page run it.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

import structlog

from schemas.policy import PolicyFile
from worker.domain.backtest import Course, replay
from worker.domain.backtest_compare import Comparer, Comparison
from worker.errors import PermanentError
from worker.services.policy_loader import check_policy_text
from worker.store.backtest_views import PRUNED, issue_ids, lines, recorded
from worker.store.db import SessionFactory

log = structlog.get_logger("escalator.backtest")
_SPAN = re.compile(r"^(\d+)([smhdw])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
MAX_SPAN = timedelta(days=400)  # the longest period a backtest replays
# One backtest at a time in an api process (the API and the console): each reads and replays
# every event of its period; another asked for meanwhile is refused (429), not queued.
_RUNNING = threading.BoundedSemaphore(1)


class BadPeriod(PermanentError):
    """A period the backtest cannot read: the field is named."""


class Busy(PermanentError):
    """A backtest is already running in this process."""


class BadPolicy(PermanentError):
    """The policy to backtest does not validate: every problem, with its line."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems[:5]) or "not a policy file")
        self.problems = problems


def policy_from_text(text: str, name: str = "(request body)") -> PolicyFile:
    """The policy file of an upload or a request body, validated as `policy check` does."""
    policies, problems = check_policy_text(text, Path(name))
    if policies is None:
        raise BadPolicy([str(p) for p in problems])
    return policies


def when(value: str, now: datetime, name: str) -> datetime:
    """`30d`, `12h`, `2w` (that long before `now`) or an ISO 8601 time with its offset."""
    text = value.strip()
    if match := _SPAN.match(text):
        try:
            span = timedelta(**{_UNITS[match[2]]: int(match[1])})
        except (ArithmeticError, ValueError):  # more than 999999999 days, or too many digits
            span = timedelta.max
        if span > MAX_SPAN:
            raise BadPeriod(f"{name}: {value!r} is more than {MAX_SPAN.days} days")
        return now - span
    try:
        at = datetime.fromisoformat(text)
    except ValueError:
        raise BadPeriod(
            f"{name}: {value!r} is neither a span such as 30d, 12h, 2w nor an ISO 8601 time"
        ) from None
    if at.tzinfo is None:
        raise BadPeriod(f"{name}: {value!r} has no time zone offset (add Z or +02:00)")
    return at


def period(since: str, until: str | None, now: datetime) -> tuple[datetime, datetime]:
    """The period [since, until) (until: now), checked."""
    start = when(since, now, "since")
    end = when(until, now, "until") if until else now
    try:  # times near year 1 or 9999 with their offsets
        empty, span = end <= start, end - start
    except (ArithmeticError, ValueError):
        raise BadPeriod(f"the period since {since!r} until {until!r} is out of range") from None
    if empty:
        raise BadPeriod(f"until ({end.isoformat()}) is not after since ({start.isoformat()})")
    if span > MAX_SPAN:
        raise BadPeriod(f"the period is {span.days} days: at most {MAX_SPAN.days}")
    return start, end


def count_issues(readers: SessionFactory, since: datetime, until: datetime) -> int:
    """How many issues the backtest of this period replays (for a progress bar)."""
    with readers() as session:
        return len(issue_ids(session, since, until))


def backtest(
    readers: SessionFactory,
    policies: PolicyFile,
    since: datetime,
    until: datetime,
    zone: str = "UTC",
    top: int = 10,
    progress: Callable[[int], None] | None = None,
) -> Comparison:
    """Replay every issue with an event in [since, until) under `policies` and compare."""
    comparer = Comparer(policies, since, until, zone, top)
    by_key: dict[str, int] = {}
    with readers() as session:
        ids = issue_ids(session, since, until)
        for chunk in recorded(session, ids, since, until):
            for issue in chunk:
                if issue.events is None:
                    replayed = Course(issue.key, skipped=issue.skipped or PRUNED)
                else:
                    replayed = replay(policies, issue.key, issue.events, until)
                comparer.add(issue.real, replayed)
                by_key[issue.key] = issue.issue_id
            if progress is not None:
                progress(len(chunk))
        result = comparer.done()
        for changed in result.top:  # what happened, line by line, for those shown
            changed.real.lines[:] = lines(session, by_key[changed.key], since, until)
    log.info(
        "backtest.done",
        issues=len(ids),
        skipped=len(result.skipped),
        differences=result.differences,
        changed=result.changed_issues,
    )
    return result


def backtest_alone(
    readers: SessionFactory,
    policies: PolicyFile,
    since: datetime,
    until: datetime,
    zone: str = "UTC",
    top: int = 10,
) -> Comparison:
    """`backtest`, unless one is already running in this process: then `Busy` at once (the API
    and the console answer 429). Call it in the thread that runs it, so that the slot is held
    as long as the work goes on, even when the client went away."""
    if not _RUNNING.acquire(blocking=False):
        raise Busy("a backtest is already running, try again")
    try:
        return backtest(readers, policies, since, until, zone, top)
    finally:
        _RUNNING.release()
