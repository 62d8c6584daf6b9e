"""Overload: deadlines falling due at 1x, 2x and 5x capacity for a minute, then the drain.

Issue 10 ("Backpressure, not amplification"): one task in flight per deadline and per message,
and an overload drains in time proportional to the backlog. For each load level this prints the
deadlines due, escalation tasks sent per deadline, delivery tasks per message, the drain time
(from the end of the offered load until every due deadline has fired and every message is
sent) and escalation lateness (fired_at - due_at, from the deadlines table); and the lateness
p99 of a run at 80% of capacity, the headline. Targets: <= 1.1 tasks per deadline and per
message; lateness p99 < 1 s at 80%. Figures are printed, never asserted.

    python bench/overload.py                                 # this checkout, 60 s per level
    python bench/overload.py --quick                         # 10 s levels, smaller bursts
    python bench/overload.py --tree . --baseline /tmp/escalator-baseline   # side by side
    python bench/overload.py --capacity 150 --levels 1,2,5 --under 0.8

Each level runs on a fresh stack: a private redis-server (unix socket), a fresh SQLite file,
a local signed-webhook sink, and the tree's real roles as processes (what `escalator run`
starts, but the HTTP gateway). The load is decoupled from ingest speed: every `issue.opened` is
put on the stream and ingested before the window starts, opened one first-tier length before
the moment its escalation must fire. Tasks are counted inside the roles by
`bench/_overload_site/sitecustomize.py` (Celery's publish and prerun signals), so the count
works on any checkout and includes tasks still queued at the end.

Exit status 1 only if a stack could not be started or verified (roles dead, warm-up failed).
"""

from __future__ import annotations

import argparse
import contextlib
import math
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from _common import ROOT, header, row
from _overload_stack import Sink, Stack, Tree, probe

INGEST_GUESS = 250.0  # events/s assumed until a capacity run measured the tree's ingest
TARGET_TASKS = 1.1
TARGET_P99_S = 1.0


@dataclass
class Outcome:
    """One offered load (or burst) on one tree."""

    name: str
    rate: float  # deadlines/s offered (0: a burst, all due at once)
    seconds: float
    due: int = 0
    fired: int = 0
    states: dict[str, int] = field(default_factory=dict)
    never_sent: int = 0
    fire_sent: float = math.nan  # escalation tasks published per deadline
    fire_run: float = math.nan  # escalation tasks started per deadline
    messages: int = 0
    msg_states: dict[str, int] = field(default_factory=dict)
    deliver_sent: float = math.nan  # message ids handed to delivery tasks, per message
    deliver_run: float = math.nan
    posts_per_msg: float = math.nan  # webhook POSTs the sink received, per message
    drained: bool = False
    drain_s: float = math.nan
    left: int = 0
    busy_s: float = math.nan  # first due (or ingest done) -> last fired or sent
    late: list[float] = field(default_factory=list)
    ingest_s: float = math.nan
    ingest_margin_s: float = math.nan  # ingest done this long before the first due time
    peak: dict[str, int] = field(default_factory=dict)
    at_end: dict[str, int] = field(default_factory=dict)
    tasks: dict[str, int] = field(default_factory=dict)
    where: list[str] = field(default_factory=list)  # `worker` packages the role processes ran
    notes: list[str] = field(default_factory=list)

    @property
    def throughput(self) -> float:
        return self.due / self.busy_s if self.busy_s > 0 else math.nan


def pct(values: list[float], q: float) -> float:
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


