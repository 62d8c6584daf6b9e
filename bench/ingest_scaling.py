"""Ingest scale-out: events/s with 1, 2, 4 `escalator ingest` processes on one consumer group.

Issue 12's scaling table. Per process count P (`--procs 1,2,4`) and database (PostgreSQL by
default, `--database postgres,sqlite` for both), on a fresh stack each time: a private
redis-server on a free TCP port of 127.0.0.1 (AOF everysec, noeviction, as compose runs it;
never the machine's 6379); a fresh store (a PostgreSQL schema of its own, created, migrated
to head by the tree's `escalator db upgrade` and dropped after; or a SQLite file); N events of
the ingest benchmark's mix (`ingest_throughput.make_events`: ~40% `issue.opened`, then
updates, acknowledgements and resolutions of issues opened earlier) XADDed before anything
starts; then P real role processes of the checkout (`.venv/bin/escalator ingest` with the
tree first on PYTHONPATH, `--tree` for another checkout), configured by `ESCALATOR_*`
variables and run in a temporary directory so no `.env` is read. Timed from their start
until the group has nothing pending, no lag, and every event is accounted for (a
`processed_events` row or a dead letter; none left parked).

Printed per P: events/s (from the start of the processes, and from the first one's joining the
group), the speed-up against P=1, CPU milliseconds per event of the ingest processes (from
/proc: utime + stime, also without their start-up) and of the PostgreSQL backends serving
them (found by `application_name`), of the redis-server too, events dead-lettered (by reason),
events left parked, and the check `processed + dead-lettered == N` with every event id exactly
once. Beside them: the textbook baseline (495 events/s, one Celery task per event, issue 12)
and the issue's target (>= 10,000 events/s with several ingest processes on PostgreSQL, 0
dead-lettered), as ratios. Plus one `BENCH-SUMMARY {json}` line per measurement (ratio: > 1
is better than the baseline). Exit 1 when an event is lost or applied twice, a role crashed or
would not stop; timings never fail.

    python bench/ingest_scaling.py                        # 20,000 events, P = 1, 2, 4, PostgreSQL
    python bench/ingest_scaling.py --quick                # 4,000 events
    python bench/ingest_scaling.py --database postgres,sqlite --procs 1,2
    python bench/ingest_scaling.py --pg-url postgresql+psycopg://postgres@127.0.0.1:5432/test
    git worktree add /tmp/escalator-head HEAD        # a commit, while this checkout is edited
    python bench/ingest_scaling.py --quick --tree /tmp/escalator-head --keep-logs /tmp/logs

Runtime on the 2-core machine (2026-12-01, ~150-200 events/s): about 1.5-2 minutes with
--quick, 6-8 minutes at 20,000 events (one run per P, each with its own start-up).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import _common as common
import _ingest_procs as procs
from _common import header, row

BASELINE_EVENTS_PER_S = 495.0  # issue 12: textbook Celery, one task per event, same machine
BASELINE_CPU_MS_PER_EVENT = 2.6  # issue 12: the textbook's CPU per event
TARGET_EVENTS_PER_S = 10_000.0  # issue 12: several ingest processes on PostgreSQL
TARGET_TEXT = ">= 10,000 events/s with several ingest processes on PostgreSQL"
SCHEMA_PREFIX = "escalator_scaling"


@dataclass
class Run:
    """One measurement: P processes on one database."""

    database: str
    procs: int
    n: int
    opened: int = 0
    preload_s: float = 0.0
    loadavg: tuple[float, float, float] = (0.0, 0.0, 0.0)
    wall_s: float = 0.0  # start of the processes -> done
    from_join_s: float = 0.0  # first consumer in the group -> done
    drained_s: float | None = None  # start -> group empty (pending 0, lag 0)
    joined_s: list[float] = field(default_factory=list)
    finished: bool = False
    why_not: str = ""
    ingest_cpu: float | None = None
    ingest_cpu_startup: float = 0.0
    pg_cpu: float | None = None
    pg_backends: int = 0
    redis_cpu: float = 0.0
    machine_busy: float = 0.0
    processed: int = 0
    outcomes: dict[str, int] = field(default_factory=dict)
    issues: int = 0
    dead: int = 0
    dead_reasons: Counter[str] = field(default_factory=Counter)
    parked: int = 0
    parked_peak: int = 0  # sampled every 0.5 s during the run
    lost: int = 0
    twice: int = 0
    foreign: int = 0
    state: dict[str, Any] | None = None  # final state per issue, to compare runs
    state_diff: str = ""
    crashed: list[str] = field(default_factory=list)
    stop_codes: list[tuple[int, int | None]] = field(default_factory=list)
    logs: procs.LogSummary = field(default_factory=procs.LogSummary)

    @property
    def rate(self) -> float:
        return self.n / self.wall_s if self.finished and self.wall_s else 0.0

    @property
    def verified(self) -> bool:
        return (
            self.finished
            and not self.lost
            and not self.twice
            and not self.foreign
            and self.processed + self.dead == self.n
        )

    @property
    def roles_ok(self) -> bool:
        return not self.crashed and all(code == 0 for _, code in self.stop_codes)

    def per_event_ms(self, cpu: float | None) -> float | None:
        return None if cpu is None else 1000 * cpu / self.n


def describe_checkout(tree: Path) -> str:
    """`commit` of the checkout the roles run, and whether its product code is being edited."""
    try:
        head = subprocess.run(
            ["git", "-C", str(tree), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(tree), "status", "--porcelain", "--", "worker", "config"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return str(tree)
    edits = " + uncommitted changes in worker/ or config/" if dirty else ""
    return f"{tree} @ {head}{edits}"


# --- one measurement ----------------------------------------------------------------------------


def preload(client: Any, n: int, seed: int) -> tuple[list[str], int, float]:
    """N events of the ingest benchmark's mix on the stream; (event ids, opens, seconds)."""
    from ingest_throughput import make_events

    from worker.broker.keys import STREAM, STREAM_FIELD

    events, mix = make_events(n, seed)
    ids = [e.event_id for e in events]
    bodies = [e.model_dump_json() for e in events]
    del events
    start = time.perf_counter()
    for first in range(0, n, 5_000):
        pipe = client.pipeline(transaction=False)
        for body in bodies[first : first + 5_000]:
            pipe.xadd(STREAM, {STREAM_FIELD: body})
        pipe.execute()
    return ids, mix.types.get("issue.opened", 0), time.perf_counter() - start


