"""What a backtest reports: what really happened and what the new policy would have done, side
by side. Pure: both sides are `Course`s (`worker.domain.backtest`), counted the same way.

- escalations per tier (the tier taking the issue) and per target; breaches per target;
- notifications per channel, kind and tier (one per channel a message was written for);
- pages: a notification of kind `assigned`, `escalated` or `reminder` pages the person the issue
  is assigned to when it is written (for a tier that takes the issue, whoever is on call there);
  counted per person, per ISO week, and apart at night (22:00-07:00) and at the weekend
  (Saturday, Sunday), on the local clock of the zone of the paged tier's roster, or of the
  backtest's zone when the tier has no roster;
- per issue, its differences: escalations, breaches and notifications (time to the
  millisecond, kind, target, tier, channels, person) found on one side only; the issues with
  the most differences are listed with both timelines.
"""

from __future__ import annotations

import heapq
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from schemas.policy import PolicyFile
from worker.domain.backtest import Course, Line

PAGE_KINDS = frozenset({"assigned", "escalated", "reminder"})
NIGHT_FROM, NIGHT_UNTIL = 22, 7  # local hours: a page at 22:00-06:59 is a night page
NOBODY = "(nobody)"


@dataclass(slots=True)
class Tally:
    """One side's counts."""

    issues: int = 0
    escalations_by_tier: Counter[str] = field(default_factory=Counter)
    escalations_by_target: Counter[str] = field(default_factory=Counter)
    breaches_by_target: Counter[str] = field(default_factory=Counter)
    notifications: Counter[tuple[str, str, str]] = field(default_factory=Counter)  # ch, kind, tier
    pages: Counter[str] = field(default_factory=Counter)
    pages_by_week: Counter[tuple[str, str]] = field(default_factory=Counter)  # person, 2026-W48
    night_pages: Counter[str] = field(default_factory=Counter)
    weekend_pages: Counter[str] = field(default_factory=Counter)

    def add(self, course: Course, zone_of: _Zones) -> None:
        self.issues += 1
        for mark in course.escalations:
            self.escalations_by_tier[mark.tier] += 1
            self.escalations_by_target[mark.target] += 1
        for mark in course.breaches:
            self.breaches_by_target[mark.target] += 1
        for notice in course.notices:
            for channel in notice.channels:
                self.notifications[(channel, notice.kind, notice.tier)] += 1
            if notice.kind not in PAGE_KINDS:
                continue
            who = notice.person or NOBODY
            local = notice.at.astimezone(zone_of(notice.tier))
            year, week, _ = local.isocalendar()
            self.pages[who] += 1
            self.pages_by_week[(who, f"{year}-W{week:02d}")] += 1
            if local.hour >= NIGHT_FROM or local.hour < NIGHT_UNTIL:
                self.night_pages[who] += 1
            if local.weekday() >= 5:
                self.weekend_pages[who] += 1

    @property
    def escalations(self) -> int:
        return sum(self.escalations_by_tier.values())

    @property
    def breaches(self) -> int:
        return sum(self.breaches_by_target.values())


class _Zones:
    """The zone a tier's pages are counted in: its roster's, else the backtest's."""

    def __init__(self, policies: PolicyFile, zone: str) -> None:
        self.policies, self.default = policies, ZoneInfo(zone)
        self.known: dict[str, ZoneInfo] = {}

    def __call__(self, tier_name: str) -> ZoneInfo:
        found = self.known.get(tier_name)
        if found is None:
            tier = self.policies.tier(tier_name)
            roster = self.policies.rosters.get(tier.roster) if tier and tier.roster else None
            found = ZoneInfo(roster.timezone) if roster else self.default
            self.known[tier_name] = found
        return found