class Run:
    """One stack for one tree: warm it up, offer loads, wait for the drain, count."""

    def __init__(self, tree: Tree, sink: Sink, tier_s: int, keep: bool) -> None:
        self.folder = Path(tempfile.mkdtemp(prefix="escalator-overload-"))
        self.stack = Stack(tree, self.folder, sink, tier_s)
        self.sink = sink
        self.keep = keep
        self.outcomes: list[Outcome] = []
        self.failed = ""

    def __enter__(self) -> Run:
        try:
            self.stack.start()
        except BaseException:
            self.stack.stop()
            self.stack.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        codes = self.stack.stop()
        self.finish(codes)
        self.stack.close()
        if self.keep or self.failed:
            print(f"   (kept {self.folder})")
        else:
            shutil.rmtree(self.folder, ignore_errors=True)

    def drained(self, source: str, timeout: float) -> bool:
        """Every `source` deadline fired and every message about it sent, within `timeout`."""
        s = self.stack
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not s.dead_roles():
            if s.armed(source) == 0 and s.pending(source) == 0:
                return True
            time.sleep(0.25)
        self.failed = f"{source}: not drained within {timeout:.0f} s"
        dead = s.dead_roles()
        print(f"FAIL: {self.failed}; dead roles: {dead or 'none'}", file=sys.stderr)
        print(s.logs(), file=sys.stderr)
        return False

    def warm_up(self) -> bool:
        """Four escalations due in 2 s, end to end: every role is up and the path works."""
        now = time.time()
        n = self.stack.produce("warm", [datetime.fromtimestamp(now + 2, UTC)] * 4)
        ok = self.ingested("warm", n, 120) is not None
        return ok and self.drained("warm", 120)

    def ingested(self, source: str, n: int, timeout: float) -> float | None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not self.stack.dead_roles():
            if self.stack.issues(source) >= n:
                return time.time()
            time.sleep(0.25)
        self.failed = f"{source}: {self.stack.issues(source)} of {n} opens ingested"
        print(
            f"FAIL: {self.failed} in {timeout:.0f} s "
            f"({self.stack.dead_letters()} dead letters)\n{self.stack.logs()}",
            file=sys.stderr,
        )
        return None

    def offer(
        self, name: str, rate: float, seconds: float, n: int, prep: float, cap: float
    ) -> Outcome:
        """`n` deadlines falling due from `prep` seconds from now, `rate` per second (0: all at
        once); wait for the drain (at most `cap` seconds after the last is due)."""
        out = Outcome(name, rate, seconds)
        self.outcomes.append(out)
        s = self.stack
        start = time.time()
        first = start + prep
        dues = [first + (i / rate if rate else 0.0) for i in range(n)]
        end = dues[-1] if dues else first
        sink0 = self.sink.counts()
        s.produce(name, (datetime.fromtimestamp(t, UTC) for t in dues))
        done = self.ingested(name, n, prep * 4 + 120)
        if done is None:
            return out
        out.ingest_s, out.ingest_margin_s = done - start, first - done
        if done > first:
            out.notes.append(
                f"ingest finished {done - first:.1f} s after the first due time: lateness "
                "includes that wait"
            )
        time.sleep(max(0.0, first - time.time()))
        give_up = end + cap
        last_sample = 0.0
        while True:
            now = time.time()
            if now >= end and s.armed(name) == 0 and s.pending(name) == 0:
                out.drained = True
                break
            if now >= give_up:
                break
            for role in s.restart_dead():  # as `escalator run` does: bring it back, say so
                out.notes.append(f"role died at +{now - first:.0f} s: {role}; restarted")
            if now - last_sample >= 1.0:
                last_sample = now
                for key, value in s.queues().items():
                    out.peak[key] = max(out.peak.get(key, 0), value)
            time.sleep(0.5)
        out.at_end = s.queues()
        if not out.drained:
            out.left = max(0, s.armed(name)) + max(0, s.pending(name))
        sink1 = self.sink.counts()
        out.posts_per_msg = float(sink1[0] - sink0[0])  # divided by the messages in finish()
        deadlines = s.deadlines(name)
        out.due, out.states = len(deadlines.ids), deadlines.states
        fired = [(d, f) for d, f in zip(deadlines.due, deadlines.fired, strict=True) if f]
        out.fired = len(fired)
        out.late = [f - d for d, f in fired]
        _, out.msg_states, last_sent = s.messages(name)
        last = max([f for _, f in fired] + ([last_sent] if last_sent else []), default=math.nan)
        out.busy_s = last - max(first, done)
        if out.drained:
            out.drain_s = last - end
        return out

    def finish(self, codes: list[tuple[str, int | None]]) -> None:
        """After the roles stopped: every task they published or started is counted."""
        s = self.stack
        pub_fire, run_fire = s.counted("published:fire"), s.counted("executed:fire")
        pub_msg, run_msg = s.counted("published:deliver"), s.counted("executed:deliver")
        tasks = s.counted("published")
        errors = s.redis.get("bench:count:errors")
        where = sorted(set(s.redis.hvals("bench:count:where")))
        for out in self.outcomes:
            out.tasks, out.where = tasks, where
            if errors:
                out.notes.append(f"{errors} counting errors in the roles")
            if where != [s.tree.worker_file]:
                out.notes.append(f"expected the roles to run {s.tree.worker_file}")
            ids = [str(i) for i in s.deadlines(out.name).ids]
            sent = [i for i in ids if pub_fire.get(i)]
            out.never_sent = len(ids) - len(sent)
            if sent:
                out.fire_sent = sum(pub_fire[i] for i in sent) / len(sent)
                out.fire_run = sum(run_fire.get(i, 0) for i in sent) / len(sent)
            msgs, _, _ = s.messages(out.name)
            out.messages = len(msgs)
            handed = [m for m in msgs if pub_msg.get(m)]
            if handed:
                out.deliver_sent = sum(pub_msg[m] for m in handed) / len(handed)
                out.deliver_run = sum(run_msg.get(m, 0) for m in handed) / len(handed)
            out.posts_per_msg = out.posts_per_msg / len(msgs) if msgs else math.nan
            if len(handed) < len(msgs):
                out.notes.append(f"{len(msgs) - len(handed)} messages never handed to a task")
        bad = [(n, c) for n, c in codes if c not in (0, -15)]
        if bad and self.outcomes:
            self.outcomes[-1].notes.append(f"roles stopped with {bad}")
        stats = s.stats()
        if stats and self.outcomes:
            self.outcomes[-1].notes.append(f"tree counters: {stats}")