def group_state(client: Any) -> tuple[bool, int, bool, str]:
    """(group exists, pending, every entry delivered, last delivered id) of the ingest group."""
    from worker.broker.keys import GROUP, STREAM

    group = next((g for g in client.xinfo_groups(STREAM) if g["name"] == GROUP), None)
    if group is None:
        return False, 0, False, ""
    pending, last_id = int(group["pending"]), str(group["last-delivered-id"])
    lag = group.get("lag")
    if lag is None:  # not computable (entries deleted): compare ids instead
        return True, pending, last_id == client.xinfo_stream(STREAM)["last-generated-id"], last_id
    return True, pending, int(lag) == 0, last_id


def db_counts(engine: Any) -> tuple[int, int]:
    from sqlalchemy import text

    with engine.connect() as conn:
        processed = conn.execute(text("SELECT count(*) FROM processed_events")).scalar_one()
        parked = conn.execute(text("SELECT count(*) FROM parked_events")).scalar_one()
    return int(processed), int(parked)


def dead_letters(client: Any) -> tuple[list[str | None], Counter[str]]:
    """Event ids of the dead letters (None when the body is not an event), and their reasons."""
    from worker.broker.keys import DEAD_STREAM

    ids: list[str | None] = []
    reasons: Counter[str] = Counter()
    for _, fields in client.xrange(DEAD_STREAM):
        reasons[(fields.get("error") or "?")[:90]] += 1
        try:
            ids.append(str(json.loads(fields.get("event") or "")["event_id"]))
        except (ValueError, KeyError, TypeError):
            ids.append(None)
    return ids, reasons


