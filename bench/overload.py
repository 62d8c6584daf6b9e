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
    python bench/overload.py --sink-delay-ms 200             # the receiver answers in 200 ms

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
import sys
from pathlib import Path

from _common import ROOT, header, row
from _overload_report import (
    TARGET_P99_S,
    TARGET_TASKS,
    Outcome,
    num,
    pct,
    print_outcomes,
    ratio,
    secs,
    summary,
)
from _overload_run import INGEST_GUESS, measure_capacity, run_level
from _overload_servers import Sink
from _overload_tree import probe
from _roles import summary as bench_summary


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
    for name in names:
        bench = f"overload ({name})" if len(names) > 1 else "overload"
        levels = results[name]
        fires = [o.fire_sent for o in levels if not math.isnan(o.fire_sent)]
        sends = [o.deliver_sent for o in levels if not math.isnan(o.deliver_sent)]
        bench_summary(bench, "capacity", capacity[name], "deadlines/s")
        if args.under and levels:
            p99 = pct(levels[0].late, 0.99)
            target = f"< {TARGET_P99_S:g}"
            bench_summary(bench, f"lateness p99 at {args.under:g}x", p99, "s", target)
        most = f"<= {TARGET_TASKS:g}"
        worst_fire, worst_send = max(fires, default=math.nan), max(sends, default=math.nan)
        bench_summary(bench, "tasks per deadline, worst level", worst_fire, "", most)
        bench_summary(bench, "tasks per message, worst level", worst_send, "", most)
    return status


if __name__ == "__main__":
    with contextlib.suppress(BrokenPipeError):
        sys.exit(main())
