"""Deadline computations per second: `Calendar.add()` on one core, business hours and 24x7.

A Berlin office calendar (09:00-12:00 and 13:00-17:30 Monday to Friday, DE/BE holidays plus
24 and 31 December) against AlwaysOpen, for random starts across 2026 (any minute of any day,
so many fall outside business hours) and random durations from 30 minutes to 5 business days
(8h each). One process, no I/O. The business calendar is built once and warmed on the same
year, as a worker holding a loaded policy would be; a cold pass (a fresh calendar per batch of
1,000) is printed too. Target (issue 3): 50,000 computations per second on one core.

    python bench/calendar_bench.py            # 200,000 computations per calendar
    python bench/calendar_bench.py --quick    # 20,000
"""

from __future__ import annotations

import argparse
import random
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from _common import header, row
from _roles import summary

from schemas.calendar import CalendarSpec
from worker.domain.calendar import ALWAYS_OPEN, Calendar, business_calendar

TARGET_PER_S = 50_000.0
YEAR_START = datetime(2026, 1, 1, tzinfo=UTC)
BERLIN_OFFICE = {
    "timezone": "Europe/Berlin",
    "hours": {day: ["09:00-12:00", "13:00-17:30"] for day in ("mon", "tue", "wed", "thu", "fri")},
    "holidays": {"country": "DE", "subdivision": "BE", "dates": ["2026-12-24", "2026-12-31"]},
}


def inputs(
    count: int, seed: int, shortest: int = 30, longest: int = 5 * 8 * 60
) -> list[tuple[datetime, timedelta]]:
    """Random (start, duration) pairs: starts at any second of 2026, durations in minutes
    from `shortest` to `longest` (by default 30 min to 5 business days of 8 h)."""
    rng = random.Random(seed)
    year_seconds = 365 * 24 * 3600
    return [
        (
            YEAR_START + timedelta(seconds=rng.randrange(year_seconds)),
            timedelta(minutes=rng.randint(shortest, longest)),
        )
        for _ in range(count)
    ]


def versus_target(per_s: float) -> str:
    """`x.xx x the target`, and microseconds per computation."""
    return f"{per_s / TARGET_PER_S:.2f}x the 50,000/s target ({1e6 / per_s:.2f} us each)"


def rate(calendar: Calendar, work: list[tuple[datetime, timedelta]]) -> float:
    """add() computations per second over `work`, best of three passes."""
    add = calendar.add
    best = float("inf")
    for _ in range(3):
        began = time.perf_counter()
        for start, duration in work:
            add(start, duration)
        best = min(best, time.perf_counter() - began)
    return len(work) / best


def cold_rate(build: Callable[[], Calendar], work: list[tuple[datetime, timedelta]]) -> float:
    """The same, with a freshly built calendar (empty caches) for every 1,000 computations."""
    began = time.perf_counter()
    for at in range(0, len(work), 1000):
        add = build().add
        for start, duration in work[at : at + 1000]:
            add(start, duration)
    return len(work) / (time.perf_counter() - began)


def main() -> None:
    """Measure and print; never asserts on time."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="20,000 computations, smoke run")
    parser.add_argument("--count", type=int, help="computations per calendar")
    parser.add_argument("--seed", type=int, default=3)
    args = parser.parse_args()
    count = args.count or (20_000 if args.quick else 200_000)
    work = inputs(count, args.seed)

    spec = CalendarSpec.model_validate(BERLIN_OFFICE)
    office = business_calendar(spec)
    checked = sum(office.elapsed(s, office.add(s, d)) == d for s, d in work[:2000])

    header("calendar add(): deadline computations per second, one core")
    row("computations per calendar", f"{count:,}")
    row("self-check elapsed(add(s, d)) == d", f"{checked:,}/{min(2000, count):,} (all starts)")
    business = rate(office, work)
    row("business hours, Berlin + DE/BE holidays (warm)", f"{business:,.0f} /s")
    row("  vs target", versus_target(business))
    cold = cold_rate(lambda: business_calendar(spec), work)
    row("business hours, fresh calendar per 1,000 (cold)", f"{cold:,.0f} /s")
    row("  vs target", versus_target(cold))
    weeks = rate(office, inputs(count // 4, args.seed, 5 * 8 * 60, 40 * 8 * 60))
    row("business hours, 1 to 8 weeks (whole weeks skipped)", f"{weeks:,.0f} /s")
    row("  vs target", versus_target(weeks))
    always = rate(ALWAYS_OPEN, work)
    row("24x7 AlwaysOpen", f"{always:,.0f} /s")
    row("  vs target", versus_target(always))
    target = f">= {TARGET_PER_S:g}"
    summary("calendar_bench", "business hours, warm", business, "/s", target)
    summary("calendar_bench", "business hours, cold", cold, "/s", target)
    summary("calendar_bench", "24x7", always, "/s", target)


if __name__ == "__main__":
    main()