def measure(
    args: argparse.Namespace, database: str, count: int, n: int, folder: Path, stack: Any
) -> Run:
    """Everything of one run is registered on `stack` to be undone, also on error and Ctrl-C."""
    from sqlalchemy import create_engine, text

    from worker.broker.keys import DEAD_STREAM, GROUP, STREAM

    run = Run(database, count, n)
    redis_server = procs.RedisServer(folder / "redis")
    stack.callback(redis_server.stop)
    client = redis_server.client

    app_name = f"escalator-scaling-{uuid.uuid4().hex[:10]}"
    if database == "postgres":
        schema = f"{SCHEMA_PREFIX}_{os.getpid()}_{count}_{uuid.uuid4().hex[:6]}"
        stack.callback(common.drop_postgres_schema, args.pg_url, schema)
        procs.create_schema(args.pg_url, schema)
        database_url = common.pg_url_with_schema(args.pg_url, schema)
        engine = create_engine(
            database_url, connect_args={"application_name": f"{app_name}-check"}, pool_size=1
        )
    else:
        database_url = f"sqlite:///{folder / 'scaling.db'}"
        engine = create_engine(database_url)
    stack.callback(engine.dispose)
    env = procs.role_env(
        args.tree,
        {
            "ESCALATOR_REDIS_URL": redis_server.url,
            "ESCALATOR_DATABASE_URL": database_url,
            "ESCALATOR_POLICY_FILE": str(args.tree / "config" / "default_policy.yaml"),
            "ESCALATOR_LOG_LEVEL": "WARNING",
            "ESCALATOR_LOG_FORMAT": "json",
            "ESCALATOR_DATA_DIR": str(folder / "data"),
            "PGAPPNAME": app_name,
        },
    )
    procs.migrate(env, folder)  # the tree's own migrations

    ids, run.opened, run.preload_s = preload(client, n, args.seed)

    backends = None
    if database == "postgres":
        backends = procs.BackendCpu(args.pg_url, app_name)
        stack.callback(backends.stop)
        backends.start()
    roles = procs.Roles(folder, env)
    stack.callback(roles.kill)
    if args.keep_logs:
        stack.callback(keep_logs, roles, args.keep_logs, f"{database}-{count}")

    run.loadavg = os.getloadavg()
    redis_cpu0 = procs.cpu_seconds(redis_server.pid) or 0.0
    busy0, _ = procs.machine_busy()
    t0 = time.monotonic()
    roles.spawn(count)

    last_change = t0
    last_key: tuple[Any, ...] = ()
    counted: tuple[int, int] | None = None  # (processed, parked), read once the group drained
    next_db = next_parked = 0.0
    while True:
        time.sleep(0.02)
        now = time.monotonic()
        if not roles.all_joined():
            with contextlib.suppress(Exception):  # no group yet
                roles.note_joined([c["name"] for c in client.xinfo_consumers(STREAM, GROUP)])
        for role in roles.dead():
            label = f"pid {role.pid} exit {role.proc.returncode} ({role.log.name})"
            if label not in run.crashed:
                run.crashed.append(label)
        if now >= next_parked:  # how much parking goes on, beside the figures
            next_parked = now + 0.5
            with contextlib.suppress(Exception):  # no table yet
                run.parked_peak = max(run.parked_peak, db_counts(engine)[1])
        exists, pending, delivered, last_id = group_state(client)
        dead = int(client.xlen(DEAD_STREAM))
        drained = exists and pending == 0 and delivered
        if drained:
            if run.drained_s is None:
                run.drained_s = now - t0
            if now >= next_db:
                next_db = now + 0.1
                counted = db_counts(engine)
        else:  # (again: an entry may come back, reclaimed)
            run.drained_s, counted = None, None
        key = (last_id, pending, dead, counted)
        if key != last_key:
            last_key, last_change = key, now
        if drained and counted is not None:
            processed, parked = counted
            if processed + dead >= n and parked == 0:
                run.finished = True
                break
            if now - last_change > args.settle_grace:
                run.why_not = (
                    f"group drained but {processed:,} processed + {dead:,} dead-lettered "
                    f"!= {n:,} ({parked:,} parked) after {args.settle_grace:.0f} s"
                )
                break
        if len(run.crashed) == count:
            run.why_not = "every ingest process exited"
            break
        if now - last_change > args.stall:
            run.why_not = f"no progress for {args.stall:.0f} s (pending {pending})"
            break
        if now - t0 > args.timeout:
            run.why_not = f"not done after {args.timeout:.0f} s"
            break
    t_end = time.monotonic()
    roles.sample_end()
    if backends is not None:
        with contextlib.suppress(Exception):
            backends.sample()
        backends.stop()
        run.pg_cpu = backends.total() if backends.visible and backends.cpu else None
        run.pg_backends = len(backends.cpu)
    run.redis_cpu = (procs.cpu_seconds(redis_server.pid) or 0.0) - redis_cpu0
    run.machine_busy = procs.machine_busy()[0] - busy0
    run.wall_s = t_end - t0
    joins = sorted(r.joined for r in roles.roles if r.joined is not None)
    run.joined_s = [j - t0 for j in joins]
    run.from_join_s = t_end - joins[0] if joins else 0.0
    if all(r.cpu_at_end is not None for r in roles.roles):
        run.ingest_cpu = sum(r.cpu_at_end or 0.0 for r in roles.roles)
        run.ingest_cpu_startup = sum(r.cpu_at_join for r in roles.roles)
    run.stop_codes = roles.stop()

    # Verification, after the roles stopped: every event id exactly once.
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT event_id, outcome FROM processed_events")).all()
        parked_ids = conn.execute(text("SELECT event_id FROM parked_events")).scalars().all()
        run.issues = int(conn.execute(text("SELECT count(*) FROM issues")).scalar_one())
    processed_ids = [r[0] for r in rows]
    run.outcomes = dict(Counter(r[1] for r in rows))
    run.processed, run.parked = len(processed_ids), len(parked_ids)
    dead_ids, run.dead_reasons = dead_letters(client)
    run.dead = len(dead_ids)
    expected = set(ids)
    everywhere = Counter([*processed_ids, *parked_ids, *(i for i in dead_ids if i is not None)])
    run.lost = len(expected - everywhere.keys())
    run.twice = sum(1 for k, v in everywhere.items() if v > 1)
    run.foreign = len(everywhere.keys() - expected) + dead_ids.count(None)
    run.logs = procs.summarize_logs([r.log for r in roles.roles])
    with contextlib.suppress(Exception):  # columns of another tree may differ: then no check
        run.state = final_state(engine)
    return run


