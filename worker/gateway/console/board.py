"""What the board and the issue page show of an issue: who holds it, and its SLA countdowns.

A countdown is computed from the issue's clock (`clock_of`) and its policy's targets with the
domain's own functions (`sla.elapsed`, `sla.due_at`), so it agrees with the armed deadlines,
business calendars included: a running target counts down to its breach, a paused one says so,
a met one is done.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from schemas.policy import PolicyFile
from worker.domain import ClockState, sla, wording
from worker.domain.oncall import on_call
from worker.store import views
from worker.store.models import Issue
from worker.store.policy_versions import policies_for
from worker.store.repository import clock_of

NEAR = 0.25  # a countdown turns amber when less than this share of its target time is left


@dataclass(frozen=True, slots=True)
class Countdown:
    """One SLA target of an issue, as the board shows it."""

    target: str
    label: str
    state: str  # running | paused | met | idle
    due: datetime | None = None  # when the target's time runs out (running only)
    budget_s: float = 0.0  # the target time, to colour the countdown as it nears
    breached: bool = False

    def text(self, now: datetime) -> str:
        """`4m 12s left`, `paused`, `3s over`, `met`, `not started` (the script keeps it live)."""
        if self.state == "running" and self.due is not None:
            left = self.due - now
            over = left < timedelta(0)
            return f"{_span(left)} over" if over else f"{_span(left)} left"
        return {"paused": "paused", "met": "met"}.get(self.state, "not started")

    def tone(self, now: datetime) -> str:
        """ok, near or over: the countdown's colour."""
        if self.state != "running" or self.due is None:
            return "breached" if self.breached else self.state
        left = (self.due - now).total_seconds()
        if left < 0:
            return "over"
        return "near" if self.budget_s and left < NEAR * self.budget_s else "ok"


def _span(delta: timedelta) -> str:
    seconds = int(abs(delta.total_seconds()))
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {minutes}m"
    if minutes:
        return f"{minutes}m {secs}s"
    return f"{secs}s"


@dataclass(frozen=True, slots=True)
class Row:
    """An issue on the board."""

    key: str
    source: str
    external_id: str
    title: str
    severity: str
    lifecycle: str
    status: str
    tier: str
    holder: str | None
    policy: str
    url: str | None
    cycle_started_at: datetime
    countdowns: tuple[Countdown, ...] = field(default=())

    @property
    def breached(self) -> bool:
        """A target's time has run out (now or earlier in this cycle)."""
        return any(c.breached for c in self.countdowns)


def countdowns(issue: Issue, policies: PolicyFile | None, now: datetime) -> tuple[Countdown, ...]:
    """Each SLA target of the issue's current cycle, from its clock and its policy's target."""
    policy = policies.policy(issue.policy_name) if policies is not None else None
    found: list[Countdown] = []
    for clock in clock_of(issue).targets:
        spec = policy.target(clock.target) if policy is not None else None
        label = wording.label(clock.target)
        budget = spec.target_time.total_seconds() if spec is not None else 0.0
        if clock.state is ClockState.RUNNING and spec is not None:
            spent = sla.elapsed(clock, spec, now)
            left = spec.target_time - spent
            due = sla.due_at(clock, spec, spec.target_time) if left > timedelta(0) else None
            due = due or now + left  # over: as far behind now as it is over
            breached = clock.breached or left <= timedelta(0)
            found.append(Countdown(clock.target, label, "running", due, budget, breached))
        else:
            state = clock.state.value if clock.state is not ClockState.RUNNING else "paused"
            found.append(Countdown(clock.target, label, state, None, budget, clock.breached))
    return tuple(found)


def row_of(issue: Issue, policies: PolicyFile | None, now: datetime) -> Row:
    """The board's row of an issue; who holds it is whoever is on call for its tier now."""
    holder = on_call(policies, issue.tier, now) if policies is not None else None
    return Row(
        key=issue.key,
        source=issue.source,
        external_id=issue.external_id,
        title=issue.title,
        severity=issue.severity,
        lifecycle=issue.lifecycle,
        status=issue.status,
        tier=issue.tier,
        holder=holder or issue.assignee,
        policy=issue.policy_name,
        url=issue.url,
        cycle_started_at=issue.cycle_started_at,
        countdowns=countdowns(issue, policies, now),
    )


@dataclass(frozen=True, slots=True)
class Filters:
    """The board's filters, as the form sends them (empty: any)."""

    source: str = ""
    severity: str = ""
    tier: str = ""
    policy: str = ""
    breached: bool = False

    @property
    def active(self) -> bool:
        return bool(self.source or self.severity or self.tier or self.policy or self.breached)


def board(
    session: Session, current: PolicyFile | None, filters: Filters, now: datetime
) -> list[Row]:
    """The open issues the filters let through, most urgent first."""
    issues = views.open_issues(
        session, filters.source, filters.severity, filters.tier, filters.policy
    )
    rows = [row_of(i, policies_of(session, i, current), now) for i in issues]
    if filters.breached:
        rows = [r for r in rows if r.breached]
    return rows


def policies_of(session: Session, issue: Issue, current: PolicyFile | None) -> PolicyFile | None:
    """The policy file the issue runs under (the version it keeps), else the current one."""
    if current is None:
        return None
    return policies_for(session, issue.policy_version, current)
