"""What the SLA reports count, rebuilt from the timeline's clock facts. Pure.

`records` reads the timeline lines of a period (each with the `sla` object that
`worker.domain.clock_facts` defines) in order of time and rebuilds one `ClockRecord` per target
clock and one `CycleRecord` per issue cycle that started in the period, as they stood at its
end: a clock neither met nor stopped by then is open, and a pause still running then counts up
to the end. `MessageRecord` is one outbox row. How each figure is computed: docs/reports.md.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from worker.domain.clock_facts import SLA_KEY, Change


@dataclass(frozen=True, slots=True)
class Dims:
    """What a record is grouped by."""

    severity: str = ""
    source: str = ""
    policy: str = ""
    tier: str = ""
    assignee: str = ""
    labels: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Line:
    """A timeline line as the reports read it, with its issue's source and labels."""

    issue: str  # source:id
    source: str
    labels: tuple[str, ...]
    at: datetime
    kind: str
    data: dict[str, Any]


@dataclass(slots=True)
class ClockRecord:
    """One target clock: when it started, was met or stopped, what it counted, if it breached."""

    issue: str
    target: str
    started: datetime
    cycle: tuple[str, str]
    dims: Dims
    met_at: datetime | None = None
    stopped_at: datetime | None = None
    spent_s: float | None = None  # the target's time counted when met (or stopped)
    breached: bool = False
    paused_s: float = 0.0  # wall time paused
    paused_since: datetime | None = None

    @property
    def open(self) -> bool:
        return self.met_at is None and self.stopped_at is None


@dataclass(slots=True)
class CycleRecord:
    """One issue cycle: from its start to its resolution, the tiers it went through."""

    issue: str
    started: datetime
    dims: Dims  # tier: the tier that held it last (at its resolution, if resolved)
    acknowledged_at: datetime | None = None
    resolved_at: datetime | None = None
    tiers: set[str] = field(default_factory=set)
    escalations: list[tuple[datetime, str, int | None]] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class MessageRecord:
    """One notification or write-back (an outbox row)."""

    channel: str
    kind: str
    state: str
    created_at: datetime
    latency_s: float | None  # sent_at - created_at, when sent
    dims: Dims


def _dims(line: Line, sla: dict[str, Any]) -> Dims:
    return Dims(
        str(sla.get("severity") or ""),
        line.source,
        str(sla.get("policy") or ""),
        str(sla.get("tier") or ""),
        str(sla.get("assignee") or ""),
        line.labels,
    )


def _when(text: str) -> datetime:
    return datetime.fromisoformat(text)


class _Builder:
    def __init__(self, since: datetime) -> None:
        self.since = since
        self.clocks: dict[tuple[str, str, str], ClockRecord] = {}
        self.cycles: dict[tuple[str, str], CycleRecord] = {}

    def line(self, line: Line, sla: dict[str, Any]) -> None:
        dims = _dims(line, sla)
        key = (line.issue, str(sla.get("cycle", "")))
        cycle = self.cycles.get(key)
        if cycle is None and key[1] and _when(key[1]) >= self.since:
            cycle = self.cycles[key] = CycleRecord(line.issue, _when(key[1]), dims)
        if cycle is not None:
            cycle.dims = dims
            cycle.tiers.add(dims.tier)
            if to := sla.get("escalated_to"):
                late = line.data.get("late_ms") if line.kind == "escalate" else None
                cycle.escalations.append((line.at, str(to), late))
        for fact in sla.get("clocks", ()):
            self.fact(line, key, dims, fact)

    def fact(self, line: Line, cycle: tuple[str, str], dims: Dims, fact: dict[str, Any]) -> None:
        change, target = Change(fact["change"]), str(fact["target"])
        key = (line.issue, target, str(fact["started"]))
        record = self.clocks.get(key)
        if change is Change.STARTED:
            started = _when(key[2])
            if started >= self.since and cycle in self.cycles:
                self.clocks[key] = ClockRecord(line.issue, target, started, cycle, dims)
            return
        if record is None:  # started before the period
            return
        record.dims = dims
        at = line.at
        if change is Change.PAUSED:
            record.paused_since = record.paused_since or at
        elif change is Change.BREACHED:
            record.breached = True
        else:
            if record.paused_since is not None:
                record.paused_s += (at - record.paused_since).total_seconds()
                record.paused_since = None
            if change is Change.RESUMED:
                return
            record.spent_s = float(fact.get("spent_s", 0.0))
            record.breached = record.breached or bool(fact.get("breached"))
            if change is Change.MET:
                record.met_at = at
            else:
                record.stopped_at = at
            self.ended(record, change, at)

    def ended(self, record: ClockRecord, change: Change, at: datetime) -> None:
        cycle = self.cycles.get(record.cycle)
        if cycle is None or change is not Change.MET:
            return
        if record.target == "acknowledge" and cycle.acknowledged_at is None:
            cycle.acknowledged_at = at
        if record.target == "resolve":
            cycle.resolved_at = at


def records(
    lines: Iterable[Line], since: datetime, until: datetime
) -> tuple[list[ClockRecord], list[CycleRecord]]:
    """The clocks and cycles that started in [since, until), as they stood at `until`."""
    builder = _Builder(since)
    for line in sorted(lines, key=lambda x: x.at):
        sla = line.data.get(SLA_KEY)
        if isinstance(sla, dict) and since <= line.at < until:
            builder.line(line, sla)
    clocks = list(builder.clocks.values())
    for clock in clocks:
        if clock.paused_since is not None:  # still paused at the end: counted up to it
            clock.paused_s += (until - clock.paused_since).total_seconds()
            clock.paused_since = None
    return clocks, list(builder.cycles.values())