def final_state(engine: Any) -> dict[str, Any]:
    """Per issue: severity, status, lifecycle, tier and its armed deadlines (kind, target,
    step). The same events in any order of arrival must leave the same state (late events are
    ignored by design), so runs with different P are compared on it."""
    from sqlalchemy import text

    with engine.connect() as conn:
        issues = conn.execute(
            text("SELECT id, external_id, severity, status, lifecycle, tier_index FROM issues")
        ).all()
        armed = conn.execute(
            text("SELECT issue_id, kind, target, tier_index FROM deadlines WHERE state = 'armed'")
        ).all()
    deadlines: dict[int, list[tuple[Any, ...]]] = {}
    for issue_id, *rest in armed:
        deadlines.setdefault(issue_id, []).append(tuple(rest))
    return {
        external_id: (*rest, tuple(sorted(deadlines.get(issue_id, []))))
        for issue_id, external_id, *rest in issues
    }


def compare_state(run: Run, reference: Run) -> None:
    if run is reference or run.state is None or reference.state is None:
        return
    keys = run.state.keys() | reference.state.keys()
    differ = sorted(k for k in keys if run.state.get(k) != reference.state.get(k))
    if not differ:
        run.state_diff = f"identical to {reference.database}, {reference.procs} proc(s)"
        return
    first = differ[0]
    run.state_diff = (
        f"{len(differ):,} of {len(keys):,} issues differ from {reference.database}, "
        f"{reference.procs} proc(s); e.g. {first}: {run.state.get(first)} vs "
        f"{reference.state.get(first)}"
    )


