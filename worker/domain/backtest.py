"""Replaying real history under another policy: what each issue's course would have been.

Pure: the recorded events of one issue, in the order ingest applied them, go through the same
domain functions the workers run (`apply_event`, `decide`, `end_snooze`) as the services use
them (`worker.services.apply_event`, `worker.services.firing`): before each event, the deadlines
due by its time fire, each at its own due time, in order of due time (ties: the order they were
armed), as `Loaded.catch_up` does; a deadline a change puts in the past is due at the time of
that change; a tier that takes the issue assigns whoever is on call there at that moment
(`on_call`). After the last event, what falls due before `until` fires. No Redis, no database,
nothing written.

The course of an issue (`Course`) is what a backtest compares with what really happened:
escalations (target, the tier taking the issue), breaches (target), notifications (kind, target,
tier, channels, the person assigned when it was sent) and the timeline lines.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from schemas.events import IssueEvent
from schemas.messages import NotificationKind
from schemas.policy import PolicyFile
from worker.domain.cycles import comes_back
from worker.domain.events import apply_event, end_snooze
from worker.domain.firing import Fired, FiringDeadline, decide
from worker.domain.issue import IssueClock, Transition
from worker.domain.oncall import on_call
from worker.domain.sla import SNOOZE, DeadlineKind, DeadlineSpec
from worker.domain.states import writeback_channel
from worker.errors import EscalatorError, PermanentError

MAX_FIRINGS = 10_000  # per issue: a reminder every minute for a week is 10,080
WRITEBACK_KINDS = (NotificationKind.ASSIGNED, NotificationKind.ESCALATED)


class BacktestLimit(PermanentError):
    """An issue's replay went past `MAX_FIRINGS`."""


@dataclass(frozen=True, slots=True)
class Mark:
    """An escalation (the tier taking the issue) or a breach (the tier holding it)."""

    at: datetime
    target: str
    tier: str


@dataclass(frozen=True, slots=True)
class Notice:
    """One notification: every channel the tier routes it to, and whom it assigned (paged)."""

    at: datetime
    kind: str
    target: str | None
    tier: str
    channels: tuple[str, ...]
    person: str | None


@dataclass(frozen=True, slots=True)
class Line:
    """A line of an issue's timeline."""

    at: datetime
    kind: str
    text: str


@dataclass(slots=True)
class Course:
    """What happened to one issue, or would have."""

    key: str
    escalations: list[Mark] = field(default_factory=list)
    breaches: list[Mark] = field(default_factory=list)
    notices: list[Notice] = field(default_factory=list)
    lines: list[Line] = field(default_factory=list)
    skipped: str = ""  # why it could not be replayed (its history is incomplete)

    def within(self, since: datetime, until: datetime) -> Course:
        """Only what happened in [since, until)."""

        def inside(at: datetime) -> bool:
            return since <= at < until

        return Course(
            self.key,
            [m for m in self.escalations if inside(m.at)],
            [m for m in self.breaches if inside(m.at)],
            [n for n in self.notices if inside(n.at)],
            [line for line in self.lines if inside(line.at)],
            self.skipped,
        )


@dataclass(slots=True)
class _Armed:
    spec: DeadlineSpec
    version: int
    seq: int


