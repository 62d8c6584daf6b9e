"""SLA report figures: grouping, periods in a time zone, percentiles. Pure.

`summarize` turns the records of `worker.domain.report_records` into five tables (`targets`,
`cycles`, `tiers`, `notifications`, `lateness`), each a list of rows keyed by the chosen
groups. Every figure is explained in docs/reports.md.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, fields
from datetime import datetime, time, timedelta
from statistics import fmean
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

from worker.domain.report_records import ClockRecord, CycleRecord, Dims, MessageRecord

GROUPS = ("severity", "source", "policy", "tier", "assignee", "label")
PERIODS = ("day", "week", "month")
BY = (*GROUPS, *PERIODS)
TARGET_ORDER = ("acknowledge", "first_response", "next_response", "resolve")
Row = dict[str, Any]
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Report:
    """The tables of one report over [since, until), grouped `by`, periods in `tz`."""

    since: datetime
    until: datetime
    tz: str
    by: tuple[str, ...]
    targets: list[Row]
    cycles: list[Row]
    tiers: list[Row]
    notifications: list[Row]
    lateness: list[Row]

    def sections(self) -> dict[str, list[Row]]:
        return {
            "targets": self.targets,
            "cycles": self.cycles,
            "tiers": self.tiers,
            "notifications": self.notifications,
            "lateness": self.lateness,
        }


SECTIONS = ("targets", "cycles", "tiers", "notifications", "lateness")


def percentile(values: Sequence[float], p: float) -> float | None:
    """The nearest-rank percentile: the smallest value with at least p% of them at or below it
    (rank ceil(p/100 * n), 1-based); None of nothing."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return ordered[rank - 1]


def mean(values: Sequence[float]) -> float | None:
    return fmean(values) if values else None


def period_of(at: datetime, period: str, tz: ZoneInfo) -> str:
    """The day (`2026-03-05`), ISO week (`2026-W10`, from Monday) or month (`2026-03`) that
    `at` falls in, on the local calendar of `tz`."""
    local = at.astimezone(tz)
    if period == "day":
        return local.date().isoformat()
    if period == "week":
        year, week, _ = local.isocalendar()
        return f"{year}-W{week:02d}"
    return f"{local.year}-{local.month:02d}"


def periods_between(since: datetime, until: datetime, period: str, tz: ZoneInfo) -> list[str]:
    """Every day, week or month (as `period_of` names it) that [since, until) touches on the
    local calendar of `tz`, in order: the x axis of a chart, empty periods included."""
    first = since.astimezone(tz).date()
    last = (until - timedelta(microseconds=1)).astimezone(tz).date()
    found: list[str] = []
    day = first
    while day <= last:
        name = period_of(datetime.combine(day, time(12), tzinfo=tz), period, tz)
        if not found or found[-1] != name:
            found.append(name)
        day += timedelta(days=1)
    return found


def check_by(by: Iterable[str]) -> tuple[str, ...]:
    """The groups asked for, in order, each once; ValueError naming one that is not known."""
    chosen: list[str] = []
    for name in by:
        if name not in BY:
            raise ValueError(f"cannot group by {name!r}: choose from {', '.join(BY)}")
        if name in PERIODS and any(p in chosen for p in PERIODS):
            raise ValueError("group by one period at most (day, week or month)")
        if name not in chosen:
            chosen.append(name)
    return tuple(chosen)


def keys_of(dims: Dims, by: tuple[str, ...], at: datetime, tz: ZoneInfo) -> list[tuple[str, ...]]:
    """The group keys of a record: one, or one per label when grouped by label."""
    keys: list[tuple[str, ...]] = [()]
    for name in by:
        if name == "label":
            values = list(dims.labels) or [""]
        elif name in PERIODS:
            values = [period_of(at, name, tz)]
        else:
            values = [str(getattr(dims, name))]
        keys = [(*k, v) for k in keys for v in values]
    return keys


def _grouped(
    items: Iterable[T],
    by: tuple[str, ...],
    tz: ZoneInfo,
    key: Callable[[T], tuple[Dims, datetime, tuple[str, ...]]],
) -> dict[tuple[str, ...], list[T]]:
    groups: dict[tuple[str, ...], list[T]] = {}
    for item in items:
        dims, at, extra = key(item)
        for k in keys_of(dims, by, at, tz):
            groups.setdefault((*k, *extra), []).append(item)
    return dict(sorted(groups.items(), key=lambda kv: tuple(_order(v) for v in kv[0])))


def _order(value: str) -> tuple[int, str]:
    return (TARGET_ORDER.index(value), "") if value in TARGET_ORDER else (len(TARGET_ORDER), value)


def _stats(prefix: str, values: Sequence[float], points: Sequence[int]) -> Row:
    row: Row = {f"{prefix}_mean": _round(mean(values))}
    row.update({f"{prefix}_p{p}": _round(percentile(values, p)) for p in points})
    return row


def _round(value: float | None, places: int = 3) -> float | None:
    return None if value is None else round(value, places)