def keep_logs(roles: procs.Roles, folder: Path, label: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for role in roles.roles:
        with contextlib.suppress(OSError):
            shutil.copy(role.log, folder / f"{label}-{role.log.name}")


def one(args: argparse.Namespace, database: str, count: int, n: int) -> Run:
    with contextlib.ExitStack() as stack:
        folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="escalator-scale-")))
        return measure(args, database, count, n, folder, stack)


# --- printing -----------------------------------------------------------------------------------


def fmt(value: float | None, spec: str = ",.0f", unit: str = "") -> str:
    return "n/a" if value is None else f"{value:{spec}}{unit}"


def summary_line(
    metric: str,
    value: float | None,
    unit: str,
    target: str | None = None,
    baseline: float | None = None,
    lower_is_better: bool = False,
) -> None:
    ratio_value = None
    if value is not None and baseline:
        if lower_is_better:
            ratio_value = round(baseline / value, 3) if value > 0 else None
        else:
            ratio_value = round(value / baseline, 3)
    payload = {
        "bench": "ingest_scaling",
        "metric": metric,
        "value": None if value is None else round(value, 4),
        "unit": unit,
        "target": target,
        "baseline": baseline,
        "ratio": ratio_value,
    }
    print(f"BENCH-SUMMARY {json.dumps(payload)}")


def report_run(run: Run) -> None:
    """The details of one run, printed right after it."""
    joins = ", ".join(f"{j:.2f}" for j in run.joined_s) or "none"
    row(
        f"{run.database}, {run.procs} proc(s)",
        f"{run.rate:,.0f} events/s"
        if run.finished
        else f"NOT FINISHED after {run.wall_s:.1f} s: {run.why_not}",
    )
    row("  load average at the start", " ".join(f"{x:.2f}" for x in run.loadavg))
    row("  pre-load (XADD, pipelined)", f"{run.n:,} events in {run.preload_s:.2f} s")
    row("  processes joined the group at", f"{joins} s")
    row(
        "  wall: from start / from first join / drained",
        f"{run.wall_s:.2f} / {run.from_join_s:.2f} / {fmt(run.drained_s, '.2f')} s",
    )
    if run.database == "postgres":
        row(
            "  CPU: ingest (start-up) / PG backends / redis",
            f"{fmt(run.ingest_cpu, '.2f')} ({run.ingest_cpu_startup:.2f}) / "
            f"{fmt(run.pg_cpu, '.2f')} ({run.pg_backends} backends) / {run.redis_cpu:.2f} s",
        )
    else:
        row(
            "  CPU: ingest (start-up) / redis",
            f"{fmt(run.ingest_cpu, '.2f')} ({run.ingest_cpu_startup:.2f}) / {run.redis_cpu:.2f} s",
        )
    ours = (run.ingest_cpu or 0) + (run.pg_cpu or 0) + run.redis_cpu
    row(
        "  machine CPU busy during the run",
        f"{run.machine_busy / max(run.wall_s, 1e-9):.2f} cores "
        f"(ingest + PG + redis: {ours / max(run.wall_s, 1e-9):.2f})",
    )
    row(
        "  processed_events by outcome",
        ", ".join(f"{k} {v:,}" for k, v in sorted(run.outcomes.items())) or "none",
    )
    row("  issues rows / issue.opened events", f"{run.issues:,} / {run.opened:,}")
    row(
        "  dead-lettered / parked at the end (peak)",
        f"{run.dead:,} / {run.parked:,} ({run.parked_peak:,})",
    )
    for reason, k in run.dead_reasons.most_common(5):
        row("    dead letter", f"{k:,} x {reason}")
    check = f"{run.processed:,} processed + {run.dead:,} dead-lettered = " + (
        f"{run.processed + run.dead:,} (N = {run.n:,})"
    )
    extra = []
    if run.lost:
        extra.append(f"{run.lost:,} LOST")
    if run.twice:
        extra.append(f"{run.twice:,} TWICE")
    if run.foreign:
        extra.append(f"{run.foreign:,} not ours")
    if run.parked:
        extra.append(f"{run.parked:,} still parked")
    row("  verification", check + (f"; {', '.join(extra)}" if extra else ""))
    row("  result", "OK" if run.verified else "FAIL")
    if run.state_diff:
        row(
            "  final state of the issues",
            ("" if "identical" in run.state_diff else "WARN: ") + run.state_diff,
        )
    reclaimed = sum(v for k, v in run.logs.totals.items() if k.endswith("ingest.reclaimed"))
    if reclaimed:
        row(
            "  entries reclaimed (XAUTOCLAIM, idle > claim time)",
            f"{reclaimed:,}: handled again by another consumer (dedupe keeps them once)",
        )
    if run.crashed:
        row("  ROLES EXITED EARLY", "; ".join(run.crashed))
    unclean = [f"pid {pid} exit {code}" for pid, code in run.stop_codes if code != 0]
    if unclean:
        row("  roles that did not stop cleanly on SIGTERM", "; ".join(unclean))
    if run.logs.counts:
        row(
            "  role log lines (WARNING+)",
            ", ".join(f"{k} x{v:,}" for k, v in run.logs.counts.most_common(8)),
        )
        for sample in run.logs.samples[:6]:
            print(f"      {sample}")
    for line in run.logs.other[:10]:
        print(f"      {line}")
    sys.stdout.flush()


