"""Backtest speed: issues replayed and compared per second, 10,000 issues with their events.

A fresh SQLite store lives a month through the real services on a manual clock, two minutes at
a time: that window's events through ingest (`apply_batch`, which fires the deadlines an event
finds due before it), then the deadlines still due in it (`fire_many`, as a scheduler), under
the packaged default policy (business-hours calendars included): 10,000 issues over 30 days,
P1-P4, each opened, acknowledged after 1-90 minutes (70%), updated (30%) and resolved after 1-8
hours. Then `worker.services.backtest.backtest` of the same policy over the month
is timed: it reads the recorded events and what happened (timeline, outbox), replays every
issue in the pure domain and compares. Verified: every issue replayed, 0 differences (the
policy in force reproduces what happened). Target (issue 14): 10,000 issues in under a minute.

    python bench/backtest.py            # 10,000 issues
    python bench/backtest.py --quick    # 1,000
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from _common import DEFAULT_POLICY, fresh_sqlite, header, quiet_logging, row
from _roles import summary
from sqlalchemy import func, select

from worker.domain.clock import ManualClock
from worker.domain.states import DeadlineState
from worker.services.backtest import backtest
from worker.services.fire import fire_many
from worker.services.ingest import apply_batch
from worker.services.policy_loader import load_policy
from worker.services.uow import Units
from worker.store.db import make_engine, session_factory
from worker.store.models import Deadline

TARGET_S = 60.0  # for 10,000 issues
MONTH = datetime(2026, 10, 1, tzinfo=UTC)
LAST = MONTH + timedelta(days=31)  # the end of the period: every issue resolved by then
WINDOW = timedelta(minutes=10)  # less than any reminder interval of the default policy (15m)
SEVERITIES = ("P1", "P2", "P3", "P4")


def events(issues: int, seed: int = 14) -> list[tuple[datetime, dict[str, Any]]]:
    """Every issue's events, (time, body), in order of time."""
    rng = random.Random(seed)
    found: list[tuple[datetime, dict[str, Any]]] = []
    for n in range(issues):
        opened = MONTH + timedelta(seconds=rng.randrange(30 * 86400))
        snap = {"id": f"B-{n}", "title": f"bench issue {n}", "severity": rng.choice(SEVERITIES)}
        happens: list[tuple[str, datetime, dict[str, str]]] = [("issue.opened", opened, {})]
        if rng.random() < 0.7:
            happens.append(
                ("issue.acknowledged", opened + timedelta(minutes=rng.randint(1, 90)), {})
            )
        if rng.random() < 0.3:
            at = opened + timedelta(minutes=rng.randint(1, 60))
            happens.append(("issue.updated", at, {"status": "waiting"}))
        happens.append(("issue.resolved", opened + timedelta(hours=rng.randint(1, 8)), {}))
        for kind, at, extra in happens:
            body = {
                "event_id": f"b-{n}-{kind}",
                "type": kind,
                "occurred_at": at.isoformat(),
                "source": "bench",
                "issue": {**snap, **extra},
            }
            found.append((at, body))
    found.sort(key=lambda e: e[0])
    return found


def fill(units: Units, issues: int) -> tuple[int, int]:
    """Live the month through the real services: each `WINDOW` of time, its events in one
    batch (the deadlines an event finds due fire before it), then the deadlines still due in
    the window, as a scheduler would (at most a window late: less than any reminder interval,
    so what fires is what fires on time). How many events and firings."""
    policies = load_policy(DEFAULT_POLICY)
    timeline = events(issues)
    clock = ManualClock(MONTH)
    fired = n = 0
    end = MONTH
    while True:  # from one window with something in it to the next
        nxt = [t for t in (timeline[n][0] if n < len(timeline) else None, _next_due(units)) if t]
        if not nxt:
            break
        end = max(end, min(nxt)) + WINDOW
        batch: list[tuple[str, str | bytes | None]] = []
        while n < len(timeline) and timeline[n][0] < end:
            batch.append((f"{n + 1}-0", json.dumps(timeline[n][1])))
            n += 1
        clock.set(end)
        if batch:
            apply_batch(units, batch, policies, clock)
        while due := _due(units, end):
            fired += sum(r.fired for r in fire_many(units, policies, clock, due))
    return len(timeline), fired


def _next_due(units: Units) -> datetime | None:
    with units.readers() as session:
        query = select(func.min(Deadline.due_at)).where(Deadline.state == DeadlineState.ARMED)
        found: datetime | None = session.scalar(query)
        return found


def _due(units: Units, before: datetime) -> list[int]:
    with units.readers() as session:
        query = (
            select(Deadline.id)
            .where(Deadline.state == DeadlineState.ARMED, Deadline.due_at < before)
            .order_by(Deadline.due_at, Deadline.id)
            .limit(500)
        )
        return list(session.scalars(query))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1,000 issues")
    parser.add_argument("--issues", type=int, default=None)
    args = parser.parse_args()
    issues = args.issues or (1_000 if args.quick else 10_000)
    quiet_logging()
    with tempfile.TemporaryDirectory(prefix="escalator-backtest-") as folder:
        engine = make_engine(fresh_sqlite(Path(folder)))
        sessions = session_factory(engine)
        header(f"backtest: {issues:,} issues over 30 days, SQLite, default policy")
        began = time.perf_counter()
        count, fired = fill(Units(sessions), issues)
        took = time.perf_counter() - began
        row("lived through the services", f"{count:,} events, {fired:,} firings in {took:.1f} s")
        policies = load_policy(DEFAULT_POLICY)
        began = time.perf_counter()
        report = backtest(sessions, policies, MONTH, LAST, top=10)
        took = time.perf_counter() - began
        engine.dispose()
    per_s = issues / took
    target_per_s = 10_000 / TARGET_S
    row("issues replayed / skipped", f"{report.real.issues:,} / {len(report.skipped):,}")
    row("escalations (happened = replayed)", f"{report.real.escalations:,}")
    row("differences (same policy)", f"{report.differences:,}")
    row("backtest time", f"{took:.2f} s")
    row("issues/s", f"{per_s:,.0f}")
    row("target", f">= {target_per_s:,.0f} issues/s (10,000 in under {TARGET_S:.0f} s)")
    row("ours/target", f"{per_s / target_per_s:.2f}x")
    ok = report.real.issues == issues and not report.skipped and report.differences == 0
    print("   OK: every issue replayed, 0 differences" if ok else "   FAILED: see above")
    summary(
        "backtest",
        f"issues/s, {issues:,} issues, sqlite",
        per_s,
        "/s",
        target=f">= {target_per_s:.0f} (10,000 in under a minute)",
        baseline=target_per_s,
        ratio=per_s / target_per_s,
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
