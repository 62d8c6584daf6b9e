"""Burst: N escalation deadlines due in the same second, fired by the real roles.

Issue 12: "a burst of 3,000 deadlines due in the same second took 66 s to commit: 45
escalations/s, 24 ms of worker CPU per escalation, 610 leases reclaimed meanwhile"; target:
10,000 due in the same second all escalated and committed in < 5 s, each exactly once, and
>= 1,000 escalations/s. This prints, beside those: the seconds from the due time T0 until all N
are escalated and committed (polling the database), escalations/s, worker CPU per escalation
(user + system over the worker's process tree, from /proc), leases reclaimed (the scheduler's
`deadline.reclaimed` log lines), lateness p50/p99/max (the escalations' timeline `late_ms`), and
checks that each issue got exactly one fired first-step deadline and one escalation line.

    python bench/burst.py                       # 10,000 due at once, SQLite
    python bench/burst.py --quick               # 1,000
    python bench/burst.py --database postgres   # PostgreSQL (127.0.0.1:5432/test, own schema)
    python bench/burst.py --deadlines 3000      # the issue's baseline size

How: a private redis-server and a fresh database; the checkout's roles as processes
(`escalator ingest`, `escalator scheduler`, `escalator worker` with worker_concurrency 2: the
escalations and the outbox pool, prefork, 2 processes each). A warm-up of 4 escalations proves
them. Then one `issue.opened` (P1; the bench policy holds it at L1 for 600 s, then escalates to
L2, whose channel is `log`) goes through the stream, opened 600 s before T0, a whole second a
little ahead; ingest writes it and its deadline. N - 1 copies of that issue and its deadline are
bulk-inserted with one INSERT ... SELECT per table, so all N are due at exactly T0; the
scheduler is restarted, and its start-up reconcile indexes them before T0.

Exit status 1 only if the run cannot verify itself: a role did not start or died, not every
deadline was escalated within `--cap`, or one was escalated twice.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import sys
import time
from datetime import UTC, datetime, timedelta

import _common as common
from _common import header, row
from _overload_tree import describe
from _roles import Stack, better, escalations, event, load, ms, pct, sigterm_as_exit, summary

TIER_S = 600  # L1 -> L2 after this; the burst's issue is opened this long before T0
BASELINE_N, BASELINE_S = 3_000, 66.0  # issue 12: 3,000 due at once, committed in 66 s
BASELINE_RATE = 45.0  # escalations/s
BASELINE_CPU_MS = 24.0  # worker CPU per escalation
BASELINE_RECLAIMED = 610  # leases reclaimed during those 66 s
TARGET_N, TARGET_S = 10_000, 5.0
TARGET_RATE = 1_000.0


def policy(tier_s: int) -> str:
    """P1 (and anything else): L1 holds the issue `tier_s` seconds with no channel (opening
    sends nothing), then the escalation to L2 sends one message to the `log` channel."""
    return (
        "version: 1\n"
        "channels:\n"
        "  log: {type: log}\n"
        "tiers:\n"
        "  - {name: L1, assignee: l1-oncall, channels: []}\n"
        "  - {name: L2, assignee: l2-oncall, channels: [log]}\n"
        "policies:\n"
        "  - name: burst\n"
        "    acknowledge:\n"
        "      ladder:\n"
        f"        - {{tier: L1, within: {tier_s}s}}\n"
        "        - {tier: L2, within: 24h}\n"
        "      renotify_every: 24h\n"
        "default: burst\n"
    )


def secs(value: float) -> str:
    return "n/a" if not math.isfinite(value) else f"{value:,.2f} s"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--deadlines", type=int, default=10_000, help="due at once (10,000)")
    parser.add_argument("--quick", action="store_true", help="smoke run: 1,000 deadlines")
    parser.add_argument("--database", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument(
        "--pg-url", default=common.DEFAULT_PG_URL, help="PostgreSQL (a schema of our own)"
    )
    parser.add_argument("--concurrency", type=int, default=2, help="worker_concurrency (2)")
    parser.add_argument("--lead", type=float, help="seconds from set-up start to T0 (auto)")
    parser.add_argument(
        "--cap", type=float, default=600.0, help="give up this long after T0 (600 s)"
    )
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder and logs")
    args = parser.parse_args(argv)
    n = 1_000 if args.quick else args.deadlines
    bench = f"burst ({args.database})"
    sigterm_as_exit()

    header(f"burst: {n:,} escalation deadlines due in the same second ({args.database})")
    row("checkout", describe(common.ROOT))
    row("load average before", load())
    sys.stdout.flush()
    status = 0
    extra = {"ESCALATOR_WORKER_CONCURRENCY": str(args.concurrency)}
    with Stack("burst", args.database, args.pg_url, policy(TIER_S), extra, args.keep) as s:
        k = s.keys()
        s.spawn("ingest", ["ingest"])
        s.spawn("scheduler", ["scheduler"])
        worker = s.spawn("worker", ["worker"])

        # Warm-up: 4 escalations due in 2 s, end to end (every role is up, the path works).
        started = time.monotonic()
        now = datetime.now(UTC)
        opened_at = now + timedelta(seconds=2 - TIER_S)
        s.push([event("issue.opened", "warm", f"W-{i}", opened_at, "P1") for i in range(4)])
        if not s.wait_for(
            "warm-up: 4 escalations fired and their messages sent",
            lambda: s.first_steps("warm", "fired") == 4 and s.pending_messages("warm") == 0,
            180,
        ):
            return 1
        row("warm-up: roles up, 4 escalations end to end", f"{time.monotonic() - started:.1f} s")
        cpu_count = worker.cpu()[1]
        row("worker processes (escalations + outbox pools)", str(cpu_count))

        # The burst: one issue through the stream, N - 1 copies, all due at T0.
        s.roles.pop("scheduler").stop()  # restarted below, once the copies are in
        lead = args.lead or 15.0 + n / 2_000
        t0 = float(math.ceil(time.time() + lead))
        at = datetime.fromtimestamp(t0, UTC)
        s.push([event("issue.opened", "burst", "B-0", at - timedelta(seconds=TIER_S), "P1")])
        if not s.wait_for("the template issue ingested", lambda: s.first_steps("burst") == 1, 60):
            return 1
        with common.timed() as t_copy:
            per_issue = s.copy_issue("burst", "B-0", n - 1, "B-")
        row("bulk copy of the issue and its deadline", f"{n - 1:,} in {t_copy[0]:.2f} s")
        if per_issue != 1:
            row("  note", f"the template issue had {per_issue} armed deadlines (expected 1)")
        with common.timed() as t_index:
            scheduler = s.spawn("scheduler", ["scheduler"])
            indexed = s.wait_for(
                f"the {n:,} deadlines indexed by the scheduler's start-up reconcile",
                lambda: s.redis.zcount(k.DUE, t0 - 0.5, t0 + 0.5) >= n,
                120,
                0.2,
            )
        if not indexed:
            return 1
        margin = t0 - time.time()
        row("scheduler restarted, all indexed in", f"{t_index[0]:.2f} s")
        row("T0 (all due)", f"{at.isoformat()} ({margin:+.1f} s from now)")
        if margin < 0.5:
            print(
                f"   NOTE: the set-up finished {-margin:.1f} s after T0 (raise --lead): "
                "the figures include that wait"
            )
        sys.stdout.flush()
        time.sleep(max(0.0, t0 - 0.3 - time.time()))
        cpu0 = {name: role.cpu()[0] for name, role in s.roles.items()}
        reclaimed0 = scheduler.count("deadline.reclaimed", "count")
        peak: dict[str, int] = {}
        done_at = math.nan
        last_sample = 0.0
        while time.time() < t0 + args.cap:
            if s.first_steps("burst", "armed") == 0:
                done_at = time.time()
                break
            if s.dead():
                break
            if time.time() - last_sample >= 0.5:
                last_sample = time.time()
                pipe = s.redis.pipeline(transaction=False)
                for key in (k.ESCALATION_QUEUE, k.OUTBOX_QUEUE):
                    pipe.llen(key)
                pipe.hlen("unacked")
                pipe.zcard(k.INFLIGHT)
                values = pipe.execute()
                for key, value in zip(
                    ["escalations queue", "outbox queue", "reserved", "index in flight"],
                    values,
                    strict=True,
                ):
                    peak[key] = max(peak.get(key, 0), int(value))
            time.sleep(0.05)
        cpu1 = {name: role.cpu()[0] for name, role in s.roles.items()}
        sent_at = math.nan
        if math.isfinite(done_at) and s.wait_for(
            "every message of the burst sent",
            lambda: s.pending_messages("burst") == 0,
            120,
            0.2,
            fatal=False,
        ):
            sent_at = time.time()
        reclaimed = scheduler.count("deadline.reclaimed", "count") - reclaimed0
        result = escalations(s, "burst")
        dead = s.dead()
        problems = {name: role.problems() for name, role in s.roles.items()}
        codes = s.stop_roles()

    took = done_at - t0
    rate = n / took if took > 0 else math.nan
    fired = result["fired_at"]
    worker_cpu = cpu1["worker"] - cpu0["worker"]
    cpu_ms = 1000 * worker_cpu / n
    late = result["late_ms"]
    late_db = result["late_db_ms"]
    target_s = TARGET_S * n / TARGET_N
    print()
    row("deadlines due at T0", f"{n:,} ({result['issues']:,} issues)")
    if not math.isfinite(took):
        row("ALL ESCALATED AND COMMITTED", f"NOT within {args.cap:g} s of T0")
    else:
        row("ALL ESCALATED AND COMMITTED (db poll)", f"{took:.2f} s after T0")
    if fired:
        row(
            "  fired_at of the first / last",
            f"T0 {min(fired) - t0:+.2f} s / T0 {max(fired) - t0:+.2f} s",
        )
    row(
        f"  target: < {target_s:g} s for {n:,} (10,000 in < 5 s)",
        f"{'met' if took < target_s else 'NOT met'}; "
        f"{target_s / took if took > 0 else math.nan:.2f}x the target",
    )
    row(
        f"  baseline at {BASELINE_RATE:g}/s would take",
        f"{n / BASELINE_RATE:,.0f} s: {(n / BASELINE_RATE) / took:.2f}x faster"
        if took > 0
        else "n/a",
    )
    row("ESCALATIONS/S", f"{rate:,.1f}")
    row(
        f"  vs baseline ({BASELINE_RATE:g}/s) / target (>= {TARGET_RATE:,.0f}/s)",
        f"{rate / BASELINE_RATE:.2f}x / {rate / TARGET_RATE:.2f}x "
        f"({'met' if rate >= TARGET_RATE else 'NOT met'})",
    )
    row(
        "WORKER CPU PER ESCALATION",
        f"{cpu_ms:.2f} ms ({worker_cpu:.1f} s over {cpu_count} processes, T0 -> all committed; "
        "includes the deliveries run meanwhile)",
    )
    row(
        f"  vs baseline ({BASELINE_CPU_MS:g} ms)",
        f"{BASELINE_CPU_MS / cpu_ms:.2f}x less" if cpu_ms > 0 else "n/a",
    )
    for name in ("scheduler", "ingest"):
        spent = cpu1[name] - cpu0[name]
        row(f"{name} CPU meanwhile", f"{spent:.2f} s = {1000 * spent / n:.2f} ms per escalation")
    row(
        "leases reclaimed (deadline.reclaimed)",
        f"{reclaimed:,} (baseline: {BASELINE_RECLAIMED} during 3,000)",
    )
    row(
        "lateness p50 / p99 / max (timeline late_ms)",
        f"{ms(pct(late, 0.5))} / {ms(pct(late, 0.99))} / {ms(pct(late, 1.0))} ({len(late):,})",
    )
    row(
        "  fired_at - due_at p50 / p99 / max",
        f"{ms(pct(late_db, 0.5))} / {ms(pct(late_db, 0.99))} / {ms(pct(late_db, 1.0))}",
    )
    row("first-step deadlines by state", str(result["states"]))
    row("fired first steps per issue {count: issues}", str(result["fired_per_issue"]))
    row("escalation timeline lines per issue", str(result["lines_per_issue"]))
    row("messages by state", str(result["messages"]))
    row("all messages sent", f"{sent_at - t0:.2f} s after T0" if math.isfinite(sent_at) else "no")
    row("peak: queues, reserved, in flight", ", ".join(f"{k_} {v:,}" for k_, v in peak.items()))
    row("roles stopped (SIGTERM)", ", ".join(f"{name} {code}" for name, code in codes.items()))
    row("load average after", load())

    once = {1: n}
    if result["fired_per_issue"] != once or result["lines_per_issue"] != once:
        print(
            "FAIL: not every issue was escalated exactly once "
            f"(fired: {result['fired_per_issue']}, lines: {result['lines_per_issue']})",
            file=sys.stderr,
        )
        status = 1
    if not math.isfinite(took):
        print(f"FAIL: not all {n:,} escalated within {args.cap:g} s", file=sys.stderr)
        status = 1
    if dead or any(code not in (0, -15) for code in codes.values()):
        print(f"FAIL: roles died or stopped badly: {dead} {codes}", file=sys.stderr)
        status = 1
    for name, lines in problems.items():
        for line in lines:
            print(f"   !! {name}: {line}", file=sys.stderr)
    if status == 0:
        print("   OK: every issue escalated exactly once")

    summary(bench, f"{n:,} due at once: all committed", took, "s", f"< {target_s:g}")
    summary(
        bench,
        "escalations/s",
        rate,
        "/s",
        f">= {TARGET_RATE:g}",
        BASELINE_RATE,
        better(rate, BASELINE_RATE),
    )
    summary(
        bench,
        "worker CPU per escalation",
        cpu_ms,
        "ms",
        None,
        BASELINE_CPU_MS,
        better(cpu_ms, BASELINE_CPU_MS, higher_is_better=False),
    )
    summary(bench, "lateness p50", pct(late, 0.5), "ms")
    summary(bench, "lateness p99", pct(late, 0.99), "ms")
    summary(bench, "lateness max", pct(late, 1.0), "ms")
    summary(bench, "leases reclaimed", reclaimed, "")
    return status


if __name__ == "__main__":
    with contextlib.suppress(BrokenPipeError):
        sys.exit(main())