def report(runs: list[Run]) -> None:
    print()
    print("== scaling table")
    print(
        "   db        procs  events/s  from join  speed-up  ingest CPU ms/ev (no start-up)"
        "  PG ms/ev  redis ms/ev  dead  parked  check"
    )
    firsts = {r.database: r for r in runs if r.procs == 1}
    for r in runs:
        base = firsts.get(r.database)
        speed = r.rate / base.rate if base and base.rate and r.rate else None
        ingest = r.per_event_ms(r.ingest_cpu)
        steady = (
            None if r.ingest_cpu is None else r.per_event_ms(r.ingest_cpu - r.ingest_cpu_startup)
        )
        from_join = r.n / r.from_join_s if r.finished and r.from_join_s else None
        print(
            f"   {r.database:<9} {r.procs:>5}  {fmt(r.rate if r.finished else None):>8}"
            f"  {fmt(from_join):>9}  {fmt(speed, '.2f', 'x'):>8}"
            f"  {fmt(ingest, '.3f'):>16} ({fmt(steady, '.3f')})"
            f"  {fmt(r.per_event_ms(r.pg_cpu), '.3f'):>14}  {r.redis_cpu * 1000 / r.n:>11.3f}"
            f"  {r.dead:>4,}  {r.parked:>6,}  {'OK' if r.verified else 'FAIL'}"
        )
    print()
    for r in runs:
        if r.finished:
            row(
                f"{r.database}, {r.procs} proc(s) vs textbook ({BASELINE_EVENTS_PER_S:.0f}/s)",
                f"{r.rate / BASELINE_EVENTS_PER_S:.2f}x",
            )
    several = [r for r in runs if r.database == "postgres" and r.procs >= 2 and r.finished]
    if several:
        best = max(several, key=lambda r: r.rate)
        row(
            "target: " + TARGET_TEXT,
            f"best {best.rate:,.0f}/s ({best.procs} procs) = "
            f"{best.rate / TARGET_EVENTS_PER_S:.2f}x the target: "
            + ("met" if best.rate >= TARGET_EVENTS_PER_S else "NOT met"),
        )
        dead = sum(r.dead for r in several)
        row(
            "target: 0 dead-lettered (several procs, PostgreSQL)",
            f"{dead:,} dead-lettered: " + ("met" if dead == 0 else "NOT met"),
        )
    print()
    for r in runs:
        label = f"{r.database}, {r.procs} proc{'s' if r.procs > 1 else ''}"
        base = firsts.get(r.database)
        target = TARGET_TEXT if r.database == "postgres" and r.procs >= 2 else None
        summary_line(
            f"events/s, {label}",
            r.rate if r.finished else None,
            "events/s",
            target,
            BASELINE_EVENTS_PER_S,
        )
        if r.procs > 1 and base is not None:
            speed = r.rate / base.rate if base.rate and r.rate else None
            summary_line(f"speed-up vs 1 proc, {label}", speed, "x", f"linear ({r.procs}x)", None)
        summary_line(
            f"ingest CPU per event, {label}",
            r.per_event_ms(r.ingest_cpu),
            "ms",
            None,
            BASELINE_CPU_MS_PER_EVENT,
            lower_is_better=True,
        )
        if r.database == "postgres":
            pg_ms = r.per_event_ms(r.pg_cpu)
            summary_line(f"PostgreSQL backend CPU per event, {label}", pg_ms, "ms")
        summary_line(f"dead-lettered, {label}", float(r.dead), "events", "0")
        summary_line(f"parked at the end, {label}", float(r.parked), "events", "0")
        summary_line(
            f"events lost or applied twice, {label}",
            float(r.lost + r.twice + (0 if r.verified else max(r.n - r.processed - r.dead, 0))),
            "events",
            "0",
        )