def measure_capacity(
    tree: Tree, sink: Sink, quick: bool, keep: bool
) -> tuple[float, float, list[Outcome]]:
    """(deadlines/s end to end, ingest events/s, the bursts): a small burst of deadlines all
    due at once to size a second one that keeps the stack busy ~20 s (quick: ~10 s)."""
    first_n, busy_s, most = (100, 10.0, 3000) if quick else (300, 20.0, 20_000)
    with Run(tree, sink, 900, keep) as run:
        if not run.warm_up():
            return math.nan, math.nan, run.outcomes
        probe_out = run.offer("cap1", 0, 0, first_n, first_n / INGEST_GUESS + 5, 120)
        ingest = first_n / probe_out.ingest_s if probe_out.ingest_s > 0 else INGEST_GUESS
        rate = probe_out.throughput
        if not probe_out.drained or not rate > 0:
            return rate, ingest, run.outcomes
        n = int(min(most, max(first_n, rate * busy_s)))
        out = run.offer("cap2", 0, 0, n, min(600.0, n / (0.6 * ingest) + 5), 300)
        if out.ingest_s > 0:
            ingest = max(ingest, n / out.ingest_s)
    return out.throughput, ingest, run.outcomes


def run_level(
    tree: Tree,
    sink: Sink,
    factor: float,
    rate: float,
    seconds: float,
    ingest: float,
    cap: float,
    keep: bool,
) -> Outcome:
    n = max(1, round(rate * seconds))
    prep = n / (0.6 * ingest) + 8
    name = f"x{factor:g}".replace(".", "_")
    with Run(tree, sink, int(prep + seconds + 60), keep) as run:
        if not run.warm_up():
            out = Outcome(name, rate, seconds)
            out.notes.append(f"stack failed: {run.failed}")
            return out
        return run.offer(name, rate, seconds, n, prep, cap)


# --- printing ---------------------------------------------------------------------------------


def num(value: float, digits: int = 2, unit: str = "") -> str:
    return "n/a" if value is None or math.isnan(value) else f"{value:,.{digits}f}{unit}"


def secs(value: float) -> str:
    return num(value, 2, " s")


def drain(out: Outcome) -> str:
    if out.drained:
        return secs(max(0.0, out.drain_s))
    return f"did not drain ({out.left:,} left)"


def target(value: float, limit: float) -> str:
    if math.isnan(value):
        return ""
    return "  ok" if value <= limit else "  MISSED"


def figures(out: Outcome, capacity: float) -> list[tuple[str, str, float]]:
    """(label, short value, number for the ratio column) of one outcome."""
    late = out.late
    offered = (
        f"{out.rate:,.1f}/s = {out.rate / capacity:.2f}x, {out.seconds:g} s"
        if out.rate
        else "a burst, all due at once"
    )
    rows = [
        ("offered deadlines", offered, math.nan),
        ("deadlines due / fired", f"{out.due:,} / {out.fired:,}", math.nan),
        ("opens ingested in (before the window)", secs(out.ingest_s), math.nan),
        ("  ... done before the first due time", secs(out.ingest_margin_s), math.nan),
        (
            f"escalation tasks sent per deadline (<= {TARGET_TASKS})",
            num(out.fire_sent) + target(out.fire_sent, TARGET_TASKS),
            out.fire_sent,
        ),
        ("  ... started per deadline", num(out.fire_run), out.fire_run),
        ("messages", f"{out.messages:,}", math.nan),
        (
            f"delivery tasks per message (<= {TARGET_TASKS})",
            num(out.deliver_sent) + target(out.deliver_sent, TARGET_TASKS),
            out.deliver_sent,
        ),
        ("  ... started per message", num(out.deliver_run), out.deliver_run),
        ("  ... webhook POSTs received per message", num(out.posts_per_msg), out.posts_per_msg),
        ("drain: end of load -> all fired and sent", drain(out), out.drain_s),
        ("lateness p50", secs(pct(late, 0.5)), pct(late, 0.5)),
        ("lateness p99", secs(pct(late, 0.99)), pct(late, 0.99)),
        ("lateness max", secs(pct(late, 1.0)), pct(late, 1.0)),
    ]
    served = num(out.throughput, 1) + "/s"
    rows.append(("served: due / (first due -> last fired or sent)", served, math.nan))
    return rows