class _Replay:
    """One issue under the policy: its clock, tier, assignee and armed deadlines."""

    def __init__(self, policies: PolicyFile, key: str, source: str) -> None:
        self.policies = policies
        self.source = source
        self.clock: IssueClock | None = None
        self.tier = ""
        self.assignee: str | None = None
        self.armed: list[_Armed] = []
        self.seq = 0
        self.firings = 0
        self.course = Course(key)

    def event(self, event: IssueEvent) -> None:
        at = event.occurred_at
        if self.clock is not None:
            self.fire_until(at)
        back = self.clock is not None and comes_back(self.clock, event)
        transition = apply_event(self.clock, event, self.policies)
        assert transition.clock is not None
        if transition.take_snapshot:
            self.assignee = event.issue.assignee
        self.clock, holder = transition.clock, self.tier
        self.tier = transition.clock.tier
        if self.tier != holder or back:
            self.assignee = on_call(self.policies, self.tier, at) or self.assignee
        kind = "event" if transition.applied else "ignored"
        self.course.lines.append(Line(at, kind, f"{event.type.value}: {transition.note}"))
        self.apply(transition, at, transition.cancel)
        for note_kind, _reason in transition.notify:
            self.notify(at, note_kind, None)

    def apply(self, transition: Transition, at: datetime, cancel: frozenset[str]) -> None:
        """Cancel and arm what a change says (what it puts in the past is due at `at`)."""
        if cancel:
            self.armed = [a for a in self.armed if a.spec.target not in cancel]
        for note in transition.notes:
            self.course.lines.append(Line(at, "clock", note))
        self.arm(transition.arm, at)

    def arm(self, specs: Iterable[DeadlineSpec], not_before: datetime) -> None:
        assert self.clock is not None
        for spec in specs:
            if spec.due_at < not_before:
                spec = replace(spec, due_at=not_before)
            self.seq += 1
            self.armed.append(_Armed(spec, self.clock.clock_version, self.seq))

    def fire_until(self, until: datetime) -> None:
        """Fire, in order of due time, every armed deadline due by `until`."""
        while self.armed:
            due = min(self.armed, key=lambda a: (a.spec.due_at, a.seq))
            if due.spec.due_at > until:
                return
            self.firings += 1
            if self.firings > MAX_FIRINGS:
                raise BacktestLimit(f"more than {MAX_FIRINGS} firings")
            self.armed.remove(due)
            self.fire(due)

    def fire(self, armed: _Armed) -> None:
        clock, spec, at = self.clock, armed.spec, armed.spec.due_at
        assert clock is not None
        if spec.kind is DeadlineKind.RESUME:
            if armed.version != clock.clock_version:
                return
            transition = end_snooze(clock, self.policies, at)
            if transition.applied and transition.clock is not None:
                self.clock = transition.clock
                self.course.lines.append(Line(at, "resume", transition.note))
                self.apply(transition, at, transition.cancel | {SNOOZE})
            return
        policy = self.policies.policy(clock.policy_name)
        target = policy.target(spec.target) if policy else None
        before = clock.target(spec.target)
        deadline = FiringDeadline(
            spec.kind, spec.target, spec.step, spec.budget, armed.version, at, spec.fraction
        )
        decision = decide(clock.lifecycle, clock.clock_version, before, target, deadline, at)
        if not isinstance(decision, Fired):
            return
        new = clock.with_target(decision.clock)
        if decision.to_tier is not None:
            new = replace(new, tier=decision.to_tier)
            self.tier = decision.to_tier
            self.assignee = on_call(self.policies, decision.to_tier, at) or self.assignee
            self.course.escalations.append(Mark(at, spec.target, decision.to_tier))
        self.clock = new
        if decision.clock.breached and not (before is not None and before.breached):
            self.course.breaches.append(Mark(at, spec.target, self.tier))
        self.course.lines.append(Line(at, spec.kind.value, decision.message))
        self.arm(decision.arm, at)
        self.notify(at, decision.notify, spec.target)

    def notify(self, at: datetime, kind: NotificationKind, target: str | None) -> None:
        """The notification, as `queue_notifications` writes it (none if no channel gets it)."""
        tier = self.policies.tier(self.tier)
        channels = list(tier.channels_for(kind.value) if tier else ("log",))
        adapter = self.policies.writeback.get(self.source)
        if adapter is not None and kind in WRITEBACK_KINDS:
            channels.append(writeback_channel(adapter))
        if channels:
            notice = Notice(at, kind.value, target, self.tier, tuple(channels), self.assignee)
            self.course.notices.append(notice)


def replay(policies: PolicyFile, key: str, events: Iterable[IssueEvent], until: datetime) -> Course:
    """The course of one issue whose recorded `events` (in the order ingest applied them)
    happened under `policies`, up to `until`; `skipped` says why not, when it cannot be."""
    run: _Replay | None = None
    try:
        for event in events:
            if event.occurred_at >= until:
                continue
            if run is None:
                run = _Replay(policies, key, event.source)
            run.event(event)
        if run is None:
            return Course(key, skipped="no recorded event before the end of the period")
        run.fire_until(until - timedelta(microseconds=1))
    except EscalatorError as exc:  # an event before its issue's open (pruned), a limit
        return Course(key, skipped=str(exc))
    return run.course
