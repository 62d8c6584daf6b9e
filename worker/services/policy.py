"""Policy operations on stored issues: move open issues onto the current file; explain one.

`escalator policy apply --replan` and `escalator policy explain` call these. Each issue is
re-planned in a transaction of its own (locked like any other change to it), so a long run
never holds up ingest or the workers, and a crash half-way leaves every issue consistent.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from schemas.durations import format_duration
from schemas.events import Severity
from schemas.policy import IssueFacts, PolicyFile
from worker.domain import ClockState, elapsed, explain_match, label, match_policy, replan, wording
from worker.services.history import Loaded
from worker.services.uow import Effects, Units
from worker.store import repository as repo
from worker.store.db import SessionFactory
from worker.store.models import Deadline, Issue, Key
from worker.store.policy_versions import policies_for, version_of
from worker.store.rows import IssueRow


def facts_of_issue(issue: Issue | IssueRow) -> IssueFacts:
    """What policy matching sees of a stored issue."""
    return IssueFacts.of(
        Severity(issue.severity),
        issue.source,
        tuple(issue.labels),
        issue.status,
        issue.external_id,
        issue.title,
        issue.assignee,
        issue.url,
    )


@dataclass
class ReplanReport:
    """How many open issues moved onto the current version, and what Redis must learn."""

    version: str
    replanned: int = 0
    effects: Effects = field(default_factory=Effects)


def open_issue_count(sessions: SessionFactory, version: str) -> int:
    """Open issues not yet on `version`."""
    with sessions() as session:
        query = select(func.count()).select_from(Issue).where(Issue.lifecycle != "resolved")
        return int(session.scalar(query.where(Issue.policy_version != version)) or 0)


def replan_open(
    units: Units,
    policies: PolicyFile,
    now: datetime,
    progress: Callable[[int], None] | None = None,
) -> ReplanReport:
    """Put every open issue on the current policy version and re-plan its deadlines (one unit
    of work each: its deadlines are indexed after its commit)."""
    report = ReplanReport(units.remember(policies, now))
    after = 0
    while True:
        with units.readers() as session:
            rows = list(
                session.execute(
                    select(Issue.id, Issue.source, Issue.external_id)
                    .where(
                        Issue.id > after,
                        Issue.lifecycle != "resolved",
                        Issue.policy_version != report.version,
                    )
                    .order_by(Issue.id)
                    .limit(200)
                )
            )
        if not rows:
            return report
        for _, source, external_id in rows:
            _replan_one(units, policies, report, (source, external_id), now)
            if progress:
                progress(1)
        after = rows[-1][0]


def _replan_one(
    units: Units,
    policies: PolicyFile,
    report: ReplanReport,
    key: Key,
    now: datetime,
) -> None:
    with units() as uow:
        loaded = Loaded(uow, (), [key])
        issue = loaded.issues.get(key)
        if issue is None or issue.lifecycle == "resolved" or issue.policy_version == report.version:
            return  # changed meanwhile
        transition = replan(repo.clock_of(issue), facts_of_issue(issue), policies, now)
        assert transition.clock is not None
        before = f"{issue.policy_name}@{issue.policy_version or '0.1'}"
        repo.write_clock(issue, transition.clock, policies)
        issue.policy_version, issue.updated_at = report.version, now
        loaded.cancel(issue, transition.cancel, wording.POLICY_APPLIED)
        loaded.arm(issue, transition.arm)  # a deadline now past fires at once
        after = f"{issue.policy_name}@{report.version}"
        timeline = uow.store.timeline
        timeline.add(issue, now, "policy", wording.policy_applied(before, after, transition.note))
        for note in transition.notes:
            timeline.add(issue, now, "clock", note)
        uow.effects.merge(loaded.effects())
        report.replanned += 1
        report.effects.merge(uow.effects)


def explain(session: Session, issue: Issue, current: PolicyFile, now: datetime) -> list[str]:
    """Which policy the issue is under and why, and the state of each of its targets."""
    under = policies_for(session, issue.policy_version, current)
    facts = facts_of_issue(issue)
    lines = [
        f"{issue.key} ({issue.severity}, status {issue.status!r}, labels {list(issue.labels)}) "
        f"is under policy {issue.policy_name!r} of version {issue.policy_version or '(0.1)'}"
        + (" (the current file)" if under is current else " (an earlier file)"),
        "",
        "Matching, in file order (first match wins):",
    ]
    for candidate in under.policies:
        checks = explain_match(candidate.match, facts)
        holds = all(ok for _, ok in checks)
        detail = "; ".join(f"{'✓' if ok else '✗'} {text}" for text, ok in checks) or "no conditions"
        lines.append(f"  {'→' if holds else ' '} {candidate.name}: {detail}")
        if holds:
            break
    else:
        lines.append(f"  → none matched: the default {under.default!r}")
    if issue.policy_name != match_policy(under, facts).name:
        lines.append(
            f"  (it was matched as {issue.policy_name!r} under its severity or labels then)"
        )
    policy = under.policy(issue.policy_name)
    lines += ["", f"Targets (clock cycle {issue.clock_version}):"]
    armed = session.scalars(
        select(Deadline)
        .where(Deadline.issue_id == issue.id, Deadline.state == repo.ARMED)
        .order_by(Deadline.due_at)
    ).all()
    for clock in repo.clock_of(issue).targets:
        target = policy.target(clock.target) if policy else None
        if target is None:
            continue
        spent = elapsed(clock, target, now)
        state = clock.state.value
        if clock.state is ClockState.RUNNING:
            left = target.target_time - spent
            state += f", {format_duration(left)} left" if left.total_seconds() > 0 else ", breached"
        ladder = f", held by {target.ladder[clock.step].tier}" if target.ladder else ""
        lines.append(
            f"  {label(clock.target)} ({target.calendar}): {state}; "
            f"{format_duration(spent) if spent.total_seconds() >= 1 else '0s'} of "
            f"{format_duration(target.target_time)} counted{ladder}"
            + (", breached" if clock.breached else "")
            + (f", warned at {', '.join(f'{w:.0%}' for w in clock.warned)}" if clock.warned else "")
        )
        for d in armed:
            if d.target == clock.target:
                lines.append(f"      next: {d.kind} at {d.due_at.isoformat(timespec='seconds')}")
    if issue.snoozed_until:
        lines.append(f"  snoozed until {issue.snoozed_until.isoformat(timespec='seconds')}")
    if issue.policy_version and issue.policy_version != version_of(current):
        lines += ["", "The policy file has changed since: `escalator policy apply --replan`."]
    return lines