def details(out: Outcome) -> list[tuple[str, str]]:
    """(label, longer value) of one outcome, printed under the figures."""
    peak = ", ".join(f"{k} {v:,}" for k, v in out.peak.items() if v)
    rows = [
        ("deadline states / message states", f"{out.states} / {out.msg_states}"),
        ("peak: queues, reserved, index", peak or "-"),
        (
            "tasks published in this stack (with warm-up)",
            ", ".join(f"{k} {v:,}" for k, v in sorted(out.tasks.items())),
        ),
        ("worker package in the role processes", ", ".join(out.where) or "?"),
    ]
    if not out.drained:
        rows.append(("left at the end: queues, index", str(out.at_end)))
    if out.never_sent:
        rows.append(("deadlines never handed to a task", f"{out.never_sent:,}"))
    rows.extend(("note", note) for note in out.notes)
    return rows


def print_outcomes(
    title: str, outs: list[tuple[str, Outcome]], capacity: float, compare: bool = False
) -> None:
    """Outcomes side by side; with `compare`, tree and baseline with baseline / tree ratios
    (> 1: the tree does better)."""
    print(f"\n== {title}")
    columns = [figures(out, capacity) for _, out in outs]
    heads = "".join(f"{label:>28}" for label, _ in outs)
    print(f"   {'':<50}{heads}{'baseline/tree' if compare else '':>15}")
    for n, (label, _, _) in enumerate(columns[0]):
        cells = "".join(f"{col[n][1]:>28}" for col in columns)
        extra = ""
        if compare:
            extra = f"{ratio(columns[1][n][2], columns[0][n][2]):>15}"
        print(f"   {label:<50}{cells}{extra}")
    for label, out in outs:
        print(f"   -- {label}")
        for name, value in details(out):
            row(name, value)
    sys.stdout.flush()


def summary(label: str, levels: list[Outcome], capacity: float) -> None:
    print(f"\n   {label}")
    print(
        f"   {'level':<8}{'offered/s':>10}{'due':>9}{'tasks/deadline':>16}{'tasks/message':>15}"
        f"{'drain':>28}{'late p50':>11}{'p99':>10}{'max':>10}"
    )
    for out in levels:
        print(
            f"   {out.rate / capacity:<8.2f}{out.rate:>10,.1f}{out.due:>9,}"
            f"{num(out.fire_sent):>16}{num(out.deliver_sent):>15}{drain(out):>28}"
            f"{secs(pct(out.late, 0.5)):>11}{secs(pct(out.late, 0.99)):>10}"
            f"{secs(pct(out.late, 1.0)):>10}"
        )