def _ms(at: datetime) -> datetime:
    return at.replace(microsecond=at.microsecond // 1000 * 1000)


def signature(course: Course) -> Counter[tuple[Any, ...]]:
    """What is compared of an issue's course: each escalation, breach and notification."""
    found: Counter[tuple[Any, ...]] = Counter()
    for m in course.escalations:
        found[("escalate", _ms(m.at), m.target, m.tier)] += 1
    for m in course.breaches:
        found[("breach", _ms(m.at), m.target)] += 1
    for n in course.notices:
        channels = tuple(sorted(n.channels))
        found[("notify", _ms(n.at), n.kind, n.target, n.tier, channels, n.person)] += 1
    return found


def differences(real: Course, replayed: Course) -> int:
    """How many escalations, breaches and notifications are on one side only."""
    a, b = signature(real), signature(replayed)
    return sum(((a - b) + (b - a)).values())


@dataclass(frozen=True, slots=True)
class Changed:
    """An issue whose course changes: both timelines."""

    key: str
    differences: int
    real: Course
    replayed: Course


@dataclass(slots=True)
class Comparison:
    """The backtest's report."""

    since: datetime
    until: datetime
    zone: str
    real: Tally
    replayed: Tally
    differences: int = 0
    changed_issues: int = 0
    skipped: dict[str, str] = field(default_factory=dict)  # issue key -> why
    top: list[Changed] = field(default_factory=list)


class Comparer:
    """Adds up the issues one at a time, keeping only the `top` that change most."""

    def __init__(
        self, policies: PolicyFile, since: datetime, until: datetime, zone: str, top: int
    ) -> None:
        self.zones = _Zones(policies, zone)
        self.result = Comparison(since, until, zone, Tally(), Tally())
        self.keep = top
        self.heap: list[tuple[int, tuple[int, ...]]] = []  # the smallest kept first
        self.kept: dict[tuple[int, tuple[int, ...]], Changed] = {}

    def add(self, real: Course, replayed: Course) -> None:
        """One issue: what happened to it in the period, and its replay (whole)."""
        result = self.result
        if replayed.skipped:
            result.skipped[real.key] = replayed.skipped
            return
        real = real.within(result.since, result.until)
        replayed = replayed.within(result.since, result.until)
        result.real.add(real, self.zones)
        result.replayed.add(replayed, self.zones)
        count = differences(real, replayed)
        if not count:
            return
        result.differences += count
        result.changed_issues += 1
        rank = (count, _reverse(real.key))
        if len(self.heap) >= self.keep and not (self.keep and rank > self.heap[0]):
            return
        self.kept[rank] = Changed(real.key, count, real, replayed)
        if len(self.heap) < self.keep:
            heapq.heappush(self.heap, rank)
        else:
            del self.kept[heapq.heapreplace(self.heap, rank)]

    def done(self) -> Comparison:
        ordered = sorted(self.kept.values(), key=lambda c: (-c.differences, c.key))
        self.result.top = ordered
        return self.result


def _reverse(key: str) -> tuple[int, ...]:
    """Orders keys backwards, so that among equal counts the heap keeps the first keys."""
    return tuple(-ord(c) for c in key)


def compare(
    policies: PolicyFile,
    pairs: Iterable[tuple[Course, Course]],
    since: datetime,
    until: datetime,
    zone: str = "UTC",
    top: int = 10,
) -> Comparison:
    """The report over (what happened, replay) pairs of courses."""
    comparer = Comparer(policies, since, until, zone, top)
    for real, replayed in pairs:
        comparer.add(real, replayed)
    return comparer.done()


def _lines(lines: list[Line]) -> list[dict[str, str]]:
    return [{"at": line.at.isoformat(), "kind": line.kind, "text": line.text} for line in lines]


def as_dict(comparison: Comparison) -> dict[str, Any]:
    """The report as JSON-ready data (the API's body, `--format json`)."""

    def side(t: Tally) -> dict[str, Any]:
        return {
            "issues": t.issues,
            "escalations": t.escalations,
            "escalations_by_tier": dict(t.escalations_by_tier),
            "escalations_by_target": dict(t.escalations_by_target),
            "breaches": t.breaches,
            "breaches_by_target": dict(t.breaches_by_target),
            "notifications": [
                {"channel": c, "kind": k, "tier": tier, "count": n}
                for (c, k, tier), n in sorted(t.notifications.items())
            ],
            "pages": dict(t.pages),
            "pages_by_week": [
                {"person": p, "week": w, "count": n}
                for (p, w), n in sorted(t.pages_by_week.items())
            ],
            "night_pages": dict(t.night_pages),
            "weekend_pages": dict(t.weekend_pages),
        }

    c = comparison
    return {
        "since": c.since.isoformat(),
        "until": c.until.isoformat(),
        "zone": c.zone,
        "real": side(c.real),
        "replayed": side(c.replayed),
        "differences": c.differences,
        "changed_issues": c.changed_issues,
        "skipped": [{"issue": k, "reason": why} for k, why in sorted(c.skipped.items())],
        "top": [
            {
                "issue": ch.key,
                "differences": ch.differences,
                "real": _lines(ch.real.lines),
                "replayed": _lines(ch.replayed.lines),
            }
            for ch in c.top
        ],
    }


@dataclass(frozen=True, slots=True)
class Section:
    """One side-by-side table of the report: each row its labels, then real, replayed, change."""

    title: str
    labels: tuple[str, ...]
    rows: list[tuple[tuple[str, ...], int, int]]


def _side_by_side(
    title: str, labels: tuple[str, ...], real: Counter[Any], replayed: Counter[Any]
) -> Section:
    keys = sorted(set(real) | set(replayed), key=lambda k: tuple(map(str, _tuple(k))))
    rows = [(tuple(map(str, _tuple(k))), real[k], replayed[k]) for k in keys]
    return Section(title, labels, rows)


def _tuple(key: Any) -> tuple[Any, ...]:
    return key if isinstance(key, tuple) else (key,)


def sections(c: Comparison) -> list[Section]:
    """The report's tables, in the order people read them."""
    a, b = c.real, c.replayed
    return [
        _side_by_side(
            "Escalations per tier", ("tier",), a.escalations_by_tier, b.escalations_by_tier
        ),
        _side_by_side(
            "Escalations per target", ("target",), a.escalations_by_target, b.escalations_by_target
        ),
        _side_by_side(
            "Breaches per target", ("target",), a.breaches_by_target, b.breaches_by_target
        ),
        _side_by_side(
            "Notifications per channel, kind and tier",
            ("channel", "kind", "tier"),
            a.notifications,
            b.notifications,
        ),
        _side_by_side("Pages per person", ("person",), a.pages, b.pages),
        _side_by_side("Night pages (22:00-07:00)", ("person",), a.night_pages, b.night_pages),
        _side_by_side("Weekend pages", ("person",), a.weekend_pages, b.weekend_pages),
        _side_by_side(
            "Pages per person and week", ("person", "week"), a.pages_by_week, b.pages_by_week
        ),
    ]


def both_timelines(changed: Changed) -> list[tuple[datetime, str, str]]:
    """An issue's two timelines merged by time: (when, what happened, what would have)."""
    rows: list[tuple[datetime, str, str]] = []
    real = sorted(changed.real.lines, key=lambda line: line.at)
    replayed = sorted(changed.replayed.lines, key=lambda line: line.at)
    i = j = 0
    while i < len(real) or j < len(replayed):
        if j >= len(replayed) or (i < len(real) and real[i].at < replayed[j].at):
            rows.append((real[i].at, f"{real[i].kind}: {real[i].text}", ""))
            i += 1
        elif i >= len(real) or replayed[j].at < real[i].at:
            rows.append((replayed[j].at, "", f"{replayed[j].kind}: {replayed[j].text}"))
            j += 1
        else:
            line, other = real[i], replayed[j]
            rows.append((line.at, f"{line.kind}: {line.text}", f"{other.kind}: {other.text}"))
            i, j = i + 1, j + 1
    return rows