# --- main ---------------------------------------------------------------------------------------


def _interrupt(signum: int, _frame: Any) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=20_000, help="events per run (20,000)")
    parser.add_argument("--quick", action="store_true", help="4,000 events per run")
    parser.add_argument("--procs", default="1,2,4", help="ingest process counts (1,2,4)")
    parser.add_argument(
        "--database", default="postgres", help="postgres, sqlite, or both: postgres,sqlite"
    )
    parser.add_argument(
        "--pg-url",
        default=common.DEFAULT_PG_URL,
        help=f"PostgreSQL to use: each run creates and drops a schema {SCHEMA_PREFIX}_*",
    )
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--tree",
        type=Path,
        default=common.ROOT,
        help="the checkout whose roles and migrations run (default: this one); e.g. a "
        "`git worktree add /tmp/head HEAD`, to measure a commit while this checkout is edited",
    )
    parser.add_argument(
        "--keep-logs", type=Path, default=None, help="copy the roles' logs (JSON) to this folder"
    )
    parser.add_argument(
        "--settle-grace",
        type=float,
        default=15.0,
        help="seconds to wait, once the group is drained, for parked events to be applied",
    )
    parser.add_argument("--stall", type=float, default=60.0, help="give up after no progress")
    parser.add_argument("--timeout", type=float, default=900.0, help="give up on a run after")
    args = parser.parse_args(argv)
    n = 4_000 if args.quick else args.events
    counts = [int(p) for p in args.procs.split(",") if p.strip()]
    databases = [d.strip() for d in args.database.split(",") if d.strip()]
    if not counts or min(counts) < 1 or any(d not in ("postgres", "sqlite") for d in databases):
        parser.error("--procs: positive integers; --database: postgres and/or sqlite")
    signal.signal(signal.SIGTERM, _interrupt)

    args.tree = args.tree.resolve()
    worker_file = procs.probe(args.tree, procs.role_env(args.tree, {}))
    header(f"ingest scaling: {n:,} events, {args.procs} ingest processes, {args.database}")
    row("checkout under test", describe_checkout(args.tree))
    row("roles", " ".join([*procs.role_command(), "ingest"]) + f" (worker: {worker_file})")
    row("textbook baseline (issue 12)", f"{BASELINE_EVENTS_PER_S:.0f} events/s")
    row("target (issue 12)", TARGET_TEXT + ", 0 dead-lettered")
    print(flush=True)
    runs: list[Run] = []
    try:
        for database in databases:
            for count in counts:
                run = one(args, database, count, n)
                reference = next((r for r in runs if r.verified and r.state), None)
                compare_state(run, reference or run)
                runs.append(run)
                report_run(run)
    except KeyboardInterrupt:
        print("\ninterrupted: every process, server, schema and folder of ours was removed")
        return 130
    report(runs)
    ok = all(r.verified and r.roles_ok for r in runs)
    if not ok:
        print("FAIL: an event was lost, applied twice or left parked, or a role crashed")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
