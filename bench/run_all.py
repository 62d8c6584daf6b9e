"""Run every benchmark in turn (what `make bench` calls), then one summary table of their figures.

    python bench/run_all.py              # default sizes, SQLite (~10 min, + ~20 min of overload.py)
    python bench/run_all.py --quick      # smoke runs (~10 min in all)
    python bench/run_all.py --postgres   # also ingest, burst and lateness on PostgreSQL

Each benchmark prints its own figures and ratios (passed through as they come) and one or more
machine-readable lines `BENCH-SUMMARY {json}` with the keys bench, metric, value, unit, target
(a condition such as "< 5" or ">= 1000", or null), baseline and ratio (times better than the
baseline, > 1: better; or null). The table at the end has one row per such line: the value,
the target and whether it was met, the ratio to the baseline, and whether the benchmark's run
verified its own results (ok) or not (FAILED: exit status not 0).

Exit status: 0 when every benchmark ran and verified its results, else 1. Timings never fail.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
PREFIX = "BENCH-SUMMARY "
NUMBER = r"([-+]?[\d,]*\.?\d+(?:[eE][-+]?\d+)?)"
CONDITION = re.compile(rf"^\s*(<=|>=|==|<|>)?\s*{NUMBER}")  # no operator: equal to
PLAIN = re.compile(rf"^\s*(<=|>=|==|<|>)?\s*{NUMBER}\s*$")  # nothing after the number
WIDEST = 48  # a longer cell is cut


@dataclass
class Run:
    name: str
    command: list[str]
    code: int | None = None  # None: not run (missing script)
    took: float = 0.0
    lines: list[dict[str, Any]] = field(default_factory=list)
    note: str = ""


def runs_for(quick: bool, postgres: bool) -> list[Run]:
    extra = ["--quick"] if quick else []
    runs = [
        Run("ingest_throughput (sqlite)", ["ingest_throughput.py", *extra]),
        Run(  # the textbook baseline once is enough: the first run measures it
            "ingest_throughput (sqlite, all 24x7)",
            ["ingest_throughput.py", "--24x7", "--no-baseline", *extra],
        ),
        Run("ingest_scaling", ["ingest_scaling.py", *extra]),
        Run("calendar_bench", ["calendar_bench.py", *extra]),
        Run("backtest (sqlite)", ["backtest.py", *extra]),
        Run("armed_deadlines_rss", ["armed_deadlines_rss.py", *extra]),
        Run("notify_bench", ["notify_bench.py", *extra]),
        Run("gateway_bench (2 uvicorn workers)", ["gateway_bench.py", "--workers", "2", *extra]),
        Run("burst (sqlite)", ["burst.py", *extra]),
        Run("lateness (sqlite)", ["lateness.py", *extra]),
        Run("overload (0.8-5x, then drain)", ["overload.py", *extra]),
    ]
    if postgres:
        pg = ["--database", "postgres", *extra]
        runs.insert(1, Run("ingest_throughput (postgres)", ["ingest_throughput.py", *pg]))
        at = next(n for n, r in enumerate(runs) if r.name == "lateness (sqlite)") + 1
        runs[at:at] = [
            Run("burst (postgres)", ["burst.py", *pg]),
            Run("lateness (postgres)", ["lateness.py", *pg]),
        ]
    return runs


class Child:
    """The benchmark running now: SIGTERM to us is passed on to it (Ctrl-C reaches it anyway,
    it is in our process group), and we wait for it to clean up."""

    proc: subprocess.Popen[str] | None = None
    stopping = False

    @classmethod
    def forward(cls, signum: int, _frame: object) -> None:
        cls.stopping = True
        if cls.proc is not None and cls.proc.poll() is None:
            cls.proc.send_signal(signum)


def run_one(run: Run) -> None:
    """Run it with its stdout teed through to ours, collecting its BENCH-SUMMARY lines."""
    script = HERE / run.command[0]
    if not script.exists():
        run.note = f"skipped: {script.name} is not there (yet)"
        print(f"== {run.name}: {run.note}", flush=True)
        return
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    start = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, str(script), *run.command[1:]],
        cwd=HERE.parent,
        stdout=subprocess.PIPE,
        text=True,
        errors="replace",
        env=env,
    )
    Child.proc = proc
    assert proc.stdout is not None
    try:
        while True:
            try:
                line = proc.stdout.readline()
            except KeyboardInterrupt:  # Ctrl-C reached the child too: let it clean up
                Child.stopping = True
                continue
            if not line:
                break
            sys.stdout.write(line)
            sys.stdout.flush()
            if line.startswith(PREFIX):
                try:
                    found = json.loads(line[len(PREFIX) :])
                except ValueError:
                    run.note = "a BENCH-SUMMARY line that is not JSON"
                    continue
                if isinstance(found, dict):
                    run.lines.append(found)
    finally:
        while True:
            try:
                run.code = proc.wait()
                break
            except KeyboardInterrupt:
                Child.stopping = True
        Child.proc = None
        run.took = time.perf_counter() - start


def number(value: Any, unit: str = "") -> str:
    if value is None or not isinstance(value, int | float) or not math.isfinite(value):
        return "n/a"
    size = abs(value)
    if size >= 100 or (isinstance(value, int) and not isinstance(value, bool)):
        text = f"{value:,.0f}"
    elif size >= 10:
        text = f"{value:,.1f}"
    elif size >= 1:
        text = f"{value:,.2f}"
    else:
        text = f"{value:.3g}"
    return f"{text} {unit}".rstrip() if unit else text


def verdict(value: Any, target: Any) -> str:
    """'met' / 'MISSED' for a target such as '< 5', '>= 1,000' or '0' (equal to); '' if it
    does not start with a condition."""
    if not isinstance(target, str):
        return ""
    match = CONDITION.match(target)
    if not match:
        return ""
    if not isinstance(value, int | float) or not math.isfinite(value):
        return "MISSED"
    op, limit = match.group(1) or "==", float(match.group(2).replace(",", ""))
    met = {
        "<": value < limit,
        "<=": value <= limit,
        ">": value > limit,
        ">=": value >= limit,
        "==": value == limit,
    }[op]
    return "met" if met else "MISSED"


def table(runs: list[Run]) -> None:
    rows: list[tuple[str, ...]] = []
    seen: set[str] = set()
    for run in runs:
        status = "skipped" if run.code is None else "ok" if run.code == 0 else "FAILED"
        if not run.lines:
            note = run.note or ("no BENCH-SUMMARY lines" if run.code is not None else "")
            rows.append((run.name, note, "", "", "", status))
            continue
        benches = {str(x.get("bench", run.name)) for x in run.lines}
        for line in run.lines:
            bench = str(line.get("bench", run.name))
            if benches & seen and bench in seen:  # the same script again, another variant
                bench = f"{bench} [{run.name}]"
            unit = str(line.get("unit") or "")
            target = line.get("target")
            target_text = ""
            if target is not None:
                mark = verdict(line.get("value"), target)
                shown = f"{target} {unit}".rstrip() if PLAIN.match(str(target)) else str(target)
                room = WIDEST - len(f": {mark}") if mark else WIDEST
                if len(shown) > room:  # cut the text, keep the verdict
                    shown = shown[: room - 3] + "..."
                target_text = shown + (f": {mark}" if mark else "")
            ratio = line.get("ratio")
            vs = (
                f"{ratio:.2f}x"
                if isinstance(ratio, int | float) and math.isfinite(ratio)
                else ("n/a" if line.get("baseline") is not None else "")
            )
            if vs and line.get("baseline") is not None:
                vs += f" (baseline {number(line.get('baseline'), unit)})"
            rows.append(
                (
                    bench,
                    str(line.get("metric", "")),
                    number(line.get("value"), unit),
                    target_text,
                    vs,
                    status,
                )
            )
        seen |= benches
    heads = ("bench", "metric", "value", "target", "vs baseline", "run")
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(heads)]
    widths = [min(w, WIDEST) for w in widths]

    def fit(cell: str, width: int) -> str:
        return cell if len(cell) <= width else cell[: width - 3] + "..."

    def fmt(cells: tuple[str, ...]) -> str:
        return "   " + "  ".join(
            fit(c, w).rjust(w) if i == 2 else fit(c, w).ljust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        )

    print(fmt(heads).rstrip())
    print(fmt(tuple("-" * w for w in widths)).rstrip())
    for r in rows:
        print(fmt(r).rstrip())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small smoke runs")
    parser.add_argument(
        "--postgres",
        action="store_true",
        help="also run ingest, burst and lateness against PostgreSQL",
    )
    parser.add_argument(
        "--only", help="comma-separated script names to run, e.g. burst.py,lateness.py"
    )
    args = parser.parse_args(argv)
    runs = runs_for(args.quick, args.postgres)
    if args.only:
        wanted = {name.strip() for name in args.only.split(",") if name.strip()}
        runs = [r for r in runs if r.command[0] in wanted or r.command[0][:-3] in wanted]
    signal.signal(signal.SIGTERM, Child.forward)
    for run in runs:
        if Child.stopping:
            run.note = "not run: interrupted"
            continue
        try:
            run_one(run)
        except KeyboardInterrupt:
            Child.stopping = True
        print(flush=True)
    print("== summary")
    for run in runs:
        if run.code is None:
            print(f"   {run.name:<40} {run.note}")
        else:
            state = "ok" if run.code == 0 else f"FAILED (exit {run.code})"
            print(f"   {run.name:<40} {state:<18} {run.took:6.1f} s")
    print()
    table(runs)
    if Child.stopping:
        return 130
    return 0 if all(r.code in (0, None) for r in runs if not r.note.startswith("not run")) else 1


if __name__ == "__main__":
    sys.exit(main())