def ratio(base: float, ours: float) -> str:
    if math.isnan(base) or math.isnan(ours) or ours <= 0:
        return "n/a"
    return f"{base / ours:.2f}x"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tree", type=Path, default=ROOT, help="checkout to run (default: this)")
    parser.add_argument("--baseline", type=Path, help="a second checkout, run side by side")
    parser.add_argument("--levels", default="1,2,5", help="multiples of capacity (default 1,2,5)")
    parser.add_argument("--under", type=float, default=0.8, help="the headline run (0: none)")
    parser.add_argument("--seconds", type=float, help="offered load per level (default 60)")
    parser.add_argument("--quick", action="store_true", help="10 s levels, small bursts")
    parser.add_argument("--capacity", type=float, help="deadlines/s; default: measured first")
    parser.add_argument("--drain-cap", type=float, help="give up a drain after (default 300 s)")
    parser.add_argument(
        "--per-tree-capacity",
        action="store_true",
        help="offer each tree multiples of its own capacity (default: of --tree's, same for both)",
    )
    parser.add_argument(
        "--roles", help="override the role commands, e.g. 'ingest,scheduler,worker'"
    )
    parser.add_argument(
        "--sink-delay-ms",
        type=float,
        default=0.0,
        help="the webhook receiver answers after this long (default 0; Slack-like: 100-300)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the temporary folders and logs")
    args = parser.parse_args(argv)
    seconds = args.seconds or (10.0 if args.quick else 60.0)
    drain_cap = args.drain_cap or (120.0 if args.quick else 300.0)
    factors = ([args.under] if args.under else []) + [float(x) for x in args.levels.split(",")]

    header("overload: deadlines due at multiples of capacity, then the drain (SQLite)")
    trees = [probe(args.tree, args.roles)]
    if args.baseline:
        trees.append(probe(args.baseline, args.roles))
    names = ["tree", "baseline"][: len(trees)]
    for name, tree in zip(names, trees, strict=True):
        row(name, tree.label)
        row("  worker package the roles import", tree.worker_file)
        row("  roles started", ", ".join(" ".join(r) for r in tree.roles))
    row("webhook receiver answers after", f"{args.sink_delay_ms:g} ms")
    row(
        "levels",
        f"{', '.join(f'{f:g}x' for f in factors)}, {seconds:g} s each; drain cap {drain_cap:g} s",
    )
    sys.stdout.flush()

    sink = Sink(args.sink_delay_ms / 1000)
    status = 0
    capacity: dict[str, float] = {}
    ingest: dict[str, float] = {}
    try:
        for name, tree in zip(names, trees, strict=True):
            if args.capacity:
                capacity[name], ingest[name] = args.capacity, INGEST_GUESS
                continue
            cap, rate, bursts = measure_capacity(tree, sink, args.quick, args.keep)
            capacity[name], ingest[name] = cap, rate
            print_outcomes(
                f"capacity, {name}: {num(cap, 1)} deadlines/s (fired and notified); ingest "
                f"{num(rate, 0)} events/s",
                [(o.name, o) for o in bursts],
                cap if cap > 0 else 1.0,
            )
            if not cap > 0:
                print(f"FAIL: no capacity measured for {name}", file=sys.stderr)
                return 1
        results: dict[str, list[Outcome]] = {name: [] for name in names}
        for factor in factors:
            outs = []
            for name, tree in zip(names, trees, strict=True):
                base = capacity[name] if args.per_tree_capacity else capacity[names[0]]
                out = run_level(
                    tree,
                    sink,
                    factor,
                    factor * base,
                    seconds,
                    min(ingest.values()),
                    drain_cap,
                    args.keep,
                )
                if out.due == 0 or any(n.startswith("stack failed") for n in out.notes):
                    status = 1
                results[name].append(out)
                outs.append((name, out))
            print_outcomes(f"{factor:g}x capacity", outs, capacity[names[0]], len(outs) == 2)
    finally:
        sink.stop()

    print("\n== summary (drain: end of the load -> every due deadline fired, every message sent)")
    for name, tree in zip(names, trees, strict=True):
        base = capacity[name] if args.per_tree_capacity else capacity[names[0]]
        summary(f"{name}: {tree.label}; capacity {num(capacity[name], 1)}/s", results[name], base)
    if len(trees) == 2:
        print("\n   baseline / tree (> 1: the tree does better)")
        heads = f"{'tasks/deadline':>16}{'tasks/message':>15}{'drain':>10}{'late p99':>10}"
        print(f"   {'level':<8}{heads}")
        for ours, base in zip(results["tree"], results["baseline"], strict=True):
            print(
                f"   {ours.rate / capacity['tree']:<8.2f}"
                f"{ratio(base.fire_sent, ours.fire_sent):>16}"
                f"{ratio(base.deliver_sent, ours.deliver_sent):>15}"
                f"{ratio(base.drain_s if base.drained else math.nan, ours.drain_s):>10}"
                f"{ratio(pct(base.late, 0.99), pct(ours.late, 0.99)):>10}"
            )
    if args.under:
        print()
        for name in names:
            p99 = pct(results[name][0].late, 0.99)
            verdict = "met" if p99 < TARGET_P99_S else "NOT met"
            row(
                f"headline, {name}: lateness p99 at {args.under:g}x",
                f"{secs(p99)} (target < {TARGET_P99_S:g} s: {verdict})",
            )
    return status


if __name__ == "__main__":
    with contextlib.suppress(BrokenPipeError):
        sys.exit(main())
