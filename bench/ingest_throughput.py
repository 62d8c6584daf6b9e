"""Ingest throughput: events/s from the Redis stream to committed state, end to end.

Pre-loads N events on `escalator:events` (a realistic mix, see `make_events`), then drives the
real consumer, `worker.roles.ingest.Ingest.step()`, until the group has delivered and acked all of
them. What is timed is everything the ingest role does per batch: XREADGROUP, validation,
dedupe, the SQL transaction (one commit per batch), indexing deadlines in the sorted set,
`send_task` of outbox deliveries to the Celery queue (the tasks pile up in Redis; nobody
consumes them), the dead-letter/XACK pipeline.

First, in the same run, the textbook Celery baseline of DESIGN.md is measured on the same N
events (`_textbook.py`: one task per event doing a SQLAlchemy upsert into SQLite, a real
`celery worker` prefork -c 2, its own redis-server); both are printed side by side: events/s,
CPU per event, and ours/textbook. `--no-baseline` skips it and compares with DESIGN.md's
figure (493 events/s). Machine-readable `BENCH-SUMMARY {json}` lines at the end.

    python bench/ingest_throughput.py                 # 20,000 events, SQLite
    python bench/ingest_throughput.py --quick         # 2,000 events
    python bench/ingest_throughput.py --database postgres
    python bench/ingest_throughput.py --no-baseline   # ours only, vs DESIGN.md's 493 events/s
    python bench/ingest_throughput.py --profile       # plus a cProfile of the timed loop
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import _common as common
import _textbook
from _common import header, ratio, row
from _roles import better, sigterm_as_exit, summary

from schemas.events import EventType, IssueEvent, IssueSnapshot, Severity
from worker.bootstrap import Container
from worker.services.uow import Effects

SEVERITIES = ("P1", "P2", "P3", "P4")
SEVERITY_WEIGHTS = (10, 20, 40, 30)


@dataclass
class _Open:
    external_id: str
    severity: str
    title: str
    acked: bool = False


@dataclass
class Mix:
    types: Counter[str] = field(default_factory=Counter)
    severities: Counter[str] = field(default_factory=Counter)
    severity_changes: int = 0


def make_events(n: int, seed: int = 7, open_share: float = 0.4) -> tuple[list[IssueEvent], Mix]:
    """N events: ~40% issue.opened (P1-P4), the rest updated/acknowledged/resolved on issues
    opened earlier; occurred_at increases by 5 ms per event, starting now."""
    rng = random.Random(seed)
    start = datetime.now(UTC)
    run = uuid.uuid4().hex[:8]
    pool: list[_Open] = []
    events: list[IssueEvent] = []
    mix = Mix()
    opened = 0
    for i in range(n):
        at = start + timedelta(milliseconds=5 * i)
        if not pool or rng.random() < open_share:
            opened += 1
            severity = rng.choices(SEVERITIES, SEVERITY_WEIGHTS)[0]
            issue = _Open(f"OPS-{opened}", severity, f"bench issue {opened}: disk filling up")
            pool.append(issue)
            kind = EventType.OPENED
            mix.severities[severity] += 1
        else:
            index = rng.randrange(len(pool))
            issue = pool[index]
            kind = rng.choices(
                (EventType.UPDATED, EventType.ACKNOWLEDGED, EventType.RESOLVED), (45, 30, 25)
            )[0]
            if kind is EventType.UPDATED and rng.random() < 0.15:
                issue.severity = rng.choice([s for s in SEVERITIES if s != issue.severity])
                mix.severity_changes += 1
            elif kind is EventType.ACKNOWLEDGED:
                issue.acked = True
            elif kind is EventType.RESOLVED:
                pool[index] = pool[-1]
                pool.pop()
        mix.types[kind.value] += 1
        events.append(
            IssueEvent(
                event_id=f"bench-{run}-{i}",
                type=kind,
                occurred_at=at,
                source="jira",
                issue=IssueSnapshot(
                    id=issue.external_id,
                    title=issue.title,
                    severity=Severity(issue.severity),
                    status="open" if kind is not EventType.RESOLVED else "done",
                    assignee=None,
                    labels=("bench", "disk"),
                ),
            )
        )
    return events, mix


class PhaseTimer:
    """Wraps `apply_batch` (as `Ingest.process` calls it) and the container's after-commit (the
    effects its unit of work runs inside it), to split the time per phase."""

    def __init__(self) -> None:
        self.apply_s = 0.0
        self.effects_s = 0.0
        self.batches = 0
        self.per_batch: list[float] = []

    def install(self, c: Container) -> bool:
        """Wrap what `worker.roles.ingest` calls; False (no split) if it no longer calls it."""
        import worker.roles.ingest as ingest_mod

        if not hasattr(ingest_mod, "apply_batch"):
            return False
        real_apply = getattr(ingest_mod, "apply_batch")  # noqa: B009  (names Ingest.process calls)
        real_effects = c.units.after_commit

        def apply_batch(*args: Any, **kwargs: Any) -> Any:
            t = time.perf_counter()
            try:
                return real_apply(*args, **kwargs)
            finally:
                spent = time.perf_counter() - t
                self.apply_s += spent
                self.per_batch.append(spent)
                self.batches += 1

        def run_effects(effects: Effects) -> None:
            t = time.perf_counter()
            try:
                real_effects(effects)
            finally:
                self.effects_s += time.perf_counter() - t

        setattr(ingest_mod, "apply_batch", apply_batch)  # noqa: B010
        c.units.after_commit = run_effects
        return True


def index_drift(c: Container) -> int:
    """How many deadline ids in the index the database does not hold as armed."""
    from worker.store import repository as repo

    stale = 0
    for members in c.index.members(5000):
        with c.sessions() as session:
            stale += len(repo.not_armed(session, members))
    return stale


def run_textbook(
    events: list[IssueEvent], skip: bool
) -> tuple[_textbook.TextbookResult | None, bool]:
    """The textbook Celery baseline on the same events, printed; (result or None, failed)."""
    print()
    if skip:
        print(
            "   -- textbook Celery baseline: not run (--no-baseline); compared with DESIGN.md's "
            f"{common.BASELINE_CELERY_EVENTS_PER_S:,.0f} events/s and "
            f"~{common.BASELINE_CELERY_DELAY_PER_S:,.0f} tasks/s .delay()"
        )
        return None, False
    print(
        f"   -- textbook Celery baseline, measured now on the same {len(events):,} events: "
        "one task per event, one SQLAlchemy upsert into SQLite (WAL), celery worker prefork -c 2, "
        "its own redis-server"
    )
    try:
        with common.timed() as took:
            tb = _textbook.run(events, progress=True)
    except _textbook.TextbookError as exc:
        print(f"!! the textbook baseline could not run: {exc}", file=sys.stderr)
        print("   (compared with DESIGN.md's figures instead; the run exits 1)")
        return None, True
    row(
        "producer .delay(), one task at a time",
        f"{tb.produce_s:.2f} s = {tb.producer_per_s:,.0f} tasks/s",
    )
    row(
        "worker: first task started -> all committed",
        f"{tb.worker_s:.2f} s = {tb.events_per_s:,.0f} events/s",
    )
    row(
        f"worker CPU ({tb.processes} processes)",
        f"{tb.worker_cpu_s:.2f} s = {tb.cpu_ms_per_event:.3f} ms/event "
        f"(pool children {1000 * tb.pool_cpu_s / max(tb.applied, 1):.3f}, "
        f"parent {1000 * (tb.worker_cpu_s - tb.pool_cpu_s) / max(tb.applied, 1):.3f})",
    )
    row("redis-server CPU meanwhile", f"{tb.redis_cpu_s:.2f} s")
    row(
        "upserts applied / issue rows",
        f"{tb.applied:,} (expected {tb.events:,}; queued {tb.queued:,}) / {tb.issues:,}",
    )
    row("baseline took (start to stop)", f"{took[0]:.1f} s")
    if not tb.ok:
        print(
            f"!! the textbook baseline applied {tb.applied:,} of {tb.events:,} events "
            f"({tb.queued:,} queued); its figures are void, DESIGN.md's are used",
            file=sys.stderr,
        )
        return None, True
    print()
    return tb, False


def side_by_side(
    args: argparse.Namespace,
    n: int,
    textbook: _textbook.TextbookResult | None,
    rate: float,
    cpu_ms: float,
) -> None:
    """Ours and the textbook's, one row per figure, and the BENCH-SUMMARY lines."""
    db = args.database
    base_rate = textbook.events_per_s if textbook else common.BASELINE_CELERY_EVENTS_PER_S
    base_cpu = textbook.cpu_ms_per_event if textbook else None
    source = "measured in this run" if textbook else "DESIGN.md's figure, not measured"
    print()
    print(f"   -- side by side, the same {n:,} events (textbook: {source})")
    print(f"   {'':<30} {'textbook Celery':>20} {'Escalator ingest':>20} {'ours/textbook':>15}")
    print(f"   {'':<30} {'sqlite, prefork -c 2':>20} {db + ', 1 process':>20}")
    print(f"   {'events/s':<30} {base_rate:>20,.0f} {rate:>20,.0f} {rate / base_rate:>14.2f}x")
    base_cpu_text = f"{base_cpu:.3f} ms" if base_cpu else "n/a"
    cpu_ratio = f"{cpu_ms / base_cpu:>14.2f}x" if base_cpu and cpu_ms else f"{'n/a':>15}"
    print(f"   {'CPU per event':<30} {base_cpu_text:>20} {cpu_ms:>17.3f} ms {cpu_ratio}")
    if db == "postgres":
        print("   (ours: this process only; PostgreSQL's server CPU is not counted)")
    print(
        f"   target (issue 12): >= 10x the textbook, {10 * base_rate:,.0f} events/s here "
        "(>= 5,000/s on a quiet machine); CPU <= 0.2 ms per event (5,000/s on one core)"
    )
    suffix = ", 24x7 policy" if args.all_day else ""
    summary(
        "ingest_throughput",
        f"events/s, {db}, 1 process{suffix}",
        rate,
        "/s",
        target=f">= {10 * base_rate:,.0f} (10x textbook)",
        baseline=base_rate,
        ratio=better(rate, base_rate),
    )
    summary(
        "ingest_throughput",
        f"CPU per event, {db}, 1 process{suffix}" + (" (client only)" if db == "postgres" else ""),
        cpu_ms,
        "ms",
        target="<= 0.2 (5,000/s on one core)",
        baseline=base_cpu,
        ratio=better(cpu_ms, base_cpu, higher_is_better=False) if base_cpu else None,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--events", type=int, default=20_000, help="how many events (default 20,000)"
    )
    parser.add_argument("--quick", action="store_true", help="smoke run: 2,000 events")
    parser.add_argument("--database", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument(
        "--redis-url", default=common.DEFAULT_REDIS_URL, help="flushed before and after"
    )
    parser.add_argument(
        "--pg-url",
        default=common.DEFAULT_PG_URL,
        help=f"PostgreSQL to use (schema {common.PG_SCHEMA} is dropped and recreated)",
    )
    parser.add_argument(
        "--batch", type=int, default=None, help="ESCALATOR_INGEST_BATCH (default: the setting's)"
    )
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--24x7",
        dest="all_day",
        action="store_true",
        help="the default policy with its business calendars removed (every target 24x7), "
        "to compare with the business-hours run",
    )
    parser.add_argument(
        "--strict", action="store_true", help="exit 1 when the index has stale entries"
    )
    parser.add_argument(
        "--profile", action="store_true", help="cProfile the timed loop; print the top functions"
    )
    parser.add_argument(
        "--no-baseline",
        action="store_true",
        help="do not run the textbook Celery baseline; compare with DESIGN.md's figure instead",
    )
    args = parser.parse_args(argv)
    sigterm_as_exit()  # SIGTERM (run_all.py) unwinds: the textbook worker and stores go too
    n = 2_000 if args.quick else args.events
    pg = args.database == "postgres"

    from redis import Redis
    from sqlalchemy import event as sa_event
    from sqlalchemy import func, select

    from config.logging import configure_logging
    from worker.bootstrap import build
    from worker.broker.keys import DEAD_STREAM, DUE, GROUP, OUTBOX_QUEUE, STREAM
    from worker.broker.producer import Producer
    from worker.roles.ingest import Ingest, ensure_group
    from worker.store.models import Deadline, Issue, OutboxMessage, ProcessedEvent

    header(f"ingest throughput: {n:,} events, stream -> commit -> XACK ({args.database})")
    common.flush_redis(args.redis_url)
    tmp = tempfile.TemporaryDirectory(prefix="escalator-bench-")
    if args.database == "postgres":
        database_url = common.fresh_postgres(args.pg_url)
    else:
        database_url = common.fresh_sqlite(Path(tmp.name))
    extra = {"ingest_batch": args.batch} if args.batch else {}
    if args.all_day:
        extra["policy_file"] = common.without_calendars(Path(tmp.name))
    settings = common.make_settings(args.redis_url, database_url, **extra)
    print(
        f"   policy                                             "
        f"{'default, all targets 24x7' if args.all_day else 'default (P3/P4 business hours)'}"
    )
    configure_logging(settings)
    c = build(settings)
    status = 0
    try:
        with common.timed() as t_gen:
            events, mix = make_events(n, args.seed)
        textbook, baseline_failed = run_textbook(events, args.no_baseline)
        baseline_rate = textbook.events_per_s if textbook else common.BASELINE_CELERY_EVENTS_PER_S
        baseline_delay = textbook.producer_per_s if textbook else common.BASELINE_CELERY_DELAY_PER_S
        baseline_name = "textbook Celery, measured now" if textbook else "textbook, DESIGN.md"
        redis = Redis.from_url(args.redis_url, decode_responses=True)
        producer = Producer(redis)
        with common.timed() as t_send:
            for start in range(0, n, 5_000):
                producer.send_many(events[start : start + 5_000])
        del events
        row("events built (pydantic)", f"{t_gen[0]:.2f} s")
        row(
            "pre-load XADD, pipelined 5,000 at a time",
            f"{t_send[0]:.2f} s = {n / t_send[0]:,.0f} events/s",
        )
        row(f"  vs producer .delay() ({baseline_name})", ratio(n / t_send[0], baseline_delay))
        row("mix", ", ".join(f"{k} {v}" for k, v in sorted(mix.types.items())))
        row(
            "opened by severity",
            ", ".join(f"{k} {mix.severities[k]}" for k in SEVERITIES)
            + f"; {mix.severity_changes} severity changes",
        )
        row("ingest_batch", str(settings.ingest_batch))

        ensure_group(c)
        phases = PhaseTimer()
        split = phases.install(c)
        ingest = Ingest(c, name="bench-ingest")
        statements = [0]

        def _count(*_: object) -> None:
            statements[0] += 1

        sa_event.listen(c.engine, "before_cursor_execute", _count)
        profiler = None
        if args.profile:
            import cProfile

            profiler = cProfile.Profile()
        done = idle = 0
        if profiler:
            profiler.enable()
        cpu0 = time.process_time()
        t0 = time.perf_counter()
        while done < n:
            handled = ingest.step(block_ms=10)
            done += handled
            idle = 0 if handled else idle + 1
            if idle >= 300:  # ~3 s with nothing to read: something is stuck
                print(
                    f"!! stream stopped delivering after {done:,} of {n:,} entries", file=sys.stderr
                )
                break
        elapsed = time.perf_counter() - t0
        cpu_s = time.process_time() - cpu0
        if profiler:
            profiler.disable()
        sa_event.remove(c.engine, "before_cursor_execute", _count)

        foreign = [
            f"{x['name']} (pending {x['pending']})"
            for x in redis.xinfo_consumers(STREAM, GROUP)
            if x["name"] != ingest.name
        ]
        if foreign:
            print(
                f"!! other consumers joined the group on {args.redis_url}: {', '.join(foreign)}; "
                "another process uses this Redis database, the figures are void",
                file=sys.stderr,
            )
        group = next(g for g in redis.xinfo_groups(STREAM) if g["name"] == GROUP)
        pending, lag = int(group["pending"]), group.get("lag")
        rate = done / elapsed if elapsed else 0.0
        print()
        row("entries handled", f"{done:,} in {elapsed:.2f} s")
        cpu_ms = 1000 * cpu_s / done if done else 0.0
        row("THROUGHPUT (stream -> commit -> XACK)", f"{rate:,.0f} events/s")
        row(f"  vs {baseline_name}", ratio(rate, baseline_rate))
        row(
            "CPU per event (this process" + (", not PostgreSQL's)" if pg else ")"),
            f"{cpu_ms:.3f} ms ({cpu_s:.2f} s in the timed loop"
            + (", under cProfile)" if profiler else ")"),
        )
        if split:
            row("batches", f"{phases.batches:,} (mean {done / max(phases.batches, 1):.0f} entries)")
            quarter = max(len(phases.per_batch) // 4, 1)
            first, last = sum(phases.per_batch[:quarter]), sum(phases.per_batch[-quarter:])
            rest = elapsed - phases.apply_s
            applying = phases.apply_s - phases.effects_s
            row(
                "  apply_batch (parse, SQL, commit)",
                f"{applying:6.2f} s  {100 * applying / elapsed:4.1f}%  "
                f"{1000 * applying / done:.3f} ms/event",
            )
            row(
                "  after the commit (ZADD/ZREM, send_task)",
                f"{phases.effects_s:6.2f} s  {100 * phases.effects_s / elapsed:4.1f}%",
            )
            row(
                "  the rest (XREADGROUP, XACK, logging)",
                f"{rest:6.2f} s  {100 * rest / elapsed:4.1f}%",
            )
            row(
                "  apply_batch, first vs last quarter",
                f"{1000 * first / quarter:.0f} vs {1000 * last / quarter:.0f} ms/batch",
            )
        else:
            row("phase split", "n/a (worker.roles.ingest no longer calls apply_batch)")
        row(
            "SQL statements (cursor executes)",
            f"{statements[0]:,} = {statements[0] / max(done, 1):.1f} per event",
        )
        row(
            "group after the run",
            f"pending {pending}, lag {lag}, applied counter {ingest.applied:,}",
        )

        with c.sessions() as session:
            outcomes = dict(
                session.execute(
                    select(ProcessedEvent.outcome, func.count()).group_by(ProcessedEvent.outcome)
                ).all()
            )
            processed = sum(outcomes.values())
            issues = session.scalar(select(func.count()).select_from(Issue))
            deadlines = dict(
                session.execute(select(Deadline.state, func.count()).group_by(Deadline.state)).all()
            )
            outbox = session.scalar(select(func.count()).select_from(OutboxMessage))
        dead = redis.xlen(DEAD_STREAM) if redis.exists(DEAD_STREAM) else 0
        row("outcomes", ", ".join(f"{k} {v:,}" for k, v in sorted(outcomes.items())) or "none")
        row("processed_events rows", f"{processed:,} (expected {n:,})")
        row("issues / outbox rows", f"{issues:,} / {outbox:,}")
        row("deadlines by state", ", ".join(f"{k} {v:,}" for k, v in sorted(deadlines.items())))
        row(
            "index ZCARD due / armed in DB", f"{redis.zcard(DUE):,} / {deadlines.get('armed', 0):,}"
        )
        row("Celery outbox queue length (unconsumed)", f"{redis.llen(OUTBOX_QUEUE):,}")
        row("dead-lettered", f"{dead:,}")
        if foreign or processed != n or pending or (lag not in (0, None)) or done != n:
            print("FAIL: not every event ended committed and acked", file=sys.stderr)
            status = 1
        else:
            print("   OK: every event committed exactly once and acked")
        if baseline_failed:
            print(
                "FAIL: the textbook baseline did not run or did not apply every event once",
                file=sys.stderr,
            )
            status = 1
        stale = index_drift(c)
        if stale:
            # Not a throughput failure, but a finding: see bench/README.md, "Findings".
            print(
                f"   WARN: {stale:,} index entries are not armed in the database (stale; the "
                "reconciler drops them). Armed and cancelled within one batch?"
            )
            if args.strict:
                status = 1
        side_by_side(args, n, textbook, rate, cpu_ms)
        if profiler:
            import pstats

            print("\n-- cProfile of the timed loop (top 30 by own time)")
            pstats.Stats(profiler, stream=sys.stdout).sort_stats("tottime").print_stats(30)
            print("-- (top 30 by cumulative time)")
            pstats.Stats(profiler, stream=sys.stdout).sort_stats("cumulative").print_stats(30)
        redis.close()
    finally:
        c.close()
        common.flush_redis(args.redis_url)
        if args.database == "postgres":
            common.drop_postgres_schema(args.pg_url)
        tmp.cleanup()
    return status


if __name__ == "__main__":
    sys.exit(main())