def _targets(clocks: list[ClockRecord], by: tuple[str, ...], tz: ZoneInfo) -> list[Row]:
    rows = []
    for key, group in _grouped(clocks, by, tz, lambda c: (c.dims, c.started, (c.target,))).items():
        met = [c.spent_s or 0.0 for c in group if c.met_at is not None]
        breached = sum(1 for c in group if c.breached)
        row: Row = {**dict(zip((*by, "target"), key, strict=True)), "clocks": len(group)}
        row.update(
            met=len(met),
            breached=breached,
            open=sum(1 for c in group if c.open),
            stopped=sum(1 for c in group if c.stopped_at is not None),
            breach_rate=_round(breached / len(group), 4),
            **_stats("time_to_meet_s", met, (50, 90, 99)),
            paused_s=_round(sum(c.paused_s for c in group)),
        )
        rows.append(row)
    return rows


def _seconds(start: datetime, end: datetime | None) -> float | None:
    return None if end is None else (end - start).total_seconds()


def _cycles(cycles: list[CycleRecord], by: tuple[str, ...], tz: ZoneInfo) -> list[Row]:
    rows = []
    for key, group in _grouped(cycles, by, tz, lambda c: (c.dims, c.started, ())).items():
        acked = [s for c in group if (s := _seconds(c.started, c.acknowledged_at)) is not None]
        resolved = [s for c in group if (s := _seconds(c.started, c.resolved_at)) is not None]
        escalations = sum(len(c.escalations) for c in group)
        row: Row = dict(zip(by, key, strict=True))
        row.update(
            cycles=len(group),
            acknowledged=len(acked),
            resolved=len(resolved),
            mtta_s=_round(mean(acked)),
            mttr_s=_round(mean(resolved)),
            escalations=escalations,
            escalations_per_cycle=_round(escalations / len(group), 4),
        )
        rows.append(row)
    return rows


def _tiers(cycles: list[CycleRecord], by: tuple[str, ...], tz: ZoneInfo) -> list[Row]:
    counts: dict[tuple[str, ...], dict[str, int]] = {}
    by_tier = tuple(b for b in by if b != "tier")  # the rows are per tier already
    for cycle in cycles:
        tiers = {t for t in cycle.tiers if t} | {t for _, t, _ in cycle.escalations}
        for key in keys_of(cycle.dims, by_tier, cycle.started, tz):
            for tier in tiers:
                c = counts.setdefault((*key, tier), {"reached": 0, "escalated_to": 0, "ended": 0})
                c["reached"] += 1
            for _, tier, _ in cycle.escalations:
                counts[(*key, tier)]["escalated_to"] += 1
            if cycle.resolved_at is not None and cycle.dims.tier:
                counts[(*key, cycle.dims.tier)]["ended"] += 1
    return [
        {**dict(zip((*by_tier, "tier"), key, strict=True)), **c}
        for key, c in sorted(counts.items())
    ]


def _notifications(messages: list[MessageRecord], by: tuple[str, ...], tz: ZoneInfo) -> list[Row]:
    rows = []
    for key, group in _grouped(
        messages, by, tz, lambda m: (m.dims, m.created_at, (m.channel, m.kind))
    ).items():
        latency = [m.latency_s for m in group if m.latency_s is not None]
        states: dict[str, int] = {}
        for m in group:
            states[m.state] = states.get(m.state, 0) + 1
        row: Row = dict(zip((*by, "channel", "kind"), key, strict=True))
        row.update(
            messages=len(group),
            sent=states.pop("sent", 0),
            dead=states.pop("dead", 0),
            pending=states.pop("pending", 0),
            other=sum(states.values()),
            **_stats("latency_s", latency, (50, 99)),
        )
        rows.append(row)
    return rows


def _lateness(cycles: list[CycleRecord], by: tuple[str, ...], tz: ZoneInfo) -> list[Row]:
    fired = [
        (c.dims, at, tier, late)
        for c in cycles
        for at, tier, late in c.escalations
        if late is not None
    ]
    rows = []
    for key, group in _grouped(
        fired, by, tz, lambda f: (Dims(**{**_fields(f[0]), "tier": f[2]}), f[1], ())
    ).items():
        late = [float(max(0, f[3] or 0)) for f in group]
        row: Row = dict(zip(by, key, strict=True))
        row.update(
            escalations=len(group),
            late_p50_ms=percentile(late, 50),
            late_p99_ms=percentile(late, 99),
            late_max_ms=max(late),
        )
        rows.append(row)
    return rows


def _fields(dims: Dims) -> dict[str, Any]:
    return {f.name: getattr(dims, f.name) for f in fields(Dims)}


def summarize(
    clocks: list[ClockRecord],
    cycles: list[CycleRecord],
    messages: list[MessageRecord],
    since: datetime,
    until: datetime,
    by: Iterable[str] = (),
    tz: str = "UTC",
) -> Report:
    """Every table of the report; `by` names the groups (`check_by`), `tz` the IANA zone of
    the periods."""
    groups = check_by(by)
    zone = ZoneInfo(tz)
    return Report(
        since,
        until,
        tz,
        groups,
        _targets(clocks, groups, zone),
        _cycles(cycles, groups, zone),
        _tiers(cycles, groups, zone),
        _notifications(messages, groups, zone),
        _lateness(cycles, groups, zone),
    )
